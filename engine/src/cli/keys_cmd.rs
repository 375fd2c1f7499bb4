//! `beast keys create|list|show|revoke`: API keys in the configured store. A key is printed once,
//! by `create`; the store keeps its SHA-256 hash and its first characters.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use beast_core::clock::wall_ms;
use beast_engine::access::Tier;
use beast_engine::access::key::ApiKey;
use beast_engine::config::ConfigArgs;
use beast_engine::store::{NewKey, StoredKey};
use clap::ArgMatches;

use super::Failure;
use super::store::open_store;

#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key and print it on stdout (the only time it is shown).
    Create {
        /// demo (3/s), free (10/s), basic (100/s), pro (1 000/s), stress (100 000/s),
        /// partner (10 000/s).
        #[arg(long)]
        tier: Tier,
        /// What the key is for (shown by `list`).
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
    /// List every key: id, prefix, tier, name, created, revoked.
    List {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
    /// Show one key as JSON, by id or by the key itself.
    Show {
        key: String,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
    /// Revoke a key, by id or by the key itself; every reactor refuses it within a second.
    Revoke {
        key: String,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Text,
    Json,
}

pub fn run(
    command: KeysCommand,
    matches: Option<&ArgMatches>,
    file: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let settings = match &command {
        KeysCommand::Create { settings, .. }
        | KeysCommand::List { settings, .. }
        | KeysCommand::Show { settings, .. }
        | KeysCommand::Revoke { settings, .. } => settings,
    };
    let loaded = super::load_config(settings, matches, file)?;
    let mut store = open_store(&loaded.config)?;
    match command {
        KeysCommand::Create { tier, name, .. } => {
            let key = ApiKey::generate().context("creating a key")?;
            let prefix = key.prefix();
            let new = NewKey {
                hash: key.hash(),
                prefix: &prefix,
                name: &name,
                tier,
                now_ms: wall_ms(),
            };
            let id = store
                .run(async |s| s.create_key(&new).await)
                .context("storing the key")?;
            eprintln!("created key {id} ({prefix}, tier {tier})");
            super::print_out(&format!("{}\n", key.as_str()))?;
        }
        KeysCommand::List { format, .. } => {
            let keys = store
                .run(async |s| s.keys().await)
                .context("reading keys")?;
            let text = match format {
                Format::Json => format!(
                    "{}\n",
                    serde_json::to_string(&keys).context("encoding keys")?
                ),
                Format::Text => table(&keys),
            };
            super::print_out(&text)?;
        }
        KeysCommand::Show { key, .. } => {
            let found = find_in(&mut store, &key)?;
            let mut value = serde_json::to_value(&found).context("encoding the key")?;
            if let Some(fields) = value.as_object_mut() {
                fields.insert("active".into(), found.revoked_ms.is_none().into());
            }
            super::print_out(&format!("{value}\n"))?;
        }
        KeysCommand::Revoke { key, .. } => {
            let found = find_in(&mut store, &key)?;
            let id = found.id;
            if store
                .run(async |s| s.revoke_key(id, wall_ms()).await)
                .context("revoking the key")?
            {
                eprintln!("revoked key {} ({})", found.id, found.prefix);
            } else {
                return Err(Failure::Input(format!(
                    "key {} ({}) was already revoked",
                    found.id, found.prefix
                )));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A key of the store, by id or by the key itself.
fn find_in(store: &mut super::store::Session, wanted: &str) -> Result<StoredKey, Failure> {
    let keys = store
        .run(async |s| s.keys().await)
        .context("reading keys")?;
    find(&keys, wanted)
}

/// A key by id (digits) or by the key itself (hashed and looked up).
fn find(keys: &[StoredKey], wanted: &str) -> Result<StoredKey, Failure> {
    let found = match wanted.parse::<u64>() {
        Ok(id) => keys.iter().find(|k| k.id == id),
        Err(_) => ApiKey::hash_presented(wanted.as_bytes())
            .and_then(|hash| keys.iter().find(|k| k.hash == hash)),
    };
    found.cloned().ok_or_else(|| {
        Failure::Input(format!(
            "no key {}",
            if wanted.parse::<u64>().is_ok() {
                wanted.to_string()
            } else {
                "with that value".into()
            }
        ))
    })
}

fn table(keys: &[StoredKey]) -> String {
    let mut out = format!(
        "{:>5}  {:<12} {:<8} {:<20} {:<20} {}\n",
        "id", "prefix", "tier", "created", "revoked", "name"
    );
    for k in keys {
        out.push_str(&format!(
            "{:>5}  {:<12} {:<8} {:<20} {:<20} {}\n",
            k.id,
            k.prefix,
            k.tier.name(),
            utc(k.created_ms),
            k.revoked_ms.map_or(String::from("-"), utc),
            k.name
        ));
    }
    out
}

/// `2026-11-29T21:14:43Z` from Unix milliseconds.
pub fn utc(ms: u64) -> String {
    let text = beast_core::clock::rfc3339_ms(ms);
    format!("{}Z", text.get(..19).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        let cases: &[(u64, &str)] = &[
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400_000, "2000-02-29T00:00:00Z"),
            (1_795_986_883_000, "2026-11-29T21:14:43Z"),
        ];
        for (ms, text) in cases {
            assert_eq!(utc(*ms), *text);
        }
    }
}
