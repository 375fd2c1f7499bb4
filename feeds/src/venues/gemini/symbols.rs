//! Gemini symbols (`btcusd`, `chillguyusd`, `BTCGBP`) to base assets.

use beast_core::Symbol;

use crate::exchange::{ParseError, Skip};

/// Quote currencies, longest first, so `usdt` wins over `usd` (PROTOCOLS.md §1).
const QUOTES: [&str; 11] = [
    "rlusd", "usdt", "usdc", "gusd", "usd", "eur", "gbp", "sgd", "btc", "eth", "dai",
];

/// The pairs a connection subscribed to.
#[derive(Default, Debug, Clone)]
pub struct Pairs {
    pairs: Vec<(String, Symbol)>,
}

impl Pairs {
    pub fn new(assets: &[Symbol], quote: &str) -> Pairs {
        Pairs {
            pairs: assets
                .iter()
                .map(|a| (format!("{}{quote}", a.as_str().to_ascii_lowercase()), *a))
                .collect(),
        }
    }

    /// The base asset of `symbol` (any case): a subscribed pair if it is one, otherwise the
    /// symbol with its quote suffix stripped. Perpetuals are not spot prices.
    pub fn resolve(
        &self,
        symbol: &str,
        field: &'static str,
    ) -> Result<Result<Symbol, Skip>, ParseError> {
        if let Some((_, asset)) = self
            .pairs
            .iter()
            .find(|(pair, _)| pair.eq_ignore_ascii_case(symbol))
        {
            return Ok(Ok(*asset));
        }
        let lower_ends_with = |suffix: &str| {
            symbol.len() > suffix.len()
                && symbol
                    .get(symbol.len() - suffix.len()..)
                    .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
        };
        if lower_ends_with("perp") {
            return Ok(Err(Skip::Derivative));
        }
        for quote in QUOTES {
            if lower_ends_with(quote) {
                let base = symbol.get(..symbol.len() - quote.len()).unwrap_or("");
                return Symbol::parse(base.as_bytes())
                    .map(Ok)
                    .map_err(|_| ParseError::Symbol(field));
            }
        }
        if symbol.is_empty() || !symbol.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ParseError::Symbol(field));
        }
        // Well formed, but quoted in a currency we do not know (`zecltc`): not malformed.
        Ok(Err(Skip::UnknownPair))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_bases() {
        let subscribed = Pairs::new(
            &[
                Symbol::parse(b"XXXG").unwrap(),
                Symbol::parse(b"CHILLGUY").unwrap(),
            ],
            "usd",
        );
        let cases: &[(&str, Result<Result<&str, Skip>, ParseError>)] = &[
            ("btcusd", Ok(Ok("BTC"))),
            ("BTCUSD", Ok(Ok("BTC"))),
            ("chillguyusd", Ok(Ok("CHILLGUY"))),
            ("xxxgusd", Ok(Ok("XXXG"))), // subscribed: the table wins
            ("yyygusd", Ok(Ok("YYY"))),  // not subscribed: longest quote first
            ("btcusdt", Ok(Ok("BTC"))),
            ("ethgbp", Ok(Ok("ETH"))),
            ("batbtc", Ok(Ok("BAT"))),
            ("btcusdcperp", Ok(Err(Skip::Derivative))),
            ("usd", Ok(Err(Skip::UnknownPair))), // never strip to an empty base
            ("zecltc", Ok(Err(Skip::UnknownPair))),
            ("btc-usd", Err(ParseError::Symbol("s"))),
            ("", Err(ParseError::Symbol("s"))),
        ];
        for (symbol, expected) in cases {
            let got = subscribed
                .resolve(symbol, "s")
                .map(|r| r.map(|s| s.to_string()));
            let expected = (*expected).map(|r| r.map(str::to_string));
            assert_eq!(got, expected, "{symbol}");
        }
    }
}
