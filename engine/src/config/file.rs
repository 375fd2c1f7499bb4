//! beast.toml: top-level `key = value` pairs, one per setting, keys as in `beast config show`.
//!
//! ```toml
//! tcp_port_lpo = 8080
//! cache_url = "redis://cache.internal:6379/0"
//! coinbase_prewarm_assets = ["btc", "eth"]   # or "btc,eth"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// The values of one beast.toml, as text, with the line each came from.
#[derive(Debug, Default)]
pub struct FileValues {
    path: Option<PathBuf>,
    values: BTreeMap<String, FileValue>,
}

#[derive(Debug)]
pub struct FileValue {
    pub text: String,
    pub line: usize,
}

/// Largest beast.toml read: a limit on every size.
const MAX_FILE_BYTES: u64 = 1 << 20;

impl FileValues {
    pub fn empty() -> FileValues {
        FileValues::default()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads and parses `path`. Unknown keys are reported once every group has taken its own.
    pub fn load(path: &Path) -> Result<FileValues, ConfigError> {
        let read_error = |source: std::io::Error| ConfigError::FileRead {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        if size > MAX_FILE_BYTES {
            return Err(ConfigError::FileSyntax {
                path: path.to_path_buf(),
                line: 0,
                message: format!("file is {size} bytes; the limit is {MAX_FILE_BYTES}"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        FileValues::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<FileValues, ConfigError> {
        let line_of = |offset: usize| text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1;
        let table: BTreeMap<String, toml::Spanned<toml::Value>> =
            toml::from_str(text).map_err(|e| ConfigError::FileSyntax {
                path: path.to_path_buf(),
                line: e.span().map_or(0, |s| line_of(s.start)),
                message: e.message().trim().to_string(),
            })?;
        let mut values = BTreeMap::new();
        for (key, spanned) in table {
            let line = line_of(spanned.span().start);
            let text = scalar_text(spanned.get_ref()).ok_or_else(|| ConfigError::FileType {
                path: path.to_path_buf(),
                key: key.clone(),
                line,
            })?;
            values.insert(key, FileValue { text, line });
        }
        Ok(FileValues {
            path: Some(path.to_path_buf()),
            values,
        })
    }

    /// Removes and returns the value of `key`.
    pub fn take(&mut self, key: &str) -> Option<FileValue> {
        self.values.remove(key)
    }

    /// Keys no setting took.
    pub(crate) fn leftover(&self) -> Option<(&str, usize)> {
        self.values.iter().next().map(|(k, v)| (k.as_str(), v.line))
    }
}

/// A scalar as the text a flag would carry; a list of scalars joined by commas.
fn scalar_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|item| match item {
                    toml::Value::Array(_) | toml::Value::Table(_) => None,
                    scalar => scalar_text(scalar),
                })
                .collect();
            parts.map(|p| p.join(","))
        }
        toml::Value::Datetime(_) | toml::Value::Table(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scalars_and_lists_with_lines() {
        let text = "tcp_port_lpo = 9000\n\nname = \"x\"\nassets = [\"btc\", \"eth\"]\nratio = 0.5\nflag = true\n";
        let mut file = FileValues::parse(Path::new("beast.toml"), text).unwrap();
        let cases = [
            ("tcp_port_lpo", "9000", 1),
            ("name", "x", 3),
            ("assets", "btc,eth", 4),
            ("ratio", "0.5", 5),
            ("flag", "true", 6),
        ];
        for (key, value, line) in cases {
            let got = file.take(key).unwrap();
            assert_eq!((got.text.as_str(), got.line), (value, line), "{key}");
        }
        assert!(file.leftover().is_none());
    }

    #[test]
    fn rejects_bad_files_with_the_line() {
        let err = FileValues::parse(Path::new("b.toml"), "a = 1\nb = = 2\n").unwrap_err();
        assert!(
            matches!(err, ConfigError::FileSyntax { line: 2, .. }),
            "{err}"
        );
        let err = FileValues::parse(Path::new("b.toml"), "[server]\nport = 1\n").unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::FileType { line: 2, .. } | ConfigError::FileType { line: 1, .. }
            ),
            "{err}"
        );
        let err = FileValues::parse(Path::new("b.toml"), "a = 1979-05-27\n").unwrap_err();
        assert!(matches!(err, ConfigError::FileType { .. }), "{err}");
    }
}
