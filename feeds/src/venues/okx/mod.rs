//! OKX API v5, public WebSocket. Docs: <https://www.okx.com/docs-v5/en/#public-data-websocket-tickers-channel>
//! and <https://www.okx.com/docs-v5/en/#public-data-rest-api-get-ticker>.

mod rest;
mod tickers;

use std::time::Duration;

use beast_core::{Symbol, Venue};

use crate::exchange::{Exchange, Frame, Keepalive, ParseError, Update};

/// OKX prices are quoted in USDT.
pub struct Okx;

impl Exchange for Okx {
    fn venue(&self) -> Venue {
        Venue::Okx
    }

    fn endpoint(&self) -> &'static str {
        "wss://ws.okx.com:8443/ws/v5/public"
    }

    fn rest_base(&self) -> &'static str {
        "https://www.okx.com"
    }

    fn pair(&self, asset: &Symbol) -> String {
        format!("{asset}-USDT")
    }

    /// One arg per instrument. Each message counts once against the 480-per-hour limit.
    fn subscribe(&self, assets: &[Symbol]) -> Vec<String> {
        let args: Vec<String> = assets
            .iter()
            .map(|a| format!(r#"{{"channel":"tickers","instId":"{}"}}"#, self.pair(a)))
            .collect();
        vec![format!(
            r#"{{"id":"1","op":"subscribe","args":[{}]}}"#,
            args.join(",")
        )]
    }

    /// A plain text `ping` (not JSON), answered by `pong`.
    fn ping_frame(&self, _sequence: u64) -> Option<String> {
        Some("ping".to_string())
    }

    fn keepalive(&self) -> Keepalive {
        // The server drops a connection silent for 30 s; ping well before.
        Keepalive {
            ping_every: Some(Duration::from_secs(20)),
            silence_limit: Duration::from_secs(30),
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

    fn rest_url(&self, base: &str, assets: &[Symbol]) -> String {
        match assets {
            [one] => format!("{base}/api/v5/market/ticker?instId={}", self.pair(one)),
            _ => format!("{base}/api/v5/market/tickers?instType=SPOT"),
        }
    }

    fn parse_rest(
        &self,
        body: &str,
        _received_ms: u64,
        out: &mut dyn FnMut(Update),
    ) -> Result<usize, ParseError> {
        rest::parse(body, out)
    }
}
