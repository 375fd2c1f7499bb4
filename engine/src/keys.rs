//! API keys accepted by the request path. Until the key store lands, an operator file lists
//! them (`--api-keys FILE`): one key per line, `#` starts a comment, blank lines ignored.

use std::collections::HashSet;
use std::path::Path;

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 64;
/// Most keys a file may hold.
pub const MAX_KEYS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read API keys file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "API keys file {path} line {line}: a key is 8-{MAX_KEY_LEN} printable characters without spaces"
    )]
    Invalid { path: String, line: usize },
    #[error("API keys file {path} holds more than {MAX_KEYS} keys")]
    TooMany { path: String },
}

/// A set of keys. Lookups hash the request bytes in place: no allocation.
#[derive(Debug, Default, Clone)]
pub struct ApiKeys {
    keys: HashSet<Box<[u8]>>,
}

impl ApiKeys {
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> ApiKeys {
        ApiKeys {
            keys: keys.into_iter().map(|k| k.as_bytes().into()).collect(),
        }
    }

    pub fn load(path: &Path) -> Result<ApiKeys, KeysError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Read {
            path: name.clone(),
            source,
        })?;
        let mut keys = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let key = line.split('#').next().unwrap_or("").trim();
            if key.is_empty() {
                continue;
            }
            if !(8..=MAX_KEY_LEN).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(KeysError::Invalid {
                    path: name,
                    line: i + 1,
                });
            }
            keys.insert(Box::from(key.as_bytes()));
            if keys.len() > MAX_KEYS {
                return Err(KeysError::TooMany { path: name });
            }
        }
        Ok(ApiKeys { keys })
    }

    #[inline]
    pub fn contains(&self, key: &[u8]) -> bool {
        key.len() <= MAX_KEY_LEN && self.keys.contains(key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_key_file() {
        let dir = std::env::temp_dir().join(format!("beast-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(
            &good,
            "# demo keys\nkey-one-12345\n\n  key-two-67890  # trailing comment\n",
        )
        .unwrap();
        let keys = ApiKeys::load(&good).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.contains(b"key-one-12345") && keys.contains(b"key-two-67890"));
        assert!(!keys.contains(b"key-one"));
        let bad = dir.join("bad");
        std::fs::write(&bad, "ok-key-12345\nshort\n").unwrap();
        assert!(matches!(
            ApiKeys::load(&bad),
            Err(KeysError::Invalid { line: 2, .. })
        ));
        assert!(matches!(
            ApiKeys::load(&dir.join("missing")),
            Err(KeysError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
