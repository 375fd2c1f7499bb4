//! The Beast price server engine.
//!
//! - [`price`]: the asset registry and the seqlock price table (one writer, lock-free readers).
//! - [`history`]: candles of every price, at every interval, in fixed memory.
//! - [`protocol`]: HTTP/1.1 and UDP (text, binary v8) request handling, backend-independent.
//! - [`report`]: the LRS reports (snapshot, ohlc, sources) in JSON, CSV, text and HTML.
//! - [`reactor`]: thread-per-core event loops on io_uring or epoll.
//! - [`server`]: start-up, the price thread, shutdown.
//! - [`config`]: every setting, from flags, environment, beast.toml and defaults.
//! - [`access`]: API keys (hashed), tiers and the per-key rate limiter.
//! - [`usage`]: usage records: the reactors' rings, the on-disk journal, the sinks.
//! - [`store`]: the embedded SQLite store and PostgreSQL, behind one interface.
//! - [`side`]: the side thread: keys and parameters, usage delivery, Valkey, admin commands.

pub mod access;
pub mod build_info;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod host;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod price;
pub mod pricing;
pub mod protocol;
pub mod push;
pub mod reactor;
pub mod report;
pub mod server;
pub mod side;
pub mod store;
pub mod usage;

pub use beast_core::{Decimal, Source, Symbol, Venue};
