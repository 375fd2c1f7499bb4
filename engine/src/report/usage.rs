//! `usage`: a key's own usage by hour or day, asset and protocol, read from the usage rollups
//! on the side thread (the store is no place for a reactor to wait on). An admin key
//! (`X-Admin-Key`) may ask for any key with `key_id=`.

use super::chart::Chart;
use super::render::{Cell, Column, Report, left, right};
use super::{Format, Refusal, number};
use crate::protocol::answer::ErrorCode;
use crate::protocol::http::request::query_param;
use crate::protocol::sink::Sink;
use crate::side::deferred::Answer;
use crate::store::{Store, UsageReportQuery, UsageRow};

const HOUR: u64 = 3_600_000;
const DAY: u64 = 86_400_000;
/// Longest range one request may span: 31 days by hour, 400 by day.
const MAX_HOURS: u64 = 31 * 24;
const MAX_DAYS: u64 = 400;
/// Most rows one answer holds; more are cut and the report says so.
const MAX_ROWS: u64 = 10_000;

const COLUMNS: [Column; 5] = [
    right("period_start", 13),
    left("asset", 6),
    left("protocol", 11),
    right("requests", 9),
    right("prices", 9),
];

const BAD_BY: Refusal = Refusal::new(ErrorCode::BadRequest, b"by is hour or day");
const BAD_RANGE: Refusal = Refusal::new(
    ErrorCode::BadRequest,
    b"start and end are Unix times in ms, start < end, at most 31 days by hour or 400 by day",
);
const BAD_KEY_ID: Refusal = Refusal::new(ErrorCode::BadRequest, b"key_id is a key's number");
const NOT_ADMIN: Refusal = Refusal::new(
    ErrorCode::Unauthorized,
    b"key_id= needs the admin key in X-Admin-Key; without it the report is the caller's own",
);

/// A usage report asked for, checked by the reactor before it goes to the side thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageRequest {
    pub query: UsageReportQuery,
    pub format: Format,
}

/// Checks the parameters: the key is the caller's unless `admin` (the admin key was presented
/// and matched) and `key_id=` names another.
pub(crate) fn request(
    query: &[u8],
    caller: u64,
    admin: bool,
    format: Format,
    now_ms: u64,
) -> Result<UsageRequest, Refusal> {
    let period_ms = match query_param(query, b"by") {
        None | Some(b"hour") => HOUR,
        Some(b"day") => DAY,
        Some(_) => return Err(BAD_BY),
    };
    let key_id = match number(query_param(query, b"key_id"), BAD_KEY_ID)? {
        None => caller,
        Some(id) if admin => id,
        Some(_) => return Err(NOT_ADMIN),
    };
    let until_ms = number(query_param(query, b"end"), BAD_RANGE)?.unwrap_or(now_ms + 1);
    let longest = period_ms
        * if period_ms == HOUR {
            MAX_HOURS
        } else {
            MAX_DAYS
        };
    let default_span = if period_ms == HOUR { DAY } else { 30 * DAY };
    let since_ms = number(query_param(query, b"start"), BAD_RANGE)?
        .unwrap_or_else(|| until_ms.saturating_sub(default_span));
    if since_ms >= until_ms || until_ms - since_ms > longest {
        return Err(BAD_RANGE);
    }
    Ok(UsageRequest {
        query: UsageReportQuery {
            key_id,
            since_ms: since_ms - since_ms % period_ms,
            until_ms,
            period_ms,
            limit: MAX_ROWS + 1,
        },
        format,
    })
}

struct Usage<'a> {
    request: &'a UsageRequest,
    rows: &'a [UsageRow],
    cut: bool,
}

impl Report for Usage<'_> {
    fn name(&self) -> &'static str {
        "usage"
    }

    fn title(&self, out: &mut dyn Sink) {
        out.put(b"usage of key ");
        out.put_u64(self.request.query.key_id);
        out.put(if self.request.query.period_ms == HOUR {
            b" by hour"
        } else {
            b" by day"
        });
    }

    fn meta(&self, emit: &mut dyn FnMut(&'static str, Cell<'_>)) {
        let query = &self.request.query;
        emit("key_id", Cell::uint(query.key_id));
        emit(
            "by",
            Cell::Text(if query.period_ms == HOUR {
                "hour"
            } else {
                "day"
            }),
        );
        emit("start", Cell::uint(query.since_ms));
        emit("end", Cell::uint(query.until_ms));
        emit("truncated", Cell::Flag(self.cut));
    }

    fn columns(&self) -> &'static [Column] {
        &COLUMNS
    }

    fn rows(&self, emit: &mut dyn FnMut(&[Cell<'_>])) {
        for row in self.rows {
            emit(&[
                Cell::uint(row.period_ms),
                Cell::Text(&row.asset),
                Cell::Text(&row.protocol),
                Cell::uint(row.requests),
                Cell::uint(row.prices),
            ]);
        }
    }

    fn chart(&self) -> Chart {
        Chart::Bars { label: 1, value: 3 }
    }
}

/// Runs the report on the side thread: the answer the waiting connection gets.
pub async fn execute(store: &mut Store, request: &UsageRequest) -> Answer {
    match store.usage_report(request.query).await {
        Ok(mut rows) => {
            let cut = rows.len() as u64 > MAX_ROWS;
            rows.truncate(usize::try_from(MAX_ROWS).unwrap_or(usize::MAX));
            let mut body = Vec::with_capacity(256 + rows.len() * 64);
            super::render::render(
                &Usage {
                    request,
                    rows: &rows,
                    cut,
                },
                request.format,
                &mut body,
            );
            Answer {
                status: crate::protocol::http::response::Status::Ok,
                error: None,
                content_type: request.format.content_type(),
                extra: b"",
                body,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "usage report: the store did not answer");
            Answer::unavailable("the usage store is not reachable; try again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_793_491_200_000 + 5 * HOUR + 123;

    #[test]
    fn parameters_are_checked_and_the_key_is_the_callers() {
        let ok = |query: &str, admin| request(query.as_bytes(), 7, admin, Format::Json, NOW);
        let own = ok("", false).unwrap().query;
        assert_eq!(
            (own.key_id, own.period_ms, own.until_ms),
            (7, HOUR, NOW + 1)
        );
        assert_eq!(own.since_ms % HOUR, 0);
        assert_eq!(ok("key_id=9", true).unwrap().query.key_id, 9);
        assert_eq!(ok("by=day", false).unwrap().query.period_ms, DAY);
        let cases = [
            ("key_id=9", NOT_ADMIN),
            ("by=week", BAD_BY),
            ("start=10&end=10", BAD_RANGE),
            ("start=x", BAD_RANGE),
            ("start=0", BAD_RANGE),
            ("key_id=me", BAD_KEY_ID),
        ];
        for (query, refusal) in cases {
            assert_eq!(ok(query, false), Err(refusal), "{query}");
        }
        assert!(ok("by=day&start=0", false).is_err(), "400 days at most");
    }
}
