//! Crypto.com Exchange API v1, market WebSocket. Docs:
//! <https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#ticker-instrument_name> and
//! <https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#public-get-tickers>.

mod rest;
mod ticker;

use std::time::Duration;

use beast_core::{Symbol, Venue};

use crate::exchange::{Exchange, Frame, Keepalive, ParseError, Update};

/// Crypto.com prices are quoted in USDT.
pub struct Cryptocom;

impl Exchange for Cryptocom {
    fn venue(&self) -> Venue {
        Venue::Cryptocom
    }

    fn endpoint(&self) -> &'static str {
        "wss://stream.crypto.com/exchange/v1/market"
    }

    fn rest_base(&self) -> &'static str {
        "https://api.crypto.com/exchange/v1"
    }

    fn pair(&self, asset: &Symbol) -> String {
        format!("{asset}_USDT")
    }

    fn subscribe(&self, assets: &[Symbol]) -> Vec<String> {
        let channels: Vec<String> = assets
            .iter()
            .map(|a| format!("\"ticker.{}\"", self.pair(a)))
            .collect();
        let nonce = beast_core::clock::wall_ms();
        vec![format!(
            r#"{{"id":1,"method":"subscribe","params":{{"channels":[{}]}},"nonce":{nonce}}}"#,
            channels.join(",")
        )]
    }

    /// The server's heartbeats are what keep the connection: no ping of our own.
    fn ping_frame(&self, _sequence: u64) -> Option<String> {
        None
    }

    /// Must be sent within 5 s, with the heartbeat's own id, or the server closes the socket.
    fn heartbeat_reply(&self, id: u64) -> Option<String> {
        Some(format!(
            r#"{{"id":{id},"method":"public/respond-heartbeat"}}"#
        ))
    }

    fn keepalive(&self) -> Keepalive {
        // A heartbeat every 30 s.
        Keepalive {
            ping_every: None,
            silence_limit: Duration::from_secs(75),
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
        match assets {
            [one] => format!(
                "{base}/public/get-tickers?instrument_name={}",
                self.pair(one)
            ),
            _ => format!("{base}/public/get-tickers"),
        }
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
