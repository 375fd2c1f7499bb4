//! The Beast price server engine.
//!
//! - [`price`]: the asset registry and the seqlock price table (one writer, lock-free readers).
//! - [`config`]: every setting, from flags, environment, beast.toml and defaults.
//! - [`build_info`]: what `beast version` reports.

pub mod build_info;
pub mod config;
pub mod price;

pub use beast_core::{Decimal, Source, Symbol, Venue};
