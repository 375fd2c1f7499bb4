//! The price core: the asset registry, the seqlock and the price table built from them.

pub(crate) mod aggregate;
mod fresh;
pub(crate) mod registry;
pub(crate) mod seqlock;
pub(crate) mod table;

pub use fresh::Freshness;
pub use registry::{AssetId, AssetRegistry, RegistryError};
pub use seqlock::{AtomicWord, SeqLock};
pub use table::{Aggregate, PriceTable, Quote, TableWriter};
