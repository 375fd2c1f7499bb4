//! The price core: the asset registry, the seqlock and the price table built from them.

pub mod aggregate;
pub mod registry;
pub mod seqlock;
pub mod table;

pub use registry::{AssetId, AssetRegistry, RegistryError};
pub use seqlock::{AtomicWord, SeqLock};
pub use table::{Aggregate, PriceTable, Quote, TableWriter};
