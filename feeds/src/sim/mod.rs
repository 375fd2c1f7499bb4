//! `beast sim`: all six exchanges on loopback, speaking their current protocols, so the engine
//! runs and is tested without the internet.
//!
//! One plain port (ws:// and http://) and one TLS port (wss:// and https://, with a certificate
//! generated at start) serve every venue by path: `/coinbase` is Coinbase's WebSocket,
//! `/coinbase/market/products` its REST ticker, and so on. Prices follow the recorded sessions
//! (re-encoded to the current protocols) or a random walk, at a chosen message rate.
//!
//! Faults, per venue, through `POST /control/<venue>/<fault>` on either port (or
//! [`Simulator::control`]): `drop` closes every connection, `stall` stops sending (prices,
//! heartbeats, replies) until `resume`, `garbage` sends three malformed frames, `error` sends the
//! venue's error frame, `slow` divides the message rate by ten until `normal`, `refuse-rest`
//! answers REST with 503 until `allow-rest`. `GET /control/status` reports per-venue counters;
//! `GET /control/sent?asset=BTC` the newest ticks streamed of one asset (see [`sent`]).

mod http;
pub mod market;
mod sent;
mod session;
pub mod wire;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use beast_core::Venue;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub use market::Source;

use crate::client::Endpoints;

/// Most connections served at once; more are closed on arrival.
const MAX_CONNECTIONS: u64 = 512;

#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    pub bind: IpAddr,
    /// 0: any free port.
    pub plain_port: u16,
    pub tls_port: u16,
    /// Price frames per second on each connection.
    pub rate: f64,
    pub source: Source,
    /// Crypto.com's heartbeat period (30 s on the real exchange).
    pub heartbeat_every: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            plain_port: 0,
            tls_port: 0,
            rate: 25.0,
            source: Source::Samples,
            heartbeat_every: Duration::from_secs(30),
        }
    }
}

/// A venue's fault switches and counters.
#[derive(Debug, Default)]
pub struct VenueControl {
    pub stalled: AtomicBool,
    pub slow: AtomicBool,
    pub refuse_rest: AtomicBool,
    /// Sessions close when this changes.
    pub drop_generation: AtomicU64,
    /// Malformed frames still to send.
    pub garbage: AtomicU64,
    /// Error frames still to send.
    pub errors: AtomicU64,
    pub connections: AtomicU64,
    pub connections_total: AtomicU64,
    pub frames_sent: AtomicU64,
    pub rest_requests: AtomicU64,
}

impl VenueControl {
    /// Applies a named fault; false for an unknown name.
    pub fn apply(&self, fault: &str) -> bool {
        match fault {
            "drop" => {
                self.drop_generation.fetch_add(1, Ordering::AcqRel);
            }
            "stall" => self.stalled.store(true, Ordering::Release),
            "resume" => self.stalled.store(false, Ordering::Release),
            "garbage" => {
                self.garbage.fetch_add(3, Ordering::AcqRel);
            }
            "error" => {
                self.errors.fetch_add(1, Ordering::AcqRel);
            }
            "slow" => self.slow.store(true, Ordering::Release),
            "normal" => self.slow.store(false, Ordering::Release),
            "refuse-rest" => self.refuse_rest.store(true, Ordering::Release),
            "allow-rest" => self.refuse_rest.store(false, Ordering::Release),
            _ => return false,
        }
        true
    }
}

/// What every connection thread shares.
pub(crate) struct Shared {
    pub market: market::Market,
    pub sent: sent::SentLog,
    pub controls: [VenueControl; Venue::COUNT],
    pub config: SimConfig,
    pub stop: AtomicBool,
    pub active: AtomicU64,
}

impl Shared {
    #[allow(
        clippy::indexing_slicing,
        reason = "venue indices are below Venue::COUNT by construction"
    )]
    pub fn control(&self, venue: Venue) -> &VenueControl {
        &self.controls[venue.index() % Venue::COUNT]
    }

    pub fn status_json(&self) -> String {
        let venues: Vec<String> = Venue::ALL
            .iter()
            .map(|v| {
                let c = self.control(*v);
                let get = |a: &AtomicU64| a.load(Ordering::Acquire);
                format!(
                    r#""{}":{{"connections":{},"connections_total":{},"frames_sent":{},"rest_requests":{},"stalled":{},"slow":{},"refuse_rest":{}}}"#,
                    v.name(),
                    get(&c.connections),
                    get(&c.connections_total),
                    get(&c.frames_sent),
                    get(&c.rest_requests),
                    c.stalled.load(Ordering::Acquire),
                    c.slow.load(Ordering::Acquire),
                    c.refuse_rest.load(Ordering::Acquire)
                )
            })
            .collect();
        format!("{{{}}}", venues.join(","))
    }
}

/// A running simulator.
pub struct Simulator {
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    /// The generated certificate the TLS port presents: trust exactly this one.
    pub certificate: CertificateDer<'static>,
    pub certificate_pem: String,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot generate the simulator's certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("TLS set-up failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot start a simulator thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl Simulator {
    pub fn start(config: SimConfig) -> Result<Simulator, SimError> {
        let bind = |port: u16| {
            let addr = SocketAddr::new(config.bind, port);
            let listener =
                TcpListener::bind(addr).map_err(|source| SimError::Bind { addr, source })?;
            listener
                .set_nonblocking(true)
                .map_err(|source| SimError::Bind { addr, source })?;
            Ok::<_, SimError>(listener)
        };
        let (plain_listener, tls_listener) = (bind(config.plain_port)?, bind(config.tls_port)?);
        let plain = plain_listener.local_addr()?;
        let tls = tls_listener.local_addr()?;

        let names = vec!["localhost".to_string(), config.bind.to_string()];
        let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names)?;
        let certificate = cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signing_key.serialize_der()));
        let server_config = Arc::new(
            rustls::ServerConfig::builder_with_provider(crate::client::tls::provider())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(vec![certificate.clone()], key)?,
        );

        let shared = Arc::new(Shared {
            market: market::Market::new(config.source),
            sent: sent::SentLog::default(),
            controls: Default::default(),
            config,
            stop: AtomicBool::new(false),
            active: AtomicU64::new(0),
        });
        let mut threads = Vec::new();
        for (listener, tls_config) in [(plain_listener, None), (tls_listener, Some(server_config))]
        {
            let shared = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name("beast-sim-accept".into())
                    .spawn(move || http::accept_loop(&listener, tls_config, &shared))?,
            );
        }
        tracing::info!(plain = %plain, tls = %tls, "exchange simulator listening");
        Ok(Simulator {
            plain,
            tls,
            certificate,
            certificate_pem: cert.pem(),
            shared,
            threads,
        })
    }

    /// Where `venue`'s feed connects: wss/https on the TLS port, or ws/http on the plain one.
    pub fn endpoints(&self, venue: Venue, tls: bool) -> Endpoints {
        let (ws, http, addr) = if tls {
            ("wss", "https", self.tls)
        } else {
            ("ws", "http", self.plain)
        };
        Endpoints {
            ws_url: format!("{ws}://{addr}/{}", venue.name()),
            rest_base: format!("{http}://{addr}/{}", venue.name()),
        }
    }

    pub fn control(&self, venue: Venue) -> &VenueControl {
        self.shared.control(venue)
    }

    /// Per-venue counters and switches, as JSON.
    pub fn status_json(&self) -> String {
        self.shared.status_json()
    }

    /// Closes every connection and stops.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn now_ms() -> u64 {
    crate::client::wall_ms()
}
