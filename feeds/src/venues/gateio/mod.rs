//! Gate.io spot WebSocket v4. Docs: <https://www.gate.io/docs/developers/apiv4/ws/en/#tickers-channel>
//! and <https://www.gate.io/docs/developers/apiv4/en/#retrieve-ticker-information>.

mod rest;
mod tickers;

use std::time::Duration;

use beast_core::{Symbol, Venue};

use crate::exchange::{Exchange, Frame, Keepalive, ParseError, Update};

/// Gate.io prices are quoted in USDT.
pub struct Gateio;

fn unix_seconds() -> u64 {
    beast_core::clock::wall_ms() / 1000
}

impl Exchange for Gateio {
    fn venue(&self) -> Venue {
        Venue::Gateio
    }

    fn endpoint(&self) -> &'static str {
        "wss://api.gateio.ws/ws/v4/"
    }

    fn rest_base(&self) -> &'static str {
        "https://api.gateio.ws/api/v4"
    }

    fn pair(&self, asset: &Symbol) -> String {
        format!("{asset}_USDT")
    }

    fn subscribe(&self, assets: &[Symbol]) -> Vec<String> {
        let pairs: Vec<String> = assets
            .iter()
            .map(|a| format!("\"{}\"", self.pair(a)))
            .collect();
        vec![format!(
            r#"{{"time":{},"channel":"spot.tickers","event":"subscribe","payload":[{}]}}"#,
            unix_seconds(),
            pairs.join(",")
        )]
    }

    fn ping_frame(&self, _sequence: u64) -> Option<String> {
        Some(format!(
            r#"{{"time":{},"channel":"spot.ping"}}"#,
            unix_seconds()
        ))
    }

    fn keepalive(&self) -> Keepalive {
        // Tickers of quiet pairs may not come for long; our pings every 15 s get pongs.
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
        tickers::parse(frame, out)
    }

    /// One pair per request, or all pairs when several are wanted.
    fn rest_url(&self, base: &str, assets: &[Symbol]) -> String {
        match assets {
            [one] => format!("{base}/spot/tickers?currency_pair={}", self.pair(one)),
            _ => format!("{base}/spot/tickers"),
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
