//! Asset symbols (`BTC`, `1INCH`, `CHILLGUY`): short, upper-case, fixed size, `Copy`.
//!
//! A symbol is 1 to [`MAX_SYMBOL_LEN`] ASCII letters or digits, stored upper-cased and
//! zero-padded in 16 bytes, so it compares and hashes as two machine words and never allocates.

use std::fmt;

/// Longest symbol accepted. Real base assets run to 8 characters (`CHILLGUY`); 16 leaves room.
pub const MAX_SYMBOL_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    #[error("empty asset symbol")]
    Empty,
    #[error("asset symbol longer than {MAX_SYMBOL_LEN} characters")]
    TooLong,
    #[error("asset symbols are letters and digits; found byte {byte:#04x} at offset {at}")]
    InvalidByte { byte: u8, at: usize },
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    bytes: [u8; MAX_SYMBOL_LEN],
}

impl Symbol {
    /// Parses a symbol from request or frame bytes, case-insensitively.
    pub fn parse(text: &[u8]) -> Result<Symbol, SymbolError> {
        if text.is_empty() {
            return Err(SymbolError::Empty);
        }
        if text.len() > MAX_SYMBOL_LEN {
            return Err(SymbolError::TooLong);
        }
        let mut bytes = [0u8; MAX_SYMBOL_LEN];
        for (at, (slot, &byte)) in bytes.iter_mut().zip(text).enumerate() {
            if !byte.is_ascii_alphanumeric() {
                return Err(SymbolError::InvalidByte { byte, at });
            }
            *slot = byte.to_ascii_uppercase();
        }
        Ok(Symbol { bytes })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII alphanumerics are ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        let len = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_SYMBOL_LEN);
        self.bytes.get(..len).unwrap_or_default()
    }

    /// The symbol as two little-endian words, for hashing and lock-free storage.
    pub fn to_words(&self) -> [u64; 2] {
        let (lo, hi) = self.bytes.split_at(8);
        let word = |half: &[u8]| {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(half);
            u64::from_le_bytes(eight)
        };
        [word(lo), word(hi)]
    }

    /// Inverse of [`Symbol::to_words`]; `None` for words no symbol packs to.
    pub fn from_words(words: [u64; 2]) -> Option<Symbol> {
        let mut bytes = [0u8; MAX_SYMBOL_LEN];
        let (lo, hi) = bytes.split_at_mut(8);
        lo.copy_from_slice(&words[0].to_le_bytes());
        hi.copy_from_slice(&words[1].to_le_bytes());
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(MAX_SYMBOL_LEN);
        let (used, padding) = bytes.split_at(len);
        let valid = len > 0
            && used
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && padding.iter().all(|&b| b == 0);
        valid.then_some(Symbol { bytes })
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({})", self.as_str())
    }
}

impl std::str::FromStr for Symbol {
    type Err = SymbolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Symbol::parse(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively() {
        let cases: &[(&str, Result<&str, SymbolError>)] = &[
            ("btc", Ok("BTC")),                           // TC0
            ("BTC", Ok("BTC")),                           // TC1
            ("1inch", Ok("1INCH")),                       // TC2 leading digit
            ("s", Ok("S")),                               // TC3 one letter
            ("ChillGuy", Ok("CHILLGUY")),                 // TC4
            ("ABCDEFGHIJKLMNOP", Ok("ABCDEFGHIJKLMNOP")), // TC5 longest
            ("", Err(SymbolError::Empty)),
            ("ABCDEFGHIJKLMNOPQ", Err(SymbolError::TooLong)),
            (
                "BTC-USD",
                Err(SymbolError::InvalidByte { byte: b'-', at: 3 }),
            ),
            ("BT C", Err(SymbolError::InvalidByte { byte: b' ', at: 2 })),
            ("BTC\0", Err(SymbolError::InvalidByte { byte: 0, at: 3 })),
            ("é", Err(SymbolError::InvalidByte { byte: 0xc3, at: 0 })),
        ];
        for (text, expected) in cases {
            let got = Symbol::parse(text.as_bytes());
            assert_eq!(
                got.as_ref().map(Symbol::as_str),
                expected.as_ref().map(|s| *s),
                "{text:?}"
            );
        }
    }

    #[test]
    fn words_round_trip_and_reject_garbage() {
        for text in ["BTC", "1INCH", "ABCDEFGHIJKLMNOP", "W"] {
            let symbol = Symbol::parse(text.as_bytes()).unwrap();
            assert_eq!(Symbol::from_words(symbol.to_words()), Some(symbol));
        }
        assert_eq!(Symbol::from_words([0, 0]), None, "empty");
        assert_eq!(
            Symbol::from_words([u64::from_le_bytes(*b"btc\0\0\0\0\0"), 0]),
            None,
            "lower case"
        );
        assert_eq!(
            Symbol::from_words([u64::from_le_bytes(*b"B\0C\0\0\0\0\0"), 0]),
            None,
            "gap"
        );
    }
}
