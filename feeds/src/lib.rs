//! Exchange feeds: one connector per venue behind one [`Exchange`] trait, the JSON reader they
//! share, and (in later modules) the WebSocket and REST clients and the exchange simulator.
//! Knows nothing of the engine: it hands parsed updates (asset, exact decimal price, exchange
//! time) to whoever drains its rings.

pub mod client;
pub mod exchange;
pub mod json;
pub mod sim;
pub mod time;
pub mod venues;

pub use beast_core::{Decimal, Source, Symbol, Venue};
pub use exchange::{Exchange, Frame, Keepalive, ParseError, Skip, Update};
