//! Reports (the LRS port's `/reports/*` and UDP text requests): `snapshot` (every asset's served
//! price and each venue's), `ohlc` (candles from [`crate::history`]) and `sources` (one asset's
//! venues against their median), each in JSON, CSV, an aligned text table or an HTML page.
//!
//! `usage` needs the store, so the side thread answers it ([`usage`]); the others are read
//! from the price table and the history the way prices are.
//!
//! A report is read from the price table and the history the way prices are: seqlock copies,
//! no lock; its output is written straight into the response buffer.

mod cache;
mod chart;
mod ohlc;
mod render;
mod snapshot;
mod sources;
pub mod usage;

use crate::history::{Interval, SeriesId};
use crate::price::{AssetId, Freshness, PriceTable};
use crate::protocol::answer::ErrorCode;
use crate::protocol::sink::Sink;

pub(crate) use ohlc::MAX_ROWS;

/// Most assets a snapshot may be narrowed to.
pub(crate) const MAX_FILTER: usize = 64;

/// How a report is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Html,
    Txt,
}

impl Format {
    pub fn parse(text: &[u8]) -> Option<Format> {
        match text {
            b"json" => Some(Format::Json),
            b"csv" => Some(Format::Csv),
            b"html" => Some(Format::Html),
            b"txt" => Some(Format::Txt),
            _ => None,
        }
    }

    /// The format an `Accept` header asks for: the first media type named that a report can be
    /// written as (`*/*` and no header at all: JSON); `None` if it names none of them.
    pub fn accepted(accept: Option<&[u8]>) -> Option<Format> {
        let Some(accept) = accept else {
            return Some(Format::Json);
        };
        accept.split(|&b| b == b',').find_map(|item| {
            let media = item
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            match media.to_ascii_lowercase().as_slice() {
                b"application/json" | b"*/*" | b"application/*" => Some(Format::Json),
                b"text/csv" => Some(Format::Csv),
                b"text/html" | b"text/*" => Some(Format::Html),
                b"text/plain" => Some(Format::Txt),
                _ => None,
            }
        })
    }

    /// The format a request asks for: its `format=` parameter, else its `Accept` header.
    pub fn requested(param: Option<&[u8]>, accept: Option<&[u8]>) -> Option<Format> {
        match param {
            Some(text) => Format::parse(text),
            None => Format::accepted(accept),
        }
    }

    pub fn content_type(self) -> &'static [u8] {
        match self {
            Format::Json => b"application/json",
            Format::Csv => b"text/csv; charset=utf-8",
            Format::Html => b"text/html; charset=utf-8",
            Format::Txt => b"text/plain; charset=utf-8",
        }
    }
}

/// A report asked for, its parameters checked.
#[derive(Clone, Copy, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "on the stack for one request; boxing would allocate on the request path"
)]
pub(crate) enum Request {
    Snapshot {
        assets: [AssetId; MAX_FILTER],
        /// 0: every asset.
        count: usize,
    },
    Ohlc(ohlc::Query),
    Sources {
        asset: AssetId,
    },
}

impl Request {
    /// The asset the usage record names (every asset for a whole snapshot).
    pub fn metered_asset(&self) -> AssetId {
        match self {
            Request::Snapshot { assets, count } if *count == 1 => assets[0],
            Request::Snapshot { .. } => AssetId::from_raw(crate::usage::ALL_ASSETS),
            Request::Ohlc(query) => query.asset,
            Request::Sources { asset } => *asset,
        }
    }
}

/// Why a report was refused: the code maps to the status, the message names what is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub code: ErrorCode,
    pub message: &'static [u8],
}

impl Refusal {
    const fn new(code: ErrorCode, message: &'static [u8]) -> Refusal {
        Refusal { code, message }
    }
}

pub(crate) const NO_SUCH_REPORT: Refusal = Refusal::new(
    ErrorCode::NotFound,
    b"no such report; the reports are snapshot, ohlc, sources and usage",
);
pub(crate) const BAD_FORMAT: Refusal = Refusal::new(
    ErrorCode::NotAcceptable,
    b"reports are written as format=json, csv, html or txt (or Accept: application/json, text/csv, text/html, text/plain)",
);
const BAD_INTERVAL: Refusal = Refusal::new(
    ErrorCode::BadRequest,
    b"interval is one of 1s, 1m, 5m, 15m, 1h, 4h, 1d",
);
const BAD_LIMIT: Refusal = Refusal::new(ErrorCode::BadRequest, b"limit is 1 to 1000");
const BAD_RANGE: Refusal = Refusal::new(
    ErrorCode::BadRequest,
    b"start and end are Unix times in ms, with start <= end",
);
const BAD_VENUE: Refusal = Refusal::new(
    ErrorCode::BadRequest,
    b"venue is one of coinbase, gemini, kraken, gateio, cryptocom, okx (or served)",
);
const NO_ASSET: Refusal = Refusal::new(ErrorCode::BadRequest, b"missing asset parameter");
const UNKNOWN_ASSET: Refusal = Refusal::new(ErrorCode::UnknownAsset, b"unknown asset");
const TOO_MANY: Refusal = Refusal::new(ErrorCode::TooManyAssets, b"at most 64 assets per snapshot");

/// A report's parameters, however they arrived (query string or datagram words).
pub(crate) struct Params<'a> {
    pub asset: Option<&'a [u8]>,
    /// Assets a snapshot is narrowed to, separated by commas or spaces.
    pub assets: Option<&'a [u8]>,
    pub interval: Option<&'a [u8]>,
    pub venue: Option<&'a [u8]>,
    pub start: Option<&'a [u8]>,
    pub end: Option<&'a [u8]>,
    pub limit: Option<&'a [u8]>,
}

fn number(text: Option<&[u8]>, refusal: Refusal) -> Result<Option<u64>, Refusal> {
    let Some(text) = text else {
        return Ok(None);
    };
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return Err(refusal);
    }
    Ok(Some(
        text.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    ))
}

fn asset(table: &PriceTable, text: Option<&[u8]>) -> Result<AssetId, Refusal> {
    let text = text.filter(|t| !t.is_empty()).ok_or(NO_ASSET)?;
    table.lookup(text).ok_or(UNKNOWN_ASSET)
}

/// Checks a report's parameters against the table.
pub(crate) fn request(
    name: &[u8],
    params: &Params<'_>,
    table: &PriceTable,
) -> Result<Request, Refusal> {
    match name {
        b"snapshot" => snapshot(
            table,
            params
                .assets
                .unwrap_or_default()
                .split(|&b| b == b',' || b == b' '),
        ),
        b"ohlc" => {
            let asset = asset(table, params.asset)?;
            let interval = match params.interval {
                None => Interval::M1,
                Some(text) => Interval::parse(text).ok_or(BAD_INTERVAL)?,
            };
            let series = match params.venue {
                None => SeriesId::Served,
                Some(text) => std::str::from_utf8(text)
                    .ok()
                    .and_then(SeriesId::parse)
                    .ok_or(BAD_VENUE)?,
            };
            let limit = number(params.limit, BAD_LIMIT)?.unwrap_or(100);
            if !(1..=MAX_ROWS as u64).contains(&limit) {
                return Err(BAD_LIMIT);
            }
            let start = number(params.start, BAD_RANGE)?;
            let end = number(params.end, BAD_RANGE)?;
            if let (Some(start), Some(end)) = (start, end)
                && start > end
            {
                return Err(BAD_RANGE);
            }
            Ok(Request::Ohlc(ohlc::Query {
                asset,
                series,
                interval,
                start,
                end,
                limit: usize::try_from(limit).unwrap_or(MAX_ROWS),
            }))
        }
        b"sources" => Ok(Request::Sources {
            asset: asset(table, params.asset)?,
        }),
        _ => Err(NO_SUCH_REPORT),
    }
}

fn snapshot<'a>(
    table: &PriceTable,
    symbols: impl Iterator<Item = &'a [u8]>,
) -> Result<Request, Refusal> {
    let mut assets = [AssetId::from_raw(0); MAX_FILTER];
    let mut count = 0;
    for symbol in symbols.filter(|s| !s.is_empty()) {
        let slot = assets.get_mut(count).ok_or(TOO_MANY)?;
        *slot = table.lookup(symbol).ok_or(UNKNOWN_ASSET)?;
        count += 1;
    }
    Ok(Request::Snapshot { assets, count })
}

/// Most candles a datagram's `ohlc` answers (the newest): eight rows and the head fit in
/// [`crate::protocol::udp::MAX_REPORT_REPLY`].
pub(crate) const UDP_OHLC_ROWS: usize = 8;

/// The report a datagram's words ask for (`snapshot BTC ETH`, `ohlc BTC 1m 10`,
/// `sources BTC`); `None` if its first word names no report. `ohlc` answers at most
/// [`UDP_OHLC_ROWS`] rows (rendering rows that cannot be sent would be work for nothing).
pub(crate) fn request_from_words(
    words: &[&[u8]],
    table: &PriceTable,
) -> Option<Result<Request, Refusal>> {
    let (name, rest) = words.split_first()?;
    let word = |i: usize| rest.get(i).copied();
    Some(match *name {
        b"snapshot" => snapshot(table, rest.iter().copied()),
        b"ohlc" | b"sources" => request(
            name,
            &Params {
                asset: word(0),
                assets: None,
                interval: word(1),
                venue: None,
                start: None,
                end: None,
                limit: word(2),
            },
            table,
        )
        .map(|request| match request {
            Request::Ohlc(mut query) => {
                query.limit = query.limit.min(UDP_OHLC_ROWS);
                Request::Ohlc(query)
            }
            other => other,
        }),
        _ => return None,
    })
}

/// Writes the report asked for into a response (an HTTP body, a datagram): the whole-table
/// snapshot from this reactor's copy (at most [`cache::REFRESH_MS`] old), every other report
/// as it is now.
pub(crate) fn write_response(
    request: &Request,
    table: &PriceTable,
    fresh: Freshness,
    format: Format,
    out: &mut impl Sink,
) {
    if let Request::Snapshot { count: 0, .. } = request {
        cache::snapshot(format, fresh, out, |body, fresh| {
            write(request, table, fresh, format, body);
        });
    } else {
        write(request, table, fresh, format, out);
    }
}

/// Writes the report asked for.
fn write(
    request: &Request,
    table: &PriceTable,
    fresh: Freshness,
    format: Format,
    out: &mut impl Sink,
) {
    match request {
        Request::Snapshot { assets, count } => render::render(
            &snapshot::Snapshot {
                table,
                fresh,
                assets: assets.get(..*count).unwrap_or_default(),
            },
            format,
            out,
        ),
        Request::Ohlc(query) => {
            render::render(&ohlc::Ohlc::new(table, fresh, *query), format, out);
        }
        Request::Sources { asset } => {
            render::render(&sources::Sources::new(table, fresh, *asset), format, out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_parameter_or_the_accept_header() {
        let cases: [(Option<&[u8]>, Option<Format>); 9] = [
            (None, Some(Format::Json)),
            (Some(b"*/*"), Some(Format::Json)),
            (
                Some(b"text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
                Some(Format::Html),
            ),
            (Some(b"text/csv"), Some(Format::Csv)),
            (Some(b"Text/Plain; charset=utf-8"), Some(Format::Txt)),
            (Some(b"application/xml, text/csv"), Some(Format::Csv)),
            (Some(b"application/xml"), None),
            (Some(b"image/png"), None),
            (Some(b""), None),
        ];
        for (accept, format) in cases {
            assert_eq!(Format::accepted(accept), format, "{accept:?}");
        }
        assert_eq!(Format::parse(b"csv"), Some(Format::Csv));
        assert_eq!(Format::parse(b"xml"), None);
    }

    #[test]
    fn bad_parameters_name_what_is_allowed() {
        let (table, mut writer) = PriceTable::new(4);
        writer
            .add_asset(&beast_core::Symbol::parse(b"BTC").unwrap())
            .unwrap();
        let params = |interval, limit, start, end, venue| Params {
            asset: Some(b"BTC"),
            assets: None,
            interval,
            venue,
            start,
            end,
            limit,
        };
        let cases: [(&[u8], Params<'_>, Option<Refusal>); 8] = [
            (b"ohlc", params(None, None, None, None, None), None),
            (
                b"ohlc",
                params(Some(b"2m"), None, None, None, None),
                Some(BAD_INTERVAL),
            ),
            (
                b"ohlc",
                params(None, Some(b"0"), None, None, None),
                Some(BAD_LIMIT),
            ),
            (
                b"ohlc",
                params(None, Some(b"1001"), None, None, None),
                Some(BAD_LIMIT),
            ),
            (
                b"ohlc",
                params(None, None, Some(b"20"), Some(b"10"), None),
                Some(BAD_RANGE),
            ),
            (
                b"ohlc",
                params(None, None, Some(b"-1"), None, None),
                Some(BAD_RANGE),
            ),
            (
                b"ohlc",
                params(None, None, None, None, Some(b"binance")),
                Some(BAD_VENUE),
            ),
            (
                b"volume",
                params(None, None, None, None, None),
                Some(NO_SUCH_REPORT),
            ),
        ];
        for (name, params, refusal) in cases {
            assert_eq!(request(name, &params, &table).err(), refusal);
        }
        let unknown = Params {
            asset: Some(b"DOGE"),
            ..params(None, None, None, None, None)
        };
        assert_eq!(
            request(b"sources", &unknown, &table).err(),
            Some(UNKNOWN_ASSET)
        );
    }
}
