//! Command-line interface: `beast serve`, `beast config show|check`, `beast version`.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.

mod cluster_cmd;
mod config_cmd;
mod doctor_cmd;
mod feeds_cmd;
mod health_cmd;
mod keys_cmd;
mod serve;
mod sim_cmd;
mod store;
mod subscriptions_cmd;
mod usage_cmd;
mod version;

use std::path::PathBuf;
use std::process::ExitCode;

use beast_engine::config::{ConfigArgs, ConfigError};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Beast: a thread-per-core crypto price server (UDP and HTTP/1.1) fed by six exchanges.
#[derive(Parser, Debug)]
#[command(
    name = "beast",
    version,
    propagate_version = true,
    max_term_width = 110
)]
pub struct Cli {
    /// beast.toml to read [default: ./beast.toml when it exists]
    #[arg(long, env = "BEAST_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the price server.
    Serve(Box<serve::ServeArgs>),
    /// Show or check the configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Run the exchange simulator on its own (six venues, ws:// and wss://, REST, faults).
    Sim(sim_cmd::SimArgs),
    /// Exchange feed tools.
    #[command(subcommand)]
    Feeds(feeds_cmd::FeedsCommand),
    /// API keys: create, list, show, revoke.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Usage records: count them.
    #[command(subcommand)]
    Usage(usage_cmd::UsageCommand),
    /// Push subscriptions: create, list, show, pause, resume, delete, rotate-secret, deliveries, replay.
    #[command(subcommand)]
    Subscriptions(subscriptions_cmd::SubscriptionsCommand),
    /// The cluster as Valkey has it: the live nodes.
    #[command(subcommand)]
    Cluster(cluster_cmd::ClusterCommand),
    /// Check this host and configuration for running a node: exit 0 ok, 1 warnings, 2 failures.
    Doctor(Box<doctor_cmd::DoctorArgs>),
    /// Ask the node on this host for /health (a container's HEALTHCHECK): exit 0 while it serves.
    Health(Box<health_cmd::HealthArgs>),
    /// Print the version, git commit, target and I/O backends.
    Version(version::VersionArgs),
}

/// A failure, sorted by exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad configuration or usage: exit 2.
    Config(ConfigError),
    /// A bad input file named by the configuration (prices, API keys): exit 2.
    Input(String),
    /// Anything else: exit 1.
    Runtime(anyhow::Error),
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Config(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli, &matches) {
        Ok(code) => code,
        Err(Failure::Config(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Input(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Makes `dir` if needed and proves a file can be written in it (and removed again).
fn writable_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let probe = dir.join(".beast-write-probe");
    std::fs::create_dir_all(dir)?;
    std::fs::write(&probe, b"probe")?;
    std::fs::remove_file(&probe)
}

/// The error and its causes on one line, each cause once: many errors already quote their
/// source in their own message (`cannot listen on …: Address already in use`), and printing
/// the chain after it would say the same thing twice.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli, matches: &ArgMatches) -> Result<ExitCode, Failure> {
    let sub = |name: &str| matches.subcommand_matches(name);
    match cli.command {
        Command::Serve(args) => serve::run(&args, sub("serve"), cli.config.as_deref()),
        Command::Cluster(command) => {
            let cluster_matches = sub("cluster").and_then(|m| m.subcommand().map(|(_, m)| m));
            cluster_cmd::run(command, cluster_matches, cli.config.as_deref())
        }
        Command::Doctor(args) => doctor_cmd::run(&args, sub("doctor"), cli.config.as_deref()),
        Command::Health(args) => health_cmd::run(&args, sub("health"), cli.config.as_deref()),
        Command::Config(command) => {
            let config_matches = sub("config").and_then(|m| m.subcommand().map(|(_, m)| m));
            config_cmd::run(command, config_matches, cli.config.as_deref())
        }
        Command::Feeds(command) => feeds_cmd::run(command),
        Command::Keys(command) => {
            let keys_matches = sub("keys").and_then(|m| m.subcommand().map(|(_, m)| m));
            keys_cmd::run(command, keys_matches, cli.config.as_deref())
        }
        Command::Subscriptions(command) => {
            let sub_matches = sub("subscriptions").and_then(|m| m.subcommand().map(|(_, m)| m));
            subscriptions_cmd::run(command, sub_matches, cli.config.as_deref())
        }
        Command::Usage(command) => {
            let usage_matches = sub("usage").and_then(|m| m.subcommand().map(|(_, m)| m));
            usage_cmd::run(command, usage_matches, cli.config.as_deref())
        }
        Command::Sim(args) => sim_cmd::run(&args),
        Command::Version(args) => version::run(&args),
    }
}

/// Writes command output. A closed pipe (`beast config show | head`) is not an error.
fn print_out(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Runtime(e.into())),
        _ => Ok(()),
    }
}

/// The settings flattened into a command, resolved with its matches.
fn load_config(
    args: &ConfigArgs,
    matches: Option<&ArgMatches>,
    file: Option<&std::path::Path>,
) -> Result<beast_engine::config::Loaded, ConfigError> {
    beast_engine::config::Config::load(args, matches, file)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let quoted = anyhow::Error::new(beast_engine::reactor::BindError {
            setting: "TCP_PORT_LPO",
            addr: "127.0.0.1:80".parse().unwrap(),
            source: io,
        })
        .context("cannot start the engine");
        assert_eq!(
            super::one_line(&quoted),
            "cannot start the engine: cannot listen on TCP_PORT_LPO 127.0.0.1:80: Address already in use"
        );
        let plain = anyhow::anyhow!("disk full").context("cannot write the journal");
        assert_eq!(
            super::one_line(&plain),
            "cannot write the journal: disk full"
        );
    }
}
