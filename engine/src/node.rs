//! State every reactor shares read-only: the price table, the node's identity and facts, the
//! API keys and limits in force, the side thread's mailbox and figures, every reactor's metrics
//! (for `/metrics`), and the draining flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::access::Access;
use crate::metrics::ReactorMetrics;
use crate::price::Freshness;
use crate::price::PriceTable;
use crate::protocol::state::{NodeFacts, State};
use crate::side::{SideLink, SideStats};

pub struct Node {
    pub name: String,
    /// Each venue's feed, when feeds run.
    pub feeds: Vec<Arc<beast_feeds::client::FeedStatus>>,
    pub table: Arc<PriceTable>,
    pub access: Arc<Access>,
    /// The side thread's figures (`/metrics`) and mailbox (admin calls).
    pub side: Arc<SideStats>,
    pub link: SideLink,
    /// SHA-256 of `BEAST_ADMIN_KEY` (none: admin calls are refused).
    pub admin_key: Option<crate::access::KeyHash>,
    pub stale_after_ms: u64,
    pub io_backend: &'static str,
    pub reactors: Box<[ReactorMetrics]>,
    started: Instant,
    draining: AtomicBool,
}

impl Node {
    pub fn new(
        name: String,
        table: Arc<PriceTable>,
        access: Arc<Access>,
        link: SideLink,
        stale_after_ms: u64,
        io_backend: &'static str,
        reactors: usize,
    ) -> Node {
        Node {
            name,
            feeds: Vec::new(),
            table,
            access,
            side: Arc::clone(&link.stats),
            link,
            admin_key: None,
            stale_after_ms,
            io_backend,
            reactors: (0..reactors.max(1))
                .map(|_| ReactorMetrics::new())
                .collect(),
            started: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    /// Reactor `reactor`'s metrics (an uncounted stand-in for an index the node does not have).
    pub fn metrics(&self, reactor: usize) -> &ReactorMetrics {
        self.reactors
            .get(reactor)
            .unwrap_or(&crate::metrics::DETACHED)
    }

    /// Milliseconds on the monotonic clock, from 1 when the node started: what timers, the
    /// governor and the watchdog measure with (only prices' ages use the wall clock). Never 0,
    /// which the connection timers keep for "not started".
    pub(crate) fn mono_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub(crate) fn freshness(&self, now_ms: u64) -> Freshness {
        Freshness {
            now_ms,
            stale_after_ms: self.stale_after_ms,
            simulated: self.table.simulated(),
        }
    }

    /// Counts assets, priced and stale ones: a walk over the table, for `/health` and `/metrics`.
    pub(crate) fn facts(&self, now_ms: u64) -> NodeFacts {
        let fresh = self.freshness(now_ms);
        let registry = self.table.registry();
        let (mut priced, mut stale) = (0, 0);
        for (id, _) in registry.iter() {
            if let Some(price) = self.table.aggregate(id) {
                priced += 1;
                stale += usize::from(fresh.is_stale(price.exchange_ms));
            }
        }
        NodeFacts {
            uptime_s: self.started.elapsed().as_secs(),
            assets: registry.len(),
            priced,
            stale,
            refused: registry.refused(),
            simulated: self.table.simulated(),
            draining: self.is_draining(),
        }
    }
}

impl State for Node {
    fn table(&self) -> &PriceTable {
        &self.table
    }

    fn access(&self) -> &Access {
        &self.access
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn io_backend(&self) -> &str {
        self.io_backend
    }

    fn reactors(&self) -> usize {
        self.reactors.len()
    }

    fn facts(&self, now_ms: u64) -> NodeFacts {
        Node::facts(self, now_ms)
    }

    fn feeds(&self) -> &[Arc<beast_feeds::client::FeedStatus>] {
        &self.feeds
    }

    fn side(&self) -> &SideStats {
        &self.side
    }

    fn admin_key(&self) -> Option<&crate::access::KeyHash> {
        self.admin_key.as_ref()
    }

    fn command(&self, command: crate::side::Command) -> bool {
        self.link.send(command)
    }

    fn render_metrics(&self, now_ms: u64, out: &mut String) {
        crate::metrics::render(out, &self.reactors, &self.facts(now_ms), self.io_backend);
        crate::metrics::render_feeds(out, &self.feeds, now_ms);
        crate::metrics::render_process(out);
        crate::metrics::render_history(out, self.table.history());
        self.side.render(out);
    }
}
