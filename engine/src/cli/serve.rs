//! `beast serve`: the price server. Logs go to stderr; one JSON line on stdout says when it is
//! ready and where it listens (scripts and tests read it).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context as _;
use beast_core::clock::wall_ms;
use beast_core::{Symbol, Venue};
use beast_engine::access::Access;
use beast_engine::config::setting::{FeedMode, LogFormat, ServerType, SimSource};
use beast_engine::config::{Config, ConfigArgs, Loaded};
use beast_engine::logging::Flush;
use beast_engine::price::PriceTable;
use beast_engine::pricing::{self, PriceThread, PriceThreadOptions};
use beast_engine::push::guard::Guard;
use beast_engine::push::{PushEngine, PushOptions};
use beast_engine::server::{ServeOptions, Server, Wiring, reactor_count};
use beast_engine::side::{self, SideInputs, SideOptions};
use beast_feeds::client::{Endpoints, FeedOptions, FeedSpec, FeedStatus, Trust};
use beast_feeds::sim::{SimConfig, Simulator};
use beast_feeds::venues;
use clap::ArgMatches;

use super::Failure;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub settings: ConfigArgs,
}

/// What ends `serve`.
enum Stop {
    Signal(i32),
    ReactorDied(usize),
}

pub fn run(
    args: &ServeArgs,
    matches: Option<&ArgMatches>,
    file: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let Loaded { config, .. } = super::load_config(&args.settings, matches, file)?;
    let (log_switch, _log_flush) =
        init_logging(&config.runtime.beast_log.0, config.runtime.beast_log_format).unzip();

    let seeds = match &config.engine.prices {
        Some(path) => {
            pricing::seed::load(&path.0, wall_ms()).map_err(|e| Failure::Input(e.to_string()))?
        }
        None => Vec::new(),
    };
    data_dir_usable(&config.stores.beast_data_dir.0)?;
    let prewarm = prewarm_lists(&config);
    let mut options = ServeOptions::from_config(&config);
    let (table, mut writer) = PriceTable::with_history_budget(
        config.runtime.beast_max_assets.get_usize(),
        config.runtime.beast_history_max_mib.get_usize() as u64 * (1 << 20),
    );
    // Made-up prices are never shown as a real venue's.
    if config.feeds.feeds == FeedMode::Sim || config.engine.demo_walk.0 {
        writer.mark_simulated();
    }
    let (feeds, simulator) = feed_specs(&config, &prewarm, options.stale_after_ms)?;
    options.feeds = feeds.iter().map(|spec| Arc::clone(&spec.status)).collect();

    // The side thread: keys, usage metering, stores. Its warm start fills the table before
    // the price thread takes the writer.
    let reactors =
        reactor_count(options.reactors, options.pin).map_err(|e| Failure::Input(e.to_string()))?;
    let mut side_options = side_options(&config, options.stale_after_ms);
    // Reactors take cores from the first up; a core they leave free goes to the side thread.
    if options.pin {
        side_options.core = core_affinity::get_core_ids()
            .unwrap_or_default()
            .get(reactors)
            .copied();
    }
    // The configured assets: what a warm start may read back.
    let mut configured: Vec<Symbol> = prewarm
        .iter()
        .flat_map(|(_, assets)| assets.iter().copied())
        .chain(seeds.iter().map(|seed| seed.asset))
        .collect();
    configured.sort();
    configured.dedup();
    let warm = side::cache::warm_start(&side_options, &mut writer, &configured);
    let candles = side::candles::warm_start(&side_options, &mut writer);
    let access = Arc::new(Access::new(config.engine.require_key.0, MAX_KEYS));
    // The performance profile also sets the log level (LOG_LEVEL), admin calls still logged;
    // normal mode restores BEAST_LOG.
    if let Some(switch) = log_switch {
        let level = beast_engine::config::setting::Setting::show(&config.params.log_level);
        let profile = format!("{level},beast_engine::protocol::http::admin=info");
        access.on_mode_change(Box::new(move |performance| {
            switch(performance.then_some(profile.as_str()));
        }));
    }
    let (meters, rings) = if side_options.metering {
        beast_engine::usage::rings(reactors)
    } else {
        (Vec::new(), Vec::new())
    };
    let (side, link) = side::start(
        side_options,
        SideInputs {
            access: Arc::clone(&access),
            table: Arc::clone(&table),
            rings,
            feeds: options.feeds.clone(),
        },
    )
    .context("cannot start the side thread")?;
    link.stats
        .warm_start_prices
        .store(warm, std::sync::atomic::Ordering::Relaxed);
    link.stats
        .candles_restored
        .store(candles, std::sync::atomic::Ordering::Relaxed);
    if !side.wait_ready(Duration::from_secs(5)) {
        tracing::warn!(
            "the side thread was not ready within 5 s (keys not read yet); starting with the keys known so far"
        );
    }
    // A push node: the engine reads the table the price thread fills and the store's
    // subscriptions; nothing else waits for it.
    let push = match config.server.server_type {
        ServerType::Webhook => Some(
            PushEngine::start(
                push_options(&config, options.stale_after_ms),
                Arc::clone(&table),
                Arc::clone(&link.stats),
            )
            .map_err(|e| Failure::Input(e.to_string()))?,
        ),
        ServerType::AppReport => None,
    };
    // Signals are registered before the reactors start, so none is missed.
    let (stop_tx, stop_rx) = mpsc::channel::<Stop>();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("cannot install signal handlers")?;
    let signal_tx = stop_tx.clone();
    std::thread::Builder::new()
        .name("beast-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let _ = signal_tx.send(Stop::Signal(signal));
            }
        })
        .context("cannot start the signal thread")?;

    let died = stop_tx.clone();
    options.on_reactor_exit = Some(Arc::new(move |index| {
        let _ = died.send(Stop::ReactorDied(index));
    }));
    let options_stale_after_ms = options.stale_after_ms;
    let server = Server::start(
        options,
        table,
        Wiring {
            access,
            link,
            meters,
        },
    )
    .context("cannot start the engine")?;
    // The feeds start once the ports are held: a node that cannot listen says so first, not
    // after a page of feed warnings.
    let prices = PriceThread::start(
        writer,
        PriceThreadOptions {
            prewarm,
            seeds,
            demo_walk: config.engine.demo_walk.0,
            stale_after_ms: options_stale_after_ms,
            primary: config.feeds.primary_source.map(|v| v.0),
            rest_every: Duration::from_millis(config.feeds.rest_poll_ms.get()),
            feeds,
        },
    )
    .context("cannot start the price thread")?;
    let addrs = server.addrs();
    let shown = |addr: Option<std::net::SocketAddr>| addr.map(|a| a.to_string());
    let role = beast_engine::config::setting::Setting::show(&config.server.server_type);
    let ready = serde_json::json!({
        "event": "ready",
        "role": role,
        "node": server.node().name,
        "io": server.backend().name(),
        "io_fallback": server.fallback_reason(),
        "reactors": server.reactors(),
        "tcp_lpo": shown(addrs.tcp_lpo),
        "tcp_lrs": shown(addrs.tcp_lrs),
        "health_lpo": shown(addrs.health_lpo),
        "health_lrs": shown(addrs.health_lrs),
        "health_webhook": shown(addrs.health_webhook),
        "udp_lpo": shown(addrs.udp_lpo),
        "udp_lrs": shown(addrs.udp_lrs),
        "feeds": config.feeds.feeds.as_str(),
        "sim": simulator.as_ref().map(|sim| serde_json::json!({ "plain": sim.plain.to_string(), "tls": sim.tls.to_string() })),
    });
    tracing::info!(
        role = %role,
        io = server.backend().name(),
        reactors = server.reactors(),
        feeds = config.feeds.feeds.as_str(),
        tcp_lpo = ?addrs.tcp_lpo,
        udp_lpo = ?addrs.udp_lpo,
        health_webhook = ?addrs.health_webhook,
        "serving"
    );
    super::print_out(&format!("{ready}\n"))?;

    // Every sender lives as long as `serve`, so this returns only on a signal or a reactor exit.
    let stop = stop_rx.recv().unwrap_or(Stop::Signal(0));
    // One grace for the whole shutdown: connections drain within it, and the usage sinks get
    // what is left of it.
    let deadline =
        std::time::Instant::now() + Duration::from_millis(config.engine.shutdown_grace_ms.get());
    match stop {
        Stop::Signal(signal) => tracing::info!(signal, "shutting down: draining connections"),
        Stop::ReactorDied(index) => {
            tracing::error!(reactor = index, "a reactor stopped; shutting down")
        }
    }
    let errors = server.stop();
    if let Some(push) = push {
        push.stop_by(deadline);
    }
    // After the reactors: the side thread's last drain takes every record they queued.
    side.stop_by(deadline);
    prices.stop();
    drop(simulator);
    if errors.is_empty() {
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    } else {
        for e in &errors {
            tracing::error!(error = %e, "reactor failed");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Keys (and rate-limit slots) a node can hold at once.
const MAX_KEYS: usize = 65_536;

fn side_options(config: &Config, stale_after_ms: u64) -> SideOptions {
    let stores = &config.stores;
    SideOptions {
        node: config.server.cluster_node.as_str().to_string(),
        data_dir: stores.beast_data_dir.0.clone(),
        database_url: stores.database().map(|u| u.expose().to_string()),
        cache_url: stores.cache_url.as_ref().map(|u| u.expose().to_string()),
        sqs_queue_url: stores
            .sqs_usage_log_queue_url
            .as_ref()
            .map(|u| u.expose().to_string()),
        aws_region: stores.aws_region.0.clone(),
        metering: stores.usage_metering.0,
        raw_records: stores.usage_raw_records.0,
        journal_fsync: Duration::from_millis(stores.journal_fsync_ms.get()),
        // Eight segments or more under the cap, so giving up the oldest frees an eighth.
        journal_segment_bytes: (stores.journal_max_bytes.get() / 8).min(64 << 20),
        journal_max_bytes: stores.journal_max_bytes.get(),
        retention_days: stores.usage_retention_days.get(),
        keys_poll: Duration::from_millis(stores.keys_poll_ms.get()),
        shutdown_grace: Duration::from_millis(config.engine.shutdown_grace_ms.get()),
        cache_prices_every: Duration::from_secs(stores.cache_prices_every_s.get()),
        cache_stats_every: Duration::from_secs(3),
        stale_after_ms,
        core: None,
        subscriptions: beast_engine::side::SubscriptionPolicy {
            guard: Guard::new(config.push.webhook_allow_nets.0.clone()),
            max_per_key: config.push.webhook_max_per_key.get_usize(),
            secret_overlap_ms: config.push.webhook_secret_overlap_s.get() * 1_000,
        },
    }
}

fn push_options(config: &Config, stale_after_ms: u64) -> PushOptions {
    let push = &config.push;
    PushOptions {
        database_url: config.stores.database().map(|u| u.expose().to_string()),
        data_dir: config.stores.beast_data_dir.0.clone(),
        guard: Guard::new(push.webhook_allow_nets.0.clone()),
        ca_file: push.webhook_ca_file.as_ref().map(|p| p.0.clone()),
        timeout: Duration::from_millis(push.webhook_timeout_ms.get()),
        retries: u32::try_from(push.webhook_retries.get()).unwrap_or(3),
        retry_base_ms: push.webhook_retry_base_ms.get(),
        retry_after_max_ms: push.webhook_retry_after_max_s.get() * 1_000,
        endpoint_in_flight: push.webhook_endpoint_in_flight.get_usize(),
        breaker_failures: u32::try_from(push.webhook_breaker_failures.get()).unwrap_or(5),
        breaker_cooldown_ms: push.webhook_breaker_cooldown_ms.get(),
        disable_after_ms: push.webhook_disable_after_s.get() * 1_000,
        log_retention_days: push.webhook_log_retention_days.get(),
        poll: Duration::from_millis(push.webhook_poll_ms.get()),
        stale_after_ms,
    }
}

/// The data directory is made and written to before anything else starts, so a node that
/// cannot keep its journal, store or history says so first, naming the directory.
fn data_dir_usable(dir: &Path) -> Result<(), Failure> {
    super::writable_dir(dir).with_context(|| {
        format!(
            "the data directory {} is not writable (BEAST_DATA_DIR)",
            dir.display()
        )
    })?;
    Ok(())
}

/// Each venue's prewarmed (subscribed) assets.
fn prewarm_lists(config: &Config) -> Vec<(Venue, Vec<Symbol>)> {
    let params = &config.params;
    vec![
        (Venue::Coinbase, params.coinbase_prewarm_assets.0.clone()),
        (Venue::Gemini, params.gemini_prewarm_assets.0.clone()),
        (Venue::Kraken, params.kraken_prewarm_assets.0.clone()),
        (Venue::Gateio, params.gateio_prewarm_assets.0.clone()),
        (Venue::Cryptocom, params.cryptocom_prewarm_assets.0.clone()),
        (Venue::Okx, params.okx_prewarm_assets.0.clone()),
    ]
}

/// The feeds to run: none, the six exchanges, or the in-process simulator (returned too, so it
/// lives as long as the server).
fn feed_specs(
    config: &Config,
    prewarm: &[(Venue, Vec<Symbol>)],
    stale_after_ms: u64,
) -> Result<(Vec<FeedSpec>, Option<Simulator>), Failure> {
    let options = FeedOptions {
        stale_after: Duration::from_millis(stale_after_ms),
        ..FeedOptions::default()
    };
    let simulator = match config.feeds.feeds {
        FeedMode::Off => return Ok((Vec::new(), None)),
        FeedMode::Live => None,
        FeedMode::Sim => {
            let source = match config.feeds.sim_source {
                SimSource::Samples => beast_feeds::sim::Source::Samples,
                SimSource::Walk => beast_feeds::sim::Source::Walk,
            };
            #[allow(clippy::cast_precision_loss, reason = "a rate of frames per second")]
            let rate = config.feeds.sim_rate.get() as f64;
            Some(
                Simulator::start(SimConfig {
                    rate,
                    source,
                    ..SimConfig::default()
                })
                .context("cannot start the exchange simulator")?,
            )
        }
    };
    let specs = prewarm
        .iter()
        .filter(|(_, assets)| !assets.is_empty())
        .map(|(venue, assets)| {
            let exchange: Arc<dyn beast_feeds::Exchange> =
                Arc::from(venues::for_venue(*venue, assets));
            let (endpoints, trust) = match &simulator {
                Some(sim) => (
                    sim.endpoints(*venue, config.feeds.sim_tls.0),
                    Trust::Only(sim.certificate.clone()),
                ),
                None => (Endpoints::public(exchange.as_ref()), Trust::WebPki),
            };
            FeedSpec {
                exchange,
                assets: assets.clone(),
                endpoints,
                trust,
                options,
                status: Arc::new(FeedStatus::new(*venue)),
            }
        })
        .collect();
    Ok((specs, simulator))
}

/// Sets the log filter: `Some(level)` for the performance profile, `None` to restore the
/// configured one.
type LogSwitch = Box<dyn Fn(Option<&str>) + Send + Sync>;

fn init_logging(filter: &str, format: LogFormat) -> Option<(LogSwitch, Flush)> {
    use tracing_subscriber::EnvFilter;
    let (writer, flush) = beast_engine::logging::queued_stderr().ok()?;
    let configured = filter.to_string();
    let parse = |text: &str| EnvFilter::try_new(text).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: log files and pipelines get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    macro_rules! install {
        ($builder:expr) => {{
            let builder = $builder
                .with_env_filter(parse(filter))
                .with_writer(writer)
                .with_target(false)
                .with_ansi(ansi)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            builder.try_init().ok()?;
            let switch: LogSwitch = Box::new(move |level: Option<&str>| {
                let _ = handle.reload(parse(level.unwrap_or(&configured)));
            });
            Some((switch, flush))
        }};
    }
    match format {
        LogFormat::Json => install!(tracing_subscriber::fmt().json()),
        LogFormat::Text => install!(tracing_subscriber::fmt()),
    }
}
