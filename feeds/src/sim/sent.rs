//! What the simulator has sent: the newest prices it wrote, on its streams and in REST answers,
//! so a test can hold the engine's candles against exactly the ticks sent. Bounded; what fell
//! out is counted, so a reader knows whether it holds an asset's whole history.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;

use beast_core::{Symbol, Venue};

/// Ticks kept (at 25 frames/s on six venues, over 14 minutes of them).
const KEPT: usize = 1 << 17;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Channel {
    Stream,
    Rest,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Stream => "stream",
            Channel::Rest => "rest",
        }
    }
}

struct Tick {
    venue: Venue,
    channel: Channel,
    asset: Symbol,
    price: String,
    /// The exchange time the frame carried, unix ms.
    at_ms: u64,
}

#[derive(Default)]
pub(crate) struct SentLog {
    ticks: Mutex<(VecDeque<Tick>, u64)>,
}

impl SentLog {
    pub fn record(&self, venue: Venue, channel: Channel, asset: Symbol, price: &str, at_ms: u64) {
        let mut guard = self
            .ticks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (ticks, forgotten) = &mut *guard;
        if ticks.len() == KEPT {
            ticks.pop_front();
            *forgotten += 1;
        }
        ticks.push_back(Tick {
            venue,
            channel,
            asset,
            price: price.to_string(),
            at_ms,
        });
    }

    /// `{"complete":bool,"ticks":[{"venue","channel","price","at_ms"}...]}` for one asset,
    /// oldest first (`at_ms`: the time the frame or REST answer carried, else when it was sent);
    /// `complete` is false once any tick (of any asset) has been forgotten.
    pub fn json(&self, asset: &Symbol) -> String {
        let guard = self
            .ticks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (ticks, forgotten) = &*guard;
        let mut out = format!(r#"{{"complete":{},"ticks":["#, *forgotten == 0);
        let mut first = true;
        for tick in ticks.iter().filter(|t| t.asset == *asset) {
            if !std::mem::take(&mut first) {
                out.push(',');
            }
            let _ = write!(
                out,
                r#"{{"venue":"{}","channel":"{}","price":"{}","at_ms":{}}}"#,
                tick.venue.name(),
                tick.channel.name(),
                tick.price,
                tick.at_ms
            );
        }
        out.push_str("]}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_one_assets_ticks_in_order() {
        let log = SentLog::default();
        let (btc, eth) = (
            Symbol::parse(b"BTC").unwrap(),
            Symbol::parse(b"ETH").unwrap(),
        );
        log.record(Venue::Kraken, Channel::Rest, btc, "1.5", 10);
        log.record(Venue::Okx, Channel::Stream, eth, "2", 11);
        log.record(Venue::Okx, Channel::Stream, btc, "1.6", 12);
        assert_eq!(
            log.json(&btc),
            r#"{"complete":true,"ticks":[{"venue":"kraken","channel":"rest","price":"1.5","at_ms":10},{"venue":"okx","channel":"stream","price":"1.6","at_ms":12}]}"#
        );
    }
}
