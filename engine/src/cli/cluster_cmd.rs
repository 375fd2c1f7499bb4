//! `beast cluster status`: the live nodes as Valkey has them (`cluster:stats:<node>`, each
//! expiring 10 s after its node last wrote it): name, version, load, key-set version, prices.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use beast_engine::config::ConfigArgs;
use clap::ArgMatches;

#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// The live nodes: one line each (or their entries as JSON lines with --json).
    Status {
        /// One JSON object per node.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: Box<ConfigArgs>,
    },
}

pub fn run(
    command: ClusterCommand,
    matches: Option<&ArgMatches>,
    file: Option<&Path>,
) -> Result<ExitCode, super::Failure> {
    let ClusterCommand::Status { json, settings } = command;
    let loaded = super::load_config(&settings, matches, file)?;
    let Some(url) = loaded.config.stores.cache_url.clone() else {
        return Err(super::Failure::Input(
            "beast cluster status reads the cluster from Valkey: set CACHE_URL".into(),
        ));
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a runtime")?;
    let members = runtime
        .block_on(async {
            let mut conn = beast_engine::side::cache::dial(url.expose()).await?;
            beast_engine::side::cache::members(&mut conn).await
        })
        .map_err(|e| anyhow::anyhow!("Valkey at {}: {e}", url.masked()))?;
    let now = beast_core::clock::wall_ms();
    let mut out = String::new();
    if !json {
        out.push_str(&format!(
            "{} live node(s)\n{:<24} {:<10} {:>8} {:>10} {:>6} {:>8}  {}\n",
            members.len(),
            "node",
            "version",
            "age_ms",
            "req/s",
            "keys",
            "priced",
            "rate limits"
        ));
    }
    for member in &members {
        if json {
            out.push_str(&member.to_string());
            out.push('\n');
            continue;
        }
        let text = |field: &str| member[field].as_str().unwrap_or("-").to_string();
        let number = |field: &str| member[field].as_u64().map_or("-".into(), |n| n.to_string());
        let age = member["ts"]
            .as_u64()
            .map_or("-".into(), |ts| now.saturating_sub(ts).to_string());
        out.push_str(&format!(
            "{:<24} {:<10} {:>8} {:>10} {:>6} {:>8}  {}\n",
            text("node"),
            text("version"),
            age,
            number("requests_per_second"),
            number("keys_version"),
            number("priced"),
            limits(&member["limits"])
        ));
    }
    super::print_out(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// A node's lease state in words: where its shares come from, and per tier with keys asked
/// for, how many hold a share of their own and the node's mean share of their limits.
fn limits(limits: &serde_json::Value) -> String {
    let mode = limits["mode"].as_str().unwrap_or("-");
    let tiers: Vec<String> = limits["tiers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(tier, state)| {
            let keys = state["keys"].as_u64().filter(|k| *k > 0)?;
            let share = state["share"].as_f64().unwrap_or(0.0);
            Some(format!("{tier} {keys} key(s) at {:.0} %", share * 100.0))
        })
        .collect();
    let default = limits["default_share"]
        .as_f64()
        .map_or(String::new(), |s| format!(", others {:.0} %", s * 100.0));
    if tiers.is_empty() {
        format!("{mode}{default}")
    } else {
        format!("{mode}: {}{default}", tiers.join(", "))
    }
}
