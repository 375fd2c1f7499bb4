//! Coinbase Advanced Trade. Docs:
//! <https://docs.cdp.coinbase.com/advanced-trade/docs/ws-overview> (WebSocket),
//! <https://docs.cdp.coinbase.com/advanced-trade/reference/retailbrokerageapi_getpublicproducts> (REST).

mod rest;
mod ticker;

use std::time::Duration;

use beast_core::{Symbol, Venue};

use crate::exchange::{Exchange, Frame, Keepalive, ParseError, Update};

/// Coinbase prices are quoted in USD.
pub struct Coinbase;

impl Exchange for Coinbase {
    fn venue(&self) -> Venue {
        Venue::Coinbase
    }

    fn endpoint(&self) -> &'static str {
        "wss://advanced-trade-ws.coinbase.com"
    }

    fn rest_base(&self) -> &'static str {
        "https://api.coinbase.com/api/v3/brokerage"
    }

    fn pair(&self, asset: &Symbol) -> String {
        format!("{asset}-USD")
    }

    /// One channel per subscribe message; the `heartbeats` channel keeps quiet subscriptions
    /// from being closed after 60–90 s.
    fn subscribe(&self, assets: &[Symbol]) -> Vec<String> {
        let products: Vec<String> = assets
            .iter()
            .map(|a| format!("\"{}\"", self.pair(a)))
            .collect();
        vec![
            format!(
                r#"{{"type":"subscribe","product_ids":[{}],"channel":"ticker"}}"#,
                products.join(",")
            ),
            r#"{"type":"subscribe","channel":"heartbeats"}"#.to_string(),
        ]
    }

    fn ping_frame(&self, _sequence: u64) -> Option<String> {
        None
    }

    fn keepalive(&self) -> Keepalive {
        // Heartbeats arrive every second.
        Keepalive {
            ping_every: None,
            silence_limit: Duration::from_secs(10),
        }
    }

    fn parse(
        &self,
        frame: &str,
        _received_ms: u64,
        out: &mut dyn FnMut(Update),
    ) -> Result<Frame, ParseError> {
        ticker::parse(frame, out)
    }

    fn rest_url(&self, base: &str, assets: &[Symbol]) -> String {
        let query: Vec<String> = assets
            .iter()
            .map(|a| format!("product_ids={}", self.pair(a)))
            .collect();
        format!("{base}/market/products?{}", query.join("&"))
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
