//! The one `Exchange` trait every venue implements, and what its parsers produce.
//!
//! A parser turns one received text frame into zero or more [`Update`]s (handed to a callback,
//! so nothing is collected), or classifies it: a frame with no price ([`Skip`]) or a malformed
//! one ([`ParseError`]). The normalisation contract is PROTOCOLS.md §1: the asset is the base
//! currency upper-cased, the price is the decimal exactly as written, the time is the
//! exchange's, in Unix milliseconds, floored.

use std::fmt;
use std::time::Duration;

use beast_core::{Decimal, DecimalError, Symbol, Venue};

use crate::json::{JsonError, Value};

/// One price from a venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    pub asset: Symbol,
    pub price: Decimal,
    /// Exchange time of the update (receive time where the venue sends none), Unix ms.
    pub exchange_ms: u64,
}

/// A well-formed frame that carries no price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Subscription acknowledgement or other request response.
    Ack,
    /// Heartbeat, pong, connection status.
    Heartbeat,
    /// The venue asks for a reply with this id (Crypto.com `public/heartbeat`).
    HeartbeatRequest(u64),
    /// An error the exchange reports (well-formed, no price).
    ExchangeError,
    /// A channel other than the price channel (trades, books, candles, ...).
    OtherChannel,
    /// A ticker without a last price (an instrument that has not traded).
    NoPrice,
    /// Not a spot pair (perpetuals, futures): not a price this oracle serves.
    Derivative,
    /// A pair whose base asset cannot be told (a quote currency we do not know).
    UnknownPair,
    /// A notice (maintenance, connection counts).
    Notice,
}

/// What a frame was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// This many updates were handed to the callback.
    Prices(usize),
    Skip(Skip),
}

/// Why a frame is malformed. `Copy`: counted on the hot path, never allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    Json(JsonError),
    /// A required field is absent.
    Missing(&'static str),
    /// A field has the wrong JSON type.
    WrongType(&'static str),
    /// A price field is not a decimal.
    Price(&'static str, DecimalError),
    /// A timestamp field cannot be read.
    Timestamp(&'static str),
    /// A pair whose base asset cannot be told.
    Symbol(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Json(e) => write!(f, "{e}"),
            ParseError::Missing(field) => write!(f, "missing field {field}"),
            ParseError::WrongType(field) => write!(f, "field {field} has the wrong type"),
            ParseError::Price(field, e) => write!(f, "field {field} is not a price: {e}"),
            ParseError::Timestamp(field) => write!(f, "field {field} is not a timestamp"),
            ParseError::Symbol(field) => write!(f, "field {field} is not a pair this parser knows"),
        }
    }
}

impl std::error::Error for ParseError {}

impl From<JsonError> for ParseError {
    fn from(e: JsonError) -> Self {
        ParseError::Json(e)
    }
}

impl ParseError {
    /// Malformed input is never worth retrying: the same bytes fail the same way.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// How a connection is kept alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Send the venue's application ping this often when nothing was sent or received.
    pub ping_every: Option<Duration>,
    /// Reconnect when nothing at all arrived for this long.
    pub silence_limit: Duration,
}

/// The fixed facts of a venue's connection.
pub trait Exchange: Send + Sync {
    /// Which venue.
    fn venue(&self) -> Venue;

    /// The public WebSocket endpoint.
    fn endpoint(&self) -> &'static str;

    /// The public REST base URL (no trailing slash).
    fn rest_base(&self) -> &'static str;

    /// The venue's name for `asset`'s pair with our quote (`BTC-USD`, `btcusd`, `BTC/USD`).
    fn pair(&self, asset: &Symbol) -> String;

    /// The frames that subscribe to `assets`' price channel (sent in order after connecting).
    fn subscribe(&self, assets: &[Symbol]) -> Vec<String>;

    /// The application-level ping frame, if the venue uses one.
    fn ping_frame(&self, sequence: u64) -> Option<String>;

    /// The reply a [`Skip::HeartbeatRequest`] needs.
    fn heartbeat_reply(&self, _id: u64) -> Option<String> {
        None
    }

    fn keepalive(&self) -> Keepalive;

    /// Parses one text frame from the stream. `received_ms` stands in for an absent exchange
    /// time where the venue allows it.
    fn parse(
        &self,
        frame: &str,
        received_ms: u64,
        out: &mut dyn FnMut(Update),
    ) -> Result<Frame, ParseError>;

    /// The REST ticker URL for `assets`, under `base` (the venue's, or a simulator's).
    fn rest_url(&self, base: &str, assets: &[Symbol]) -> String;

    /// Parses a REST ticker response; returns how many updates it produced.
    fn parse_rest(
        &self,
        body: &str,
        received_ms: u64,
        out: &mut dyn FnMut(Update),
    ) -> Result<usize, ParseError>;
}

/// Field access for parsers, with the errors of PROTOCOLS.md §1.
pub(crate) mod field {
    use super::*;
    use crate::json::Object;

    /// A required member.
    pub fn required<'a>(obj: &Object<'a>, name: &'static str) -> Result<Value<'a>, ParseError> {
        obj.get(name).ok_or(ParseError::Missing(name))
    }

    /// A required string without escapes.
    pub fn string<'a>(obj: &Object<'a>, name: &'static str) -> Result<&'a str, ParseError> {
        required(obj, name)?
            .as_str()
            .ok_or(ParseError::WrongType(name))
    }

    /// A required array.
    pub fn array<'a>(
        obj: &Object<'a>,
        name: &'static str,
    ) -> Result<crate::json::Array<'a>, ParseError> {
        required(obj, name)?
            .as_array()
            .ok_or(ParseError::WrongType(name))
    }

    /// A price given as a decimal string or a number token, exactly as written.
    pub fn price(value: Value<'_>, name: &'static str) -> Result<Decimal, ParseError> {
        let text = match value {
            Value::String(s) => s.plain().ok_or(ParseError::WrongType(name))?,
            Value::Number(n) => n,
            _ => return Err(ParseError::WrongType(name)),
        };
        Decimal::parse(text).map_err(|e| ParseError::Price(name, e))
    }

    /// An integer millisecond time given as a number or a string of digits.
    pub fn millis(value: Value<'_>, name: &'static str) -> Result<u64, ParseError> {
        let text = match value {
            Value::Number(n) => n,
            Value::String(s) => s.plain().ok_or(ParseError::WrongType(name))?,
            _ => return Err(ParseError::WrongType(name)),
        };
        text.parse().map_err(|_| ParseError::Timestamp(name))
    }

    /// An RFC 3339 time string.
    pub fn rfc3339(value: Value<'_>, name: &'static str) -> Result<u64, ParseError> {
        let text = value.as_str().ok_or(ParseError::WrongType(name))?;
        crate::time::rfc3339_ms(text).ok_or(ParseError::Timestamp(name))
    }

    /// The base asset of a pair written `BASE<sep>QUOTE...`.
    pub fn base(pair: &str, sep: char, name: &'static str) -> Result<Symbol, ParseError> {
        let base = pair.split(sep).next().unwrap_or("");
        Symbol::parse(base.as_bytes()).map_err(|_| ParseError::Symbol(name))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Runs a parser over a frame and renders what `beast feeds parse` would print.

    use super::*;

    pub fn render(exchange: &dyn Exchange, frame: &str) -> String {
        let mut updates = Vec::new();
        match exchange.parse(frame, 7, &mut |u| updates.push(u)) {
            Ok(Frame::Prices(n)) => {
                assert_eq!(n, updates.len());
                let items: Vec<String> = updates
                    .iter()
                    .map(|u| format!("{} {} {}", u.asset, u.price, u.exchange_ms))
                    .collect();
                items.join(" | ")
            }
            Ok(Frame::Skip(skip)) => format!("skip {skip:?}"),
            Err(e) => format!("error {e}"),
        }
    }
}
