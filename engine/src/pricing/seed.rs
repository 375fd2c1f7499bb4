//! The start-up price file (`--prices FILE`): JSON lines such as
//! `{"asset":"BTC","price":"97123.45","source":"coinbase-ws","ts":1732400000123}`.
//! `price` may be a string or a number token (kept exactly as written); `source` defaults to
//! `coinbase-ws`, `ts` (Unix ms) to the time of loading.

use std::path::Path;

use beast_core::{Decimal, Source, Symbol, Venue};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Largest prices file read, and most lines in it.
const MAX_FILE_BYTES: u64 = 64 << 20;
const MAX_LINES: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seed {
    pub asset: Symbol,
    pub price: Decimal,
    pub source: Source,
    pub exchange_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read prices file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("prices file {path} line {line}: {reason}")]
    Invalid {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("prices file {path} is larger than {MAX_FILE_BYTES} bytes or {MAX_LINES} lines")]
    TooLarge { path: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    asset: &'a str,
    #[serde(borrow)]
    price: &'a RawValue,
    source: Option<&'a str>,
    ts: Option<u64>,
}

pub fn load(path: &Path, now_ms: u64) -> Result<Vec<Seed>, SeedError> {
    let name = path.display().to_string();
    let read_error = |source| SeedError::Read {
        path: name.clone(),
        source,
    };
    if std::fs::metadata(path).map_err(read_error)?.len() > MAX_FILE_BYTES {
        return Err(SeedError::TooLarge { path: name });
    }
    let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
        path: name.clone(),
        source,
    })?;
    parse(&text, now_ms).map_err(|(line, reason)| match line {
        0 => SeedError::TooLarge { path: name.clone() },
        line => SeedError::Invalid {
            path: name.clone(),
            line,
            reason,
        },
    })
}

/// Parses the file's text; errors carry the 1-based line (0: too many lines).
pub fn parse(text: &str, now_ms: u64) -> Result<Vec<Seed>, (usize, String)> {
    let mut seeds = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if seeds.len() >= MAX_LINES {
            return Err((0, String::new()));
        }
        let parsed: Line<'_> = serde_json::from_str(line).map_err(|e| (line_no, e.to_string()))?;
        let asset = Symbol::parse(parsed.asset.as_bytes())
            .map_err(|e| (line_no, format!("asset {:?}: {e}", parsed.asset)))?;
        let raw = parsed.price.get();
        let text = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(raw);
        let price = Decimal::parse(text).map_err(|e| (line_no, format!("price {raw}: {e}")))?;
        if price.is_zero() {
            return Err((line_no, "price 0 is not a price".into()));
        }
        let source = match parsed.source {
            None => Source::stream(Venue::Coinbase),
            Some(tag) => Source::from_tag(tag).ok_or_else(|| {
                (
                    line_no,
                    format!("unknown source {tag:?} (e.g. coinbase-ws, kraken-rest)"),
                )
            })?,
        };
        seeds.push(Seed {
            asset,
            price,
            source,
            exchange_ms: parsed.ts.unwrap_or(now_ms),
        });
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let text = r#"{"asset":"BTC","price":"97123.450","source":"coinbase-ws","ts":1732400000123}

{"asset":"eth","price":3500.1,"source":"kraken-rest"}
{"asset":"PEPE","price":"0.00001234"}"#;
        let seeds = parse(text, 7).unwrap();
        assert_eq!(seeds.len(), 3);
        assert_eq!(seeds[0].price.to_string(), "97123.450");
        assert_eq!(seeds[0].exchange_ms, 1_732_400_000_123);
        assert_eq!(
            (
                seeds[1].asset.as_str(),
                seeds[1].source,
                seeds[1].exchange_ms
            ),
            ("ETH", Source::rest(Venue::Kraken), 7)
        );
        assert_eq!(seeds[2].source, Source::stream(Venue::Coinbase));
    }

    #[test]
    fn rejects_bad_lines_with_their_number() {
        let cases = [
            ("{\"asset\":\"BTC\"}", 1, "missing field `price`"),
            ("\n{\"asset\":\"BTC\",\"price\":\"-1\"}", 2, "negative"),
            (
                "{\"asset\":\"BTC-USD\",\"price\":\"1\"}",
                1,
                "asset \"BTC-USD\"",
            ),
            (
                "{\"asset\":\"BTC\",\"price\":\"1\",\"source\":\"binance\"}",
                1,
                "unknown source",
            ),
            ("{\"asset\":\"BTC\",\"price\":\"0\"}", 1, "not a price"),
            (
                "{\"asset\":\"BTC\",\"price\":\"1\",\"extra\":1}",
                1,
                "unknown field",
            ),
            ("not json", 1, "expected"),
        ];
        for (text, line, needle) in cases {
            let (got_line, reason) = parse(text, 0).unwrap_err();
            assert_eq!(got_line, line, "{text}");
            assert!(reason.contains(needle), "{text}: {reason}");
        }
    }
}
