//! Running feeds: one thread per exchange connection (blocking tungstenite over rustls) that
//! pushes parsed prices into its own SPSC ring, and one REST thread per venue that polls the
//! venue's ticker for assets the price thread reports stale.
//!
//! The feeds know nothing of the engine: prices leave through the rings as [`FeedEvent`]s and
//! the feed threads wake whichever thread drains them.

pub mod backoff;
mod rest;
pub mod status;
mod stream;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use beast_core::{Channel, Decimal, Symbol, Venue};
use rustls::pki_types::CertificateDer;

pub use status::{FeedState, FeedStatus};

use crate::exchange::Exchange;

/// A price on its way to the price thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedEvent {
    pub venue: Venue,
    pub channel: Channel,
    pub asset: Symbol,
    pub price: Decimal,
    pub exchange_ms: u64,
    /// Our wall clock when it arrived, Unix ms.
    pub received_ms: u64,
}

/// Which certificates the feeds trust.
#[derive(Clone, Debug)]
pub enum Trust {
    /// The public web PKI (the exchanges).
    WebPki,
    /// Exactly this certificate (the simulator's).
    Only(CertificateDer<'static>),
}

/// Where one venue's feed connects.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// `wss://…` or `ws://…`
    pub ws_url: String,
    /// REST base URL, without a trailing slash.
    pub rest_base: String,
}

impl Endpoints {
    /// The venue's public endpoints.
    pub fn public(exchange: &dyn Exchange) -> Endpoints {
        Endpoints {
            ws_url: exchange.endpoint().to_string(),
            rest_base: exchange.rest_base().to_string(),
        }
    }
}

/// Tuning shared by every feed.
#[derive(Clone, Copy, Debug)]
pub struct FeedOptions {
    /// A connected feed without a price for this long is shown as stale.
    pub stale_after: Duration,
    /// Longest wait for a subscription to be confirmed (by an acknowledgement or a price).
    pub subscribe_timeout: Duration,
    /// First reconnect delay, and the cap of the exponential backoff.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// A connection that stayed up this long resets the backoff.
    pub stable_after: Duration,
    /// REST request timeout.
    pub rest_timeout: Duration,
    /// Largest WebSocket message accepted (and frame), and largest REST body.
    pub max_message: usize,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions {
            stale_after: Duration::from_secs(9),
            subscribe_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
            rest_timeout: Duration::from_secs(3),
            max_message: 1 << 20,
        }
    }
}

/// One venue's feed, before it starts.
pub struct FeedSpec {
    pub exchange: Arc<dyn Exchange>,
    pub assets: Vec<Symbol>,
    pub endpoints: Endpoints,
    pub trust: Trust,
    pub options: FeedOptions,
    /// Where the feed reports its state (created by the caller, who also shows it).
    pub status: Arc<FeedStatus>,
}

/// Capacity of each feed's ring to the price thread.
pub const RING_CAPACITY: usize = 8192;

/// The running feeds of every venue and what the price thread needs to drain them.
pub struct Feeds {
    /// One ring per venue stream.
    pub rings: Vec<rtrb::Consumer<FeedEvent>>,
    /// REST results from every venue's poller.
    pub rest_results: mpsc::Receiver<FeedEvent>,
    /// Asks a venue's poller for these assets' tickers (never blocks: a busy poller skips).
    pub rest_requests: Vec<(Venue, mpsc::SyncSender<Vec<Symbol>>)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("TLS set-up failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot start a feed thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl FeedError {
    /// Set-up errors do not go away by retrying.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

impl Feeds {
    /// Starts a stream thread and a REST thread per spec. `notify` is unparked whenever prices
    /// arrive.
    pub fn start(specs: Vec<FeedSpec>, notify: Thread) -> Result<Feeds, FeedError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (rest_tx, rest_results) = mpsc::sync_channel(RING_CAPACITY);
        let mut feeds = Feeds {
            rings: Vec::new(),
            rest_results,
            rest_requests: Vec::new(),
            stop,
            threads: Vec::new(),
        };
        for spec in specs {
            let venue = spec.exchange.venue();
            let status = Arc::clone(&spec.status);
            let tls = match &spec.trust {
                Trust::WebPki => tls::public_roots()?,
                Trust::Only(certificate) => tls::trusting(certificate)?,
            };
            let (producer, consumer) = rtrb::RingBuffer::new(RING_CAPACITY);
            let stream = stream::Stream {
                exchange: Arc::clone(&spec.exchange),
                assets: spec.assets.clone(),
                url: spec.endpoints.ws_url.clone(),
                tls,
                options: spec.options,
                status: Arc::clone(&status),
                producer,
                notify: notify.clone(),
                stop: Arc::clone(&feeds.stop),
            };
            feeds.threads.push(
                std::thread::Builder::new()
                    .name(format!("beast-feed-{}", venue.name()))
                    .spawn(move || stream.run())?,
            );
            let (request_tx, request_rx) = mpsc::sync_channel(1);
            let poller = rest::Poller::new(
                Arc::clone(&spec.exchange),
                spec.endpoints.rest_base.clone(),
                &spec.trust,
                spec.options,
                Arc::clone(&status),
                rest_tx.clone(),
                notify.clone(),
            );
            feeds.threads.push(
                std::thread::Builder::new()
                    .name(format!("beast-rest-{}", venue.name()))
                    .spawn(move || poller.run(request_rx))?,
            );
            feeds.rest_requests.push((venue, request_tx));
            feeds.rings.push(consumer);
        }
        Ok(feeds)
    }

    /// Stops every feed thread and waits for them (each notices within a read timeout).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Dropping the request senders ends the REST threads' waits.
        self.rest_requests.clear();
        for thread in self.threads.drain(..) {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Feeds {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) use beast_core::clock::wall_ms;
