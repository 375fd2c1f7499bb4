//! Start-up and shutdown of the serving engine: bind every port for every reactor, start the
//! reactor threads (pinned), wait until each one is ready, and on shutdown wake them all and
//! wait until they have drained.

use std::net::IpAddr;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::access::{Access, KeyHash};
use crate::config::Config;
use crate::config::setting::{IoChoice, ServerType};
use crate::node::Node;
use crate::price::PriceTable;
use crate::reactor::stall::Watchdog;
use crate::reactor::{self, Backend, BoundAddrs, Limits, Ports, ReactorSpec, Timeouts};
use crate::side::SideLink;
use crate::usage::Meter;

/// Called on each reactor thread before its loop starts (tests install counters with it).
pub(crate) type ReactorHook = Arc<dyn Fn(usize) + Send + Sync>;

/// Everything the serving engine needs besides the price table.
#[derive(Clone)]
pub struct ServeOptions {
    pub node_name: String,
    pub bind: IpAddr,
    pub ports: Ports,
    /// 0: one per CPU this process may run on.
    pub reactors: usize,
    pub io: IoChoice,
    pub pin: bool,
    /// Connections the node serves at once (split across reactors).
    pub max_connections: usize,
    pub success_threshold: f64,
    /// UDP replies in flight per node (split across reactors).
    pub udp_in_flight: usize,
    pub timeouts: Timeouts,
    pub stall_threshold: Duration,
    pub drain_grace: Duration,
    pub stale_after_ms: u64,
    /// SHA-256 of the admin key (none: admin calls are refused).
    pub admin_key: Option<KeyHash>,
    pub on_reactor_start: Option<ReactorHook>,
    /// Called on each reactor thread when its loop has ended (normally only after shutdown).
    pub on_reactor_exit: Option<ReactorHook>,
    /// Each venue's feed status, shown by `/health` and `/metrics`.
    pub feeds: Vec<Arc<beast_feeds::client::FeedStatus>>,
}

impl ServeOptions {
    pub fn from_config(config: &Config) -> ServeOptions {
        let (server, engine, params) = (&config.server, &config.engine, &config.params);
        ServeOptions {
            node_name: server.cluster_node.as_str().to_string(),
            bind: engine.bind.0,
            // A push node takes no API traffic: its health port is its only listener.
            ports: match server.server_type {
                ServerType::AppReport => Ports {
                    tcp_lpo: Some(server.tcp_port_lpo.0),
                    tcp_lrs: Some(server.tcp_port_lrs.0),
                    health_lpo: Some(server.health_port_lpo.0),
                    health_lrs: Some(server.health_port_lrs.0),
                    health_webhook: None,
                    udp_lpo: Some(server.udp_port_lpo.0),
                    udp_lrs: Some(server.udp_port_lrs.0),
                },
                ServerType::Webhook => Ports {
                    health_webhook: Some(server.health_port_webhook.0),
                    ..Ports::default()
                },
            },
            reactors: engine.reactors.get_usize(),
            io: engine.io,
            pin: engine.pin.0,
            max_connections: params.adaptive_max_concurrent.get_usize(),
            success_threshold: params.adaptive_success_threshold.0,
            udp_in_flight: params.udp_max_concurrent_lpo.get_usize(),
            timeouts: Timeouts {
                read_ms: params.http_read_timeout_seconds.get() * 1000,
                idle_ms: params.http_idle_timeout_seconds.get() * 1000,
                write_ms: params.http_write_timeout_seconds.get() * 1000,
            },
            stall_threshold: Duration::from_millis(engine.stall_threshold_ms.get()),
            drain_grace: Duration::from_millis(engine.shutdown_grace_ms.get()),
            stale_after_ms: params.cache_ttl_seconds.get() * 1000,
            admin_key: server
                .admin_key
                .as_ref()
                .map(|k| crate::access::key::digest(k.expose().as_bytes())),
            on_reactor_start: None,
            on_reactor_exit: None,
            feeds: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Backend(#[from] reactor::BackendError),
    #[error(transparent)]
    Bind(#[from] reactor::BindError),
    #[error("reactor {index} failed to start: {source}")]
    Reactor {
        index: usize,
        source: std::io::Error,
    },
    #[error(
        "BEAST_REACTORS is {reactors} with BEAST_PIN on, but this process may run on {cpus} CPU(s): lower BEAST_REACTORS (0: one per CPU) or turn pinning off"
    )]
    TooManyReactors { reactors: usize, cpus: usize },
    #[error("cannot create the wake-up socket of reactor {index}: {source}")]
    Waker {
        index: usize,
        source: std::io::Error,
    },
}

/// What connects the reactors to the rest of the node: the keys and limits in force, the side
/// thread, and one usage meter per reactor (missing ones meter nothing).
pub struct Wiring {
    pub access: Arc<Access>,
    pub link: SideLink,
    pub meters: Vec<Meter>,
}

impl Wiring {
    /// No side thread: keys never change, nothing is metered (benchmarks and tests).
    pub fn detached(access: Arc<Access>) -> Wiring {
        Wiring {
            access,
            link: SideLink::detached(),
            meters: Vec::new(),
        }
    }
}

/// How many reactors `requested` means here (0: one per CPU this process may run on). Pinned
/// reactors need a CPU each: more than the process may run on is an error, never two reactors
/// silently sharing one CPU.
pub fn reactor_count(requested: usize, pin: bool) -> Result<usize, StartError> {
    let cpus = core_affinity::get_core_ids().map_or(1, |c| c.len().max(1));
    match requested {
        0 => Ok(cpus),
        n if pin && n > cpus => Err(StartError::TooManyReactors { reactors: n, cpus }),
        n => Ok(n),
    }
}

/// A running engine.
pub struct Server {
    node: Arc<Node>,
    addrs: BoundAddrs,
    backend: Backend,
    fallback: Option<String>,
    wakers: Vec<UnixDatagram>,
    threads: Vec<JoinHandle<std::io::Result<()>>>,
    _watchdog: Watchdog,
}

impl Server {
    /// Binds, starts every reactor and returns once all of them are serving.
    pub fn start(
        options: ServeOptions,
        table: Arc<PriceTable>,
        wiring: Wiring,
    ) -> Result<Server, StartError> {
        let (backend, fallback) = reactor::select_backend(options.io)?;
        if let Some(reason) = &fallback {
            tracing::warn!(reason = %reason, "io_uring unavailable; using epoll");
        }
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let reactors = reactor_count(options.reactors, options.pin)?;
        let (sockets, addrs) = reactor::sockets::bind_all(options.bind, options.ports, reactors)?;
        let mut node = Node::new(
            options.node_name.clone(),
            table,
            wiring.access,
            wiring.link,
            options.stale_after_ms,
            backend.name(),
            reactors,
        );
        node.feeds = options.feeds.clone();
        node.admin_key = options.admin_key;
        let mut meters = wiring.meters.into_iter();
        let node = Arc::new(node);
        // A turn ten times the stall threshold long (at least a second) is a turn stuck.
        let stuck_after = (options.stall_threshold * 10).max(Duration::from_secs(1));
        let watchdog = Watchdog::start(Arc::clone(&node), stuck_after)
            .map_err(|source| StartError::Reactor { index: 0, source })?;
        let limits = Limits {
            max_connections: options.max_connections.div_ceil(reactors).max(1),
            success_threshold: options.success_threshold,
            timeouts: options.timeouts,
            stall_threshold: options.stall_threshold,
            udp_send_slots: options.udp_in_flight.div_ceil(reactors).max(64),
            drain_grace: options.drain_grace,
        };
        let (ready_tx, ready_rx) = mpsc::channel::<(usize, std::io::Result<()>)>();
        let mut wakers = Vec::with_capacity(reactors);
        let mut threads = Vec::with_capacity(reactors);
        for (index, sockets) in sockets.into_iter().enumerate() {
            let (wake_send, wake_recv) =
                UnixDatagram::pair().map_err(|source| StartError::Waker { index, source })?;
            wake_recv
                .set_nonblocking(true)
                .map_err(|source| StartError::Waker { index, source })?;
            wakers.push(wake_send);
            let spec = ReactorSpec {
                index,
                meter: meters.next().unwrap_or_else(Meter::off),
                sockets,
                node: Arc::clone(&node),
                limits,
                waker: wake_recv,
            };
            let core = if options.pin {
                cores.get(index).copied()
            } else {
                None
            };
            let (hook, exit_hook) = (
                options.on_reactor_start.clone(),
                options.on_reactor_exit.clone(),
            );
            let ready = ready_tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("beast-reactor-{index}"))
                .spawn(move || {
                    if let Some(core) = core
                        && !core_affinity::set_for_current(core)
                    {
                        tracing::warn!(reactor = index, core = core.id, "could not pin reactor");
                    }
                    if let Some(hook) = hook {
                        hook(index);
                    }
                    let result = reactor::run(backend, spec, move |started| {
                        let _ = ready.send((index, started));
                    });
                    if let Err(e) = &result {
                        tracing::error!(reactor = index, error = %e, "reactor stopped");
                    }
                    if let Some(hook) = exit_hook {
                        hook(index);
                    }
                    result
                })
                .map_err(|source| StartError::Reactor { index, source })?;
            threads.push(thread);
        }
        drop(ready_tx);
        let server = Server {
            node,
            addrs,
            backend,
            fallback,
            wakers,
            threads,
            _watchdog: watchdog,
        };
        for _ in 0..reactors {
            match ready_rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((index, Err(source))) => {
                    server.stop();
                    return Err(StartError::Reactor { index, source });
                }
                Err(_) => {
                    server.stop();
                    return Err(StartError::Reactor {
                        index: 0,
                        source: std::io::Error::other("reactor thread ended during start-up"),
                    });
                }
            }
        }
        Ok(server)
    }

    pub fn addrs(&self) -> BoundAddrs {
        self.addrs
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Why io_uring was not used, when `auto` fell back to epoll.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    pub fn reactors(&self) -> usize {
        self.threads.len()
    }

    /// Drains: stop accepting, finish what is in flight (bounded by the grace period), stop.
    pub fn stop(self) -> Vec<std::io::Error> {
        self.node.start_draining();
        for waker in &self.wakers {
            let _ = waker.send(b"stop");
        }
        self.threads
            .into_iter()
            .filter_map(|thread| match thread.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(std::io::Error::other("reactor panicked")),
            })
            .collect()
    }
}
