//! API keys: how they are made, checked for shape, and hashed. Only the SHA-256 hash of a key is
//! stored; the key itself is shown once, when it is created.

use sha2::{Digest, Sha256};

/// Shortest and longest key accepted from a client.
pub(crate) const MIN_KEY_LEN: usize = 8;
pub(crate) const MAX_KEY_LEN: usize = 64;
/// Generated keys: this prefix, then [`RANDOM_CHARS`] base-62 characters (≈ 238 bits).
pub const PREFIX: &str = "bk_";
const RANDOM_CHARS: usize = 40;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The SHA-256 of a key.
pub type KeyHash = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read randomness from /dev/urandom: {0}")]
    Random(#[from] std::io::Error),
}

/// A key in the clear: only ever held while it is being created and printed.
pub struct ApiKey(String);

/// Fills `out` from the kernel's random source.
pub(crate) fn random_bytes(out: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(out)
}

impl ApiKey {
    /// A fresh random key.
    pub fn generate() -> Result<ApiKey, KeyError> {
        use std::io::Read;
        let mut source = std::fs::File::open("/dev/urandom")?;
        let mut key = String::with_capacity(PREFIX.len() + RANDOM_CHARS);
        key.push_str(PREFIX);
        let mut byte = [0u8; 1];
        while key.len() < PREFIX.len() + RANDOM_CHARS {
            source.read_exact(&mut byte)?;
            // 248 of 256 byte values map evenly onto 62 characters; the rest are redrawn.
            if byte[0] < 248
                && let Some(&c) = ALPHABET.get(usize::from(byte[0] % 62))
            {
                key.push(char::from(c));
            }
        }
        Ok(ApiKey(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> KeyHash {
        digest(self.0.as_bytes())
    }

    /// The first characters, kept in the clear to tell keys apart in listings and logs.
    pub fn prefix(&self) -> String {
        display_prefix(self.0.as_bytes())
    }

    /// The hash of a key a client presented, if it has the shape of a key: 8–64 printable
    /// ASCII characters. Allocates nothing.
    pub fn hash_presented(presented: &[u8]) -> Option<KeyHash> {
        let shaped = (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&presented.len())
            && presented.iter().all(u8::is_ascii_graphic);
        shaped.then(|| digest(presented))
    }
}

/// `bk_AbCd…`: enough to recognise a key, far too little to use it.
pub(crate) fn display_prefix(key: &[u8]) -> String {
    let shown = key.len().min(PREFIX.len() + 6);
    let mut prefix = String::from_utf8_lossy(key.get(..shown).unwrap_or_default()).into_owned();
    prefix.push('…');
    prefix
}

pub(crate) fn digest(bytes: &[u8]) -> KeyHash {
    Sha256::digest(bytes).into()
}

/// Lower-case hex of a hash (how the stores keep it).
pub(crate) fn to_hex(hash: &KeyHash) -> String {
    use std::fmt::Write as _;
    hash.iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

pub(crate) fn from_hex(text: &str) -> Option<KeyHash> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (slot, pair) in hash.iter_mut().zip(bytes.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.as_str().starts_with(PREFIX) && a.as_str().len() == PREFIX.len() + RANDOM_CHARS);
        assert!(
            a.as_str()[PREFIX.len()..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric())
        );
        assert_eq!(
            ApiKey::hash_presented(a.as_str().as_bytes()),
            Some(a.hash())
        );
        assert_eq!(from_hex(&to_hex(&a.hash())), Some(a.hash()));
        assert!(a.prefix().starts_with("bk_") && a.prefix().ends_with('…'));
    }

    #[test]
    fn presented_keys_must_look_like_keys() {
        let cases: &[(&[u8], bool)] = &[
            (b"bk_0123456789", true),
            (b"short", false),
            (b"has space in it", false),
            (&[b'k'; 64], true),
            (&[b'k'; 65], false),
            (b"tab\tinside", false),
        ];
        for (key, ok) in cases {
            assert_eq!(ApiKey::hash_presented(key).is_some(), *ok, "{key:?}");
        }
    }
}
