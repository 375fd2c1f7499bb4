//! `beast subscriptions create|list|show|pause|resume|delete|rotate-secret|deliveries|replay`:
//! push subscriptions in the configured store. The push node (`SERVER_TYPE=WEBHOOK_SERVER`)
//! sees a change within `WEBHOOK_POLL_MS`. A secret is printed once, by `create` and
//! `rotate-secret`.

use std::path::Path;
use std::process::ExitCode;

use beast_core::clock::wall_ms;
use beast_engine::config::{Config, ConfigArgs};
use beast_engine::push::guard::Guard;
use beast_engine::push::manage::{self, Limits, ManageError};
use beast_engine::push::subscription::{Spec, Subscription};
use clap::ArgMatches;

use super::Failure;
use super::keys_cmd::{Format, utc};
use super::store::open_store;

#[derive(clap::Subcommand, Debug)]
pub enum SubscriptionsCommand {
    /// Create a subscription; prints it as JSON with its secret (the only time it is shown).
    Create {
        /// The owning API key's id (`beast keys list`).
        #[arg(long)]
        owner: u64,
        /// udp://host:port or https://host[:port]/path.
        #[arg(long)]
        target: String,
        /// Comma-separated assets, at most 150.
        #[arg(long, value_delimiter = ',')]
        assets: Vec<String>,
        /// Deliver every N seconds (1-3600).
        #[arg(long)]
        every_s: Option<u32>,
        /// Deliver when an asset's price moved this many basis points (1-10000).
        #[arg(long)]
        move_bps: Option<u32>,
        /// Least time between two move deliveries, ms (100-3600000; default 1000).
        #[arg(long)]
        min_gap_ms: Option<u64>,
        /// json, or v8 (binary records, udp:// only).
        #[arg(long, default_value = "json")]
        format: String,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
    /// List subscriptions (secrets never shown).
    List {
        /// Only this key's.
        #[arg(long)]
        owner: Option<u64>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
    /// Show one subscription as JSON.
    Show {
        id: u64,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
    /// Stop deliveries until `resume`.
    Pause {
        id: u64,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
    /// Deliver again (a paused or a disabled subscription).
    Resume {
        id: u64,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
    /// Delete a subscription (its delivery log is kept until retention).
    Delete {
        id: u64,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
    /// A new secret, printed once; the old one keeps signing beside it for WEBHOOK_SECRET_OVERLAP_S.
    RotateSecret {
        id: u64,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
    /// The delivery log of one subscription, one JSON object a line, oldest first.
    Deliveries {
        id: u64,
        /// Unix ms or RFC 3339 UTC time [default: the last hour].
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 1_000)]
        limit: u64,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
    /// Send again the HTTPS deliveries given up since a time.
    Replay {
        id: u64,
        /// Unix ms or RFC 3339 UTC time.
        #[arg(long)]
        since: String,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
}

impl SubscriptionsCommand {
    fn settings(&self) -> &ConfigArgs {
        match self {
            SubscriptionsCommand::Create { settings, .. }
            | SubscriptionsCommand::List { settings, .. }
            | SubscriptionsCommand::Show { settings, .. }
            | SubscriptionsCommand::Pause { settings, .. }
            | SubscriptionsCommand::Resume { settings, .. }
            | SubscriptionsCommand::Delete { settings, .. }
            | SubscriptionsCommand::RotateSecret { settings, .. }
            | SubscriptionsCommand::Deliveries { settings, .. }
            | SubscriptionsCommand::Replay { settings, .. } => settings,
        }
    }
}

fn failure(e: ManageError) -> Failure {
    if e.is_user_error() {
        Failure::Input(e.to_string())
    } else {
        Failure::Runtime(anyhow::Error::new(e).context("the store"))
    }
}

fn limits(config: &Config) -> Limits {
    Limits {
        max_per_key: config.push.webhook_max_per_key.get_usize(),
        secret_overlap_ms: config.push.webhook_secret_overlap_s.get() * 1_000,
    }
}

fn with_secret(sub: &Subscription, secret: &str) -> String {
    let mut value = sub.view();
    if let Some(fields) = value.as_object_mut() {
        fields.insert("secret".into(), secret.into());
    }
    format!("{value}\n")
}

pub fn run(
    command: SubscriptionsCommand,
    matches: Option<&ArgMatches>,
    file: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let loaded = super::load_config(command.settings(), matches, file)?;
    let config = &loaded.config;
    let limits = limits(config);
    let mut store = open_store(config)?;
    let now = wall_ms();
    let out = match command {
        SubscriptionsCommand::Create {
            owner,
            target,
            assets,
            every_s,
            move_bps,
            min_gap_ms,
            format,
            ..
        } => {
            let spec = Spec {
                target,
                assets,
                every_s,
                move_bps,
                min_gap_ms,
                format: Some(format),
            };
            let guard = Guard::new(config.push.webhook_allow_nets.0.clone());
            let (sub, secret) = store
                .run(async |s| manage::create(s, &guard, &limits, owner, &spec, now).await)
                .map_err(failure)?;
            eprintln!("created subscription {} ({})", sub.id, sub.target);
            with_secret(&sub, &secret)
        }
        SubscriptionsCommand::List { owner, format, .. } => {
            let subs = store
                .run(async |s| manage::list(s, owner).await)
                .map_err(failure)?;
            match format {
                Format::Json => {
                    let views: Vec<_> = subs.iter().map(Subscription::view).collect();
                    format!("{}\n", serde_json::Value::from(views))
                }
                Format::Text => table(&subs),
            }
        }
        SubscriptionsCommand::Show { id, .. } => {
            let sub = store
                .run(async |s| manage::get(s, None, id).await)
                .map_err(failure)?;
            format!("{}\n", sub.view())
        }
        SubscriptionsCommand::Pause { id, .. } | SubscriptionsCommand::Resume { id, .. } => {
            let active = matches!(command, SubscriptionsCommand::Resume { .. });
            let sub = store
                .run(async |s| manage::set_active(s, None, id, active, now).await)
                .map_err(failure)?;
            eprintln!("subscription {id} is {}", sub.state.as_str());
            String::new()
        }
        SubscriptionsCommand::Delete { id, .. } => {
            store
                .run(async |s| manage::delete(s, None, id).await)
                .map_err(failure)?;
            eprintln!("deleted subscription {id}");
            String::new()
        }
        SubscriptionsCommand::RotateSecret { id, .. } => {
            let (sub, secret) = store
                .run(async |s| manage::rotate_secret(s, &limits, None, id, now).await)
                .map_err(failure)?;
            eprintln!(
                "subscription {id}: new secret; the old one signs too until {}",
                utc(sub.previous_until_ms)
            );
            with_secret(&sub, &secret)
        }
        SubscriptionsCommand::Deliveries {
            id, since, limit, ..
        } => {
            let since_ms = match since {
                Some(text) => super::usage_cmd::parse_time(&text)?,
                None => now.saturating_sub(3_600_000),
            };
            let rows = store
                .run(async |s| manage::deliveries(s, None, id, since_ms, limit.min(100_000)).await)
                .map_err(failure)?;
            rows.iter()
                .filter_map(|row| serde_json::to_string(row).ok())
                .map(|line| line + "\n")
                .collect()
        }
        SubscriptionsCommand::Replay { id, since, .. } => {
            let since_ms = super::usage_cmd::parse_time(&since)?;
            let waiting = store
                .run(async |s| manage::replay(s, None, id, since_ms, now).await)
                .map_err(failure)?;
            eprintln!(
                "subscription {id}: {waiting} given-up deliveries since {} will be sent again",
                utc(since_ms)
            );
            format!("{{\"subscription\":{id},\"replayed\":{waiting}}}\n")
        }
    };
    super::print_out(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn table(subs: &[Subscription]) -> String {
    let mut out = format!(
        "{:>6}  {:>5}  {:<9} {:<8} {:<12} {:>6}  {}\n",
        "id", "owner", "state", "format", "trigger", "assets", "target"
    );
    for s in subs {
        let trigger = match (s.trigger.every_s, s.trigger.move_bps) {
            (Some(e), Some(m)) => format!("{e}s/{m}bps"),
            (Some(e), None) => format!("{e}s"),
            (None, Some(m)) => format!("{m}bps"),
            (None, None) => "-".into(),
        };
        out.push_str(&format!(
            "{:>6}  {:>5}  {:<9} {:<8} {:<12} {:>6}  {}\n",
            s.id,
            s.owner,
            s.state.as_str(),
            s.format.as_str(),
            trigger,
            s.assets.len(),
            s.target
        ));
    }
    out
}
