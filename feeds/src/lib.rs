//! Exchange feeds: one connector per venue behind one `Exchange` trait, the WebSocket and REST
//! clients, and the local exchange simulator. Knows nothing of the engine; it hands parsed
//! updates (asset, exact decimal price, exchange time) to whoever drains its rings.

pub use beast_core::{Decimal, Source, Symbol, Venue};
