//! Gemini, current WebSocket API (`wss://ws.gemini.com`, `{symbol}@trade` streams). Docs:
//! <https://docs.gemini.com/websocket/market-data/streams> and
//! <https://docs.gemini.com/rest/market-data#get-price-feed>.
//! The archived Market Data v2 frames of the recorded sessions are read too (see `trade.rs`).

mod rest;
mod symbols;
mod trade;

use std::time::Duration;

use beast_core::{Symbol, Venue};

pub use symbols::Pairs;

use crate::exchange::{Exchange, Frame, Keepalive, ParseError, Update};

/// Gemini prices are quoted in USD. Symbols have no separator (`chillguyusd`), so the pairs we
/// subscribed to resolve them first; suffix stripping is the fallback.
#[derive(Default)]
pub struct Gemini {
    pairs: Pairs,
}

impl Gemini {
    pub fn new(assets: &[Symbol]) -> Gemini {
        Gemini {
            pairs: Pairs::new(assets, "usd"),
        }
    }
}

impl Exchange for Gemini {
    fn venue(&self) -> Venue {
        Venue::Gemini
    }

    fn endpoint(&self) -> &'static str {
        "wss://ws.gemini.com"
    }

    fn rest_base(&self) -> &'static str {
        "https://api.gemini.com"
    }

    fn pair(&self, asset: &Symbol) -> String {
        format!("{}usd", asset.as_str().to_ascii_lowercase())
    }

    fn subscribe(&self, assets: &[Symbol]) -> Vec<String> {
        let streams: Vec<String> = assets
            .iter()
            .map(|a| format!("\"{}@trade\"", self.pair(a)))
            .collect();
        vec![format!(
            r#"{{"id":"1","method":"subscribe","params":[{}]}}"#,
            streams.join(",")
        )]
    }

    fn ping_frame(&self, sequence: u64) -> Option<String> {
        Some(format!(r#"{{"id":"ping-{sequence}","method":"ping"}}"#))
    }

    fn keepalive(&self) -> Keepalive {
        // Trades of quiet pairs can be minutes apart; the server pings every ~20 s and our
        // application ping is answered, so 45 s of silence means a dead connection.
        Keepalive {
            ping_every: Some(Duration::from_secs(15)),
            silence_limit: Duration::from_secs(45),
        }
    }

    fn parse(
        &self,
        frame: &str,
        _received_ms: u64,
        out: &mut dyn FnMut(Update),
    ) -> Result<Frame, ParseError> {
        trade::parse(frame, &self.pairs, out)
    }

    /// One call returns every pair.
    fn rest_url(&self, base: &str, _assets: &[Symbol]) -> String {
        format!("{base}/v1/pricefeed")
    }

    fn parse_rest(
        &self,
        body: &str,
        received_ms: u64,
        out: &mut dyn FnMut(Update),
    ) -> Result<usize, ParseError> {
        rest::parse(body, &self.pairs, received_ms, out)
    }
}
