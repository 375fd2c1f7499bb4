//! Kraken Spot WebSocket v2. Docs: <https://docs.kraken.com/api/docs/websocket-v2/ticker> and
//! <https://docs.kraken.com/api/docs/rest-api/get-ticker-information>.

mod rest;
mod ticker;

use std::time::Duration;

use beast_core::{Symbol, Venue};

use crate::exchange::{Exchange, Frame, Keepalive, ParseError, Update};

/// Kraken prices are quoted in USD.
pub struct Kraken;

impl Exchange for Kraken {
    fn venue(&self) -> Venue {
        Venue::Kraken
    }

    fn endpoint(&self) -> &'static str {
        "wss://ws.kraken.com/v2"
    }

    fn rest_base(&self) -> &'static str {
        "https://api.kraken.com/0/public"
    }

    fn pair(&self, asset: &Symbol) -> String {
        format!("{asset}/USD")
    }

    /// `event_trigger: trades`: one update per trade, which is what a last price needs.
    fn subscribe(&self, assets: &[Symbol]) -> Vec<String> {
        let symbols: Vec<String> = assets
            .iter()
            .map(|a| format!("\"{}\"", self.pair(a)))
            .collect();
        vec![format!(
            r#"{{"method":"subscribe","params":{{"channel":"ticker","symbol":[{}],"event_trigger":"trades","snapshot":true}},"req_id":1}}"#,
            symbols.join(",")
        )]
    }

    fn ping_frame(&self, sequence: u64) -> Option<String> {
        Some(format!(r#"{{"method":"ping","req_id":{sequence}}}"#))
    }

    fn keepalive(&self) -> Keepalive {
        // The server sends a heartbeat every second once subscribed.
        Keepalive {
            ping_every: Some(Duration::from_secs(30)),
            silence_limit: Duration::from_secs(10),
        }
    }

    fn parse(
        &self,
        frame: &str,
        received_ms: u64,
        out: &mut dyn FnMut(Update),
    ) -> Result<Frame, ParseError> {
        ticker::parse(frame, received_ms, out)
    }

    fn rest_url(&self, base: &str, assets: &[Symbol]) -> String {
        let pairs: Vec<String> = assets
            .iter()
            .map(|a| format!("{}USD", rest::rest_name(a)))
            .collect();
        format!("{base}/Ticker?pair={}", pairs.join(","))
    }

    fn parse_rest(
        &self,
        body: &str,
        received_ms: u64,
        out: &mut dyn FnMut(Update),
    ) -> Result<usize, ParseError> {
        rest::parse(body, received_ms, out)
    }
}
