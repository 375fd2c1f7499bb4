//! `beast usage count [--key K] [--since T]`: usage records in the configured store, as one JSON
//! line `{"count":N,"store":"sqlite","key_id":null,"since_ms":null}`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use beast_engine::access::ApiKey;
use beast_engine::config::ConfigArgs;
use beast_engine::store::UsageQuery;
use clap::ArgMatches;

use super::Failure;
use super::store::open_store;

#[derive(clap::Subcommand, Debug)]
pub enum UsageCommand {
    /// Count usage records, optionally of one key and from one time on.
    Count {
        /// Key id, or the key itself.
        #[arg(long)]
        key: Option<String>,
        /// Unix milliseconds, or an RFC 3339 UTC time (2026-11-29T21:00:00Z).
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
}

pub fn run(
    command: UsageCommand,
    matches: Option<&ArgMatches>,
    file: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let UsageCommand::Count {
        key,
        since,
        settings,
    } = command;
    let since_ms = since.as_deref().map(parse_time).transpose()?;
    let loaded = super::load_config(&settings, matches, file)?;
    let mut session = open_store(&loaded.config)?;
    let key_id = match key {
        None => None,
        Some(text) => Some(match text.parse::<u64>() {
            Ok(id) => id,
            Err(_) => {
                let hash = ApiKey::hash_presented(text.as_bytes())
                    .ok_or_else(|| Failure::Input("--key is a key id or a key".into()))?;
                let keys = session
                    .run(async |s| s.keys().await)
                    .context("reading keys")?;
                keys.iter()
                    .find(|k| k.hash == hash)
                    .map(|k| k.id)
                    .ok_or_else(|| Failure::Input("no such key".into()))?
            }
        }),
    };
    let query = UsageQuery { key_id, since_ms };
    let count = session
        .run(async |s| s.count_usage(&query).await)
        .context("counting usage records")?;
    let line = serde_json::json!({
        "count": count,
        "store": session.store.kind(),
        "key_id": key_id,
        "since_ms": since_ms,
    });
    super::print_out(&format!("{line}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// Unix ms, or `YYYY-MM-DDTHH:MM:SSZ`.
pub(super) fn parse_time(text: &str) -> Result<u64, Failure> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let bad = || {
        Failure::Input(format!(
            "--since {text:?}: Unix milliseconds or YYYY-MM-DDTHH:MM:SSZ"
        ))
    };
    let t = text.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let d: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let h: Vec<i64> = time
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), h.as_slice()) else {
        return Err(bad());
    };
    if !(1..=12).contains(m) || !(1..=31).contains(day) || *hh > 23 || *mm > 59 || *ss > 60 {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if *m <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1000).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1764000000000").ok(), Some(1_764_000_000_000));
        assert_eq!(
            parse_time("2026-11-29T21:14:43Z").ok(),
            Some(1_795_986_883_000)
        );
        assert_eq!(
            parse_time("2000-02-29T00:00:00Z").ok(),
            Some(951_782_400_000)
        );
        for bad in ["yesterday", "2026-13-01T00:00:00Z", "2026-11-29 21:14:43"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
