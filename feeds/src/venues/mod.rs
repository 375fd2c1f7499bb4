//! One folder per venue: its connection facts (`mod.rs`), its stream parser and its REST parser.

pub mod coinbase;
pub mod cryptocom;
pub mod gateio;
pub mod gemini;
pub mod kraken;
pub mod okx;

use beast_core::{Symbol, Venue};

use crate::exchange::Exchange;

/// The connector for `venue`. `assets` are the ones it will subscribe to (Gemini resolves its
/// separator-less symbols through them).
pub fn for_venue(venue: Venue, assets: &[Symbol]) -> Box<dyn Exchange> {
    match venue {
        Venue::Coinbase => Box::new(coinbase::Coinbase),
        Venue::Gemini => Box::new(gemini::Gemini::new(assets)),
        Venue::Kraken => Box::new(kraken::Kraken),
        Venue::Gateio => Box::new(gateio::Gateio),
        Venue::Cryptocom => Box::new(cryptocom::Cryptocom),
        Venue::Okx => Box::new(okx::Okx),
    }
}
