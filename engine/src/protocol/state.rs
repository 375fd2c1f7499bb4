//! What answering needs of the node, and nothing more: the prices, the keys and limits in
//! force, the node's identity and facts, the side thread's figures and mailbox. The node
//! implements [`State`]; the protocol layer sees it only through this (and stays generic over
//! it, so calls are direct).

use std::sync::Arc;

use beast_feeds::client::FeedStatus;

use crate::access::{Access, KeyHash};
use crate::price::PriceTable;
use crate::side::{Command, SideStats};

/// Node-wide facts for `/health` and `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct NodeFacts {
    pub uptime_s: u64,
    pub assets: usize,
    pub priced: usize,
    pub stale: usize,
    /// Prices refused because the table had no room for their asset.
    pub refused: u64,
    /// The prices are made up (the exchange simulator, the demo walk).
    pub simulated: bool,
    pub draining: bool,
}

pub trait State {
    fn table(&self) -> &PriceTable;
    fn access(&self) -> &Access;
    /// This node's name in the cluster.
    fn name(&self) -> &str;
    /// The I/O backend serving: `uring` or `epoll`.
    fn io_backend(&self) -> &str;
    fn reactors(&self) -> usize;
    /// Counts assets, priced and stale ones (a walk over the table).
    fn facts(&self, now_ms: u64) -> NodeFacts;
    /// Each venue's feed, when feeds run.
    fn feeds(&self) -> &[Arc<FeedStatus>];
    /// The side thread's figures.
    fn side(&self) -> &SideStats;
    /// SHA-256 of the admin key (none: admin calls are refused).
    fn admin_key(&self) -> Option<&KeyHash>;
    /// Hands a command to the side thread without waiting; false when it cannot take it.
    fn command(&self, command: Command) -> bool;
    /// Appends the Prometheus text of every figure the node keeps.
    fn render_metrics(&self, now_ms: u64, out: &mut String);
}
