//! `beast sim`: the exchange simulator on its own, for running `beast` (or anything else)
//! against six local exchanges. Prints one JSON line when ready; SIGTERM/SIGINT stop it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use beast_core::Venue;
use beast_feeds::sim::{SimConfig, Simulator, Source};

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// ws:// and http:// port (0: any free port).
    #[arg(long, default_value_t = 18900)]
    pub plain_port: u16,
    /// wss:// and https:// port (0: any free port).
    #[arg(long, default_value_t = 18943)]
    pub tls_port: u16,
    /// Price frames per second on each connection.
    #[arg(long, default_value_t = 25.0)]
    pub rate: f64,
    /// What drives prices.
    #[arg(long, value_enum, default_value_t = SourceArg::Samples)]
    pub source: SourceArg,
    /// Crypto.com heartbeat period, in seconds.
    #[arg(long, default_value_t = 30)]
    pub heartbeat_seconds: u64,
    /// Write the generated TLS certificate (PEM) here, for clients to trust.
    #[arg(long)]
    pub cert_out: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum SourceArg {
    Samples,
    Walk,
}

pub fn run(args: &SimArgs) -> Result<ExitCode, super::Failure> {
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 100_000.0) {
        return Err(super::Failure::Input(
            "--rate must be above 0 and at most 100000".into(),
        ));
    }
    let source = match args.source {
        SourceArg::Samples => Source::Samples,
        SourceArg::Walk => Source::Walk,
    };
    let config = SimConfig {
        bind: args.bind,
        plain_port: args.plain_port,
        tls_port: args.tls_port,
        rate: args.rate,
        source,
        heartbeat_every: Duration::from_secs(args.heartbeat_seconds.max(1)),
    };
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("cannot install signal handlers")?;
    let mut sim = Simulator::start(config).context("cannot start the simulator")?;
    if let Some(path) = &args.cert_out {
        std::fs::write(path, &sim.certificate_pem)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let venues: serde_json::Map<String, serde_json::Value> = Venue::ALL
        .iter()
        .map(|v| {
            let (tls, plain) = (sim.endpoints(*v, true), sim.endpoints(*v, false));
            (v.name().to_string(), serde_json::json!({ "wss": tls.ws_url, "ws": plain.ws_url, "https": tls.rest_base, "http": plain.rest_base }))
        })
        .collect();
    let ready = serde_json::json!({
        "event": "ready",
        "plain": sim.plain.to_string(),
        "tls": sim.tls.to_string(),
        "control": format!("http://{}/control", sim.plain),
        "cert": args.cert_out.as_ref().map(|p| p.display().to_string()),
        "venues": venues,
    });
    super::print_out(&format!("{ready}\n"))?;
    let _ = signals.forever().next();
    sim.stop();
    Ok(ExitCode::SUCCESS)
}
