//! What each path answers.
//!
//! API ports (TCP_PORT_LPO, TCP_PORT_LRS): `/price?asset=`, `/prices?assets=`, `/assets`,
//! `/health`, and the operator's `/admin/...` calls. Health ports: `/health`, `/metrics`.
//! `GET` and `HEAD` only, except admin calls.
//!
//! Price routes take the API key from `X-API-Key` or a `key=` parameter: an unknown or revoked
//! key gets 401 `invalid_api_key` (so does no key where the node requires one), a key over its
//! tier's rate 429 `rate_limited` with `Retry-After`.

use super::reply::Reply;
use super::request::{Head, Method, percent_decode, query_param};
use super::response::{JSON, PROMETHEUS, Status};
use crate::access::Denied;
use crate::price::Freshness;
use crate::protocol::answer::{Answer, ErrorCode, write_answer, write_price};
use crate::protocol::sink::Sink;
use crate::protocol::state::State;
use crate::side::deferred::{Call, CallKind, Waiter};
use crate::usage::{AssetList, Protocol};

/// Most assets one `/prices` request may list.
pub(crate) const MAX_PRICES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// TCP_PORT_LPO: the price API.
    Api,
    /// TCP_PORT_LRS: the price API and `/reports/*`.
    Reports,
    Health,
}

impl PortKind {
    /// Serves the price API (and is admitted by the governor).
    pub fn is_api(self) -> bool {
        matches!(self, PortKind::Api | PortKind::Reports)
    }
}

/// `Retry-After` lines for 429s: limits are per second, so waits are short.
const RETRY_AFTER: [&[u8]; 5] = [
    b"Retry-After: 1\r\n",
    b"Retry-After: 2\r\n",
    b"Retry-After: 3\r\n",
    b"Retry-After: 4\r\n",
    b"Retry-After: 5\r\n",
];

/// The key a request presents: the `X-API-Key` header, else a `key=` parameter.
fn presented_key<'a>(head: &Head<'a>) -> Option<&'a [u8]> {
    head.api_key
        .or_else(|| query_param(head.query, b"key").filter(|k| !k.is_empty()))
}

/// Refuses a request for its key.
fn denied(body: &mut Vec<u8>, denied: Denied) -> Reply {
    match denied {
        Denied::Missing => Reply::error(
            body,
            ErrorCode::InvalidApiKey,
            b"an API key is required: X-API-Key header or key= parameter",
        ),
        Denied::Invalid => Reply::error(
            body,
            ErrorCode::InvalidApiKey,
            b"unknown or revoked API key",
        ),
        Denied::RateLimited { retry_after_s } => {
            let mut reply = Reply::error(
                body,
                ErrorCode::RateLimited,
                b"over the rate limit of this key's tier",
            );
            let index = usize::try_from(retry_after_s.clamp(1, 5) - 1).unwrap_or(0);
            reply.extra = RETRY_AFTER
                .get(index)
                .copied()
                .unwrap_or(b"Retry-After: 5\r\n");
            reply
        }
    }
}

/// A call the side thread answers (subscription management, which needs the store), for the
/// key presented: `None` for every other path (a prefix check, nothing allocated), `Err` with
/// the refusal when the key is missing, unknown or over its rate. The waiter is the caller's to
/// fill in.
pub fn deferred_call<S: State>(
    head: &Head<'_>,
    state: &S,
    port: PortKind,
    request_body: &[u8],
    body: &mut Vec<u8>,
) -> Option<Result<Box<Call>, Reply>> {
    if !port.is_api() {
        return None;
    }
    let usage_report = port == PortKind::Reports && head.path == b"/reports/usage";
    let rest = match head.path.strip_prefix(b"/subscriptions") {
        Some(rest) if rest.is_empty() || rest.starts_with(b"/") => rest,
        _ if usage_report => b"",
        _ => return None,
    };
    body.clear();
    let owner = match state.access().check(presented_key(head)) {
        Ok(grant) if grant.key_id() != 0 => grant.key_id(),
        // Anonymous access serves prices, never owns anything.
        Ok(_) => return Some(Err(denied(body, Denied::Missing))),
        Err(refused) => {
            let mut reply = denied(body, refused);
            reply.denied = Some(refused);
            return Some(Err(reply));
        }
    };
    let kind = if usage_report {
        if !matches!(head.method, Method::Get | Method::Head) {
            return Some(Err(Reply::method_not_allowed(
                body,
                b"use GET or HEAD",
                b"Allow: GET, HEAD\r\n",
            )));
        }
        let format =
            crate::report::Format::requested(query_param(head.query, b"format"), head.accept);
        let Some(format) = format else {
            return Some(Err(refused(body, crate::report::BAD_FORMAT)));
        };
        let admin = super::admin::authorized(state, head.admin_key);
        let now_ms = beast_core::clock::wall_ms();
        match crate::report::usage::request(head.query, owner, admin, format, now_ms) {
            Ok(request) => CallKind::UsageReport(request),
            Err(refusal) => return Some(Err(refused(body, refusal))),
        }
    } else {
        CallKind::Subscriptions
    };
    Some(Ok(Box::new(Call {
        kind,
        waiter: Waiter {
            reactor: 0,
            conn: (0, 0),
            ticket: 0,
        },
        owner,
        method: head.method,
        path: String::from_utf8_lossy(rest).into_owned(),
        query: String::from_utf8_lossy(head.query).into_owned(),
        body: request_body.to_vec(),
    })))
}

/// Answers one request, writing the body into `body` (cleared first) and the assets answered
/// with a price into `priced` (for the usage record).
pub fn respond<S: State>(
    head: &Head<'_>,
    state: &S,
    fresh: Freshness,
    port: PortKind,
    body: &mut Vec<u8>,
    priced: &mut AssetList,
) -> Reply {
    body.clear();
    priced.clear();
    if port.is_api() && head.path.starts_with(b"/admin/") {
        return super::admin::respond(head, state, fresh, body);
    }
    let api = port.is_api();
    let (route, keyed): (Route<S>, bool) = match (port, head.path) {
        (_, b"/price") if api => (price, true),
        (_, b"/prices") if api => (prices, true),
        (_, b"/assets") if api => (assets, true),
        (PortKind::Reports, path) if path.starts_with(b"/reports/") => (report, true),
        (_, b"/health") => (health, false),
        (PortKind::Health, b"/metrics") => (metrics, false),
        _ => return Reply::error(body, ErrorCode::NotFound, b"no such path"),
    };
    if !matches!(head.method, Method::Get | Method::Head) {
        return Reply::method_not_allowed(body, b"use GET or HEAD", b"Allow: GET, HEAD\r\n");
    }
    if keyed && !priced.room {
        return metering_behind(body);
    }
    let mut key_id = 0;
    if keyed {
        match state.access().check(presented_key(head)) {
            Ok(grant) => key_id = grant.key_id(),
            Err(refused) => {
                let mut reply = denied(body, refused);
                reply.denied = Some(refused);
                return reply;
            }
        }
    }
    let mut reply = route(head, state, fresh, body, priced);
    reply.key_id = key_id;
    reply
}

/// 503 for a request that could not be metered: nothing is served unmetered.
pub(crate) fn metering_behind(body: &mut Vec<u8>) -> Reply {
    let mut reply = Reply::error(
        body,
        ErrorCode::Overloaded,
        b"usage metering is behind; retry shortly",
    );
    reply.extra = RETRY_AFTER.first().copied().unwrap_or_default();
    reply
}

type Route<S> = fn(&Head<'_>, &S, Freshness, &mut Vec<u8>, &mut AssetList) -> Reply;

fn price<S: State>(
    head: &Head<'_>,
    state: &S,
    fresh: Freshness,
    body: &mut Vec<u8>,
    priced: &mut AssetList,
) -> Reply {
    let mut decoded = [0u8; 64];
    let Some(raw) = query_param(head.query, b"asset").filter(|v| !v.is_empty()) else {
        return Reply::error(body, ErrorCode::BadRequest, b"missing asset parameter");
    };
    let Some(asset) = percent_decode(raw, &mut decoded) else {
        return Reply::error(
            body,
            ErrorCode::InvalidAsset,
            b"asset symbols are 1-16 letters or digits",
        );
    };
    let answer = Answer::lookup(state.table(), asset);
    write_answer(body, &answer, fresh);
    let error = match answer {
        Answer::Price { id, .. } => {
            priced.push(id);
            return Reply::ok(true);
        }
        Answer::Unknown(_) => ErrorCode::UnknownAsset,
        Answer::NoPrice(_) => ErrorCode::NoPrice,
        Answer::Invalid => ErrorCode::InvalidAsset,
    };
    Reply {
        status: super::response::status_of(error),
        content_type: JSON,
        extra: b"",
        error: Some(error),
        priced: false,
        key_id: 0,
        denied: None,
        protocol: Protocol::Http,
    }
}

/// An array with one entry per listed asset: a price object, or an error object naming it.
fn prices<S: State>(
    head: &Head<'_>,
    state: &S,
    fresh: Freshness,
    body: &mut Vec<u8>,
    priced_assets: &mut AssetList,
) -> Reply {
    let mut decoded = [0u8; 1024];
    let Some(raw) = query_param(head.query, b"assets").filter(|v| !v.is_empty()) else {
        return Reply::error(body, ErrorCode::BadRequest, b"missing assets parameter");
    };
    let Some(list) = percent_decode(raw, &mut decoded) else {
        return Reply::error(body, ErrorCode::BadRequest, b"malformed assets parameter");
    };
    let count = list.split(|&b| b == b',').filter(|a| !a.is_empty()).count();
    if count == 0 {
        return Reply::error(body, ErrorCode::BadRequest, b"missing assets parameter");
    }
    if count > MAX_PRICES {
        return Reply::error(
            body,
            ErrorCode::TooManyAssets,
            b"at most 64 assets per request",
        );
    }
    let mut priced = true;
    body.put(b"[");
    for (i, asset) in list
        .split(|&b| b == b',')
        .filter(|a| !a.is_empty())
        .enumerate()
    {
        if i > 0 {
            body.put(b",");
        }
        let answer = Answer::lookup(state.table(), asset);
        if let Answer::Price { id, .. } = answer {
            priced_assets.push(id);
        }
        priced &= answer.is_price();
        write_answer(body, &answer, fresh);
    }
    body.put(b"]");
    Reply::ok(priced)
}

/// Every asset, its served price and each venue's latest price.
fn assets<S: State>(
    _head: &Head<'_>,
    state: &S,
    fresh: Freshness,
    body: &mut Vec<u8>,
    priced: &mut AssetList,
) -> Reply {
    // Every price the node has: one usage record for "all assets".
    priced.push(crate::price::AssetId::from_raw(crate::usage::ALL_ASSETS));
    let table = state.table();
    body.put(b"[");
    for (i, (id, symbol)) in table.registry().iter().enumerate() {
        if i > 0 {
            body.put(b",");
        }
        match table.aggregate(id) {
            Some(price) => {
                write_price(body, &symbol, &price, fresh);
                body.pop(); // reopen the object to add the sources
            }
            None => {
                body.put(b"{\"asset\":\"");
                body.put(symbol.as_bytes());
                body.put(b"\",\"price\":null");
            }
        }
        body.put(b",\"sources\":[");
        let mut first = true;
        for venue in beast_core::Venue::ALL {
            let Some(quote) = table.quote(id, venue) else {
                continue;
            };
            if !first {
                body.put(b",");
            }
            first = false;
            body.put(b"{\"source\":\"");
            body.put(quote.source.tag_for(fresh.simulated).as_bytes());
            body.put(b"\",\"price\":\"");
            body.put(quote.price.format().as_bytes());
            body.put(b"\",\"ts\":");
            body.put_u64(quote.exchange_ms);
            body.put(b",\"age_ms\":");
            body.put_u64(fresh.age_ms(quote.exchange_ms));
            body.put(if fresh.is_stale(quote.exchange_ms) {
                &b",\"stale\":true}"[..]
            } else {
                b"}"
            });
        }
        body.put(b"]}");
    }
    body.put(b"]");
    Reply::ok(true)
}

/// A report refused: the API's JSON error with the report's reason.
fn refused(body: &mut Vec<u8>, refusal: crate::report::Refusal) -> Reply {
    Reply::error(body, refusal.code, refusal.message)
}

/// `/reports/{name}`: the format from `format=`, else the `Accept` header.
fn report<S: State>(
    head: &Head<'_>,
    state: &S,
    fresh: Freshness,
    body: &mut Vec<u8>,
    priced: &mut AssetList,
) -> Reply {
    use crate::report::{self, Format, Params};
    let name = head.path.strip_prefix(b"/reports/").unwrap_or_default();
    let format = Format::requested(query_param(head.query, b"format"), head.accept);
    let mut decoded = [0u8; 1024];
    let assets = match query_param(head.query, b"assets") {
        Some(raw) => match percent_decode(raw, &mut decoded) {
            Some(list) => Some(list),
            None => {
                return Reply::error(body, ErrorCode::BadRequest, b"malformed assets parameter");
            }
        },
        None => None,
    };
    let params = Params {
        asset: query_param(head.query, b"asset"),
        assets,
        interval: query_param(head.query, b"interval"),
        venue: query_param(head.query, b"venue"),
        start: query_param(head.query, b"start"),
        end: query_param(head.query, b"end"),
        limit: query_param(head.query, b"limit"),
    };
    let request = match report::request(name, &params, state.table()) {
        Ok(request) => request,
        Err(refusal) => return refused(body, refusal),
    };
    let Some(format) = format else {
        return refused(body, report::BAD_FORMAT);
    };
    report::write_response(&request, state.table(), fresh, format, body);
    priced.push(request.metered_asset());
    let mut reply = Reply::ok(true);
    reply.content_type = format.content_type();
    reply.protocol = Protocol::HttpReport;
    reply
}

/// 200 while serving (`degraded`, with the reasons, when something around serving needs an
/// operator: the prices are still right); 503 while starting (no price yet) or shutting down.
fn health<S: State>(
    _head: &Head<'_>,
    state: &S,
    fresh: Freshness,
    body: &mut Vec<u8>,
    _priced: &mut AssetList,
) -> Reply {
    let facts = state.facts(fresh.now_ms);
    // Offline with live feeds: said plainly, whether or not older prices are still served.
    let offline = beast_feeds::client::FeedStatus::none_reachable(state.feeds());
    let mut degraded = offline;
    state.side().degraded(fresh.now_ms, |_| degraded = true);
    let status = if facts.draining {
        "draining"
    } else if facts.priced == 0 {
        "starting"
    } else if degraded {
        "degraded"
    } else {
        "serving"
    };
    body.put(b"{\"status\":\"");
    body.put(status.as_bytes());
    body.put(b"\",\"node\":\"");
    body.put(state.name().as_bytes());
    body.put(b"\",\"version\":\"");
    body.put(crate::build_info::VERSION.as_bytes());
    body.put(b"\",\"commit\":\"");
    body.put(crate::build_info::GIT_COMMIT.as_bytes());
    body.put(b"\",\"io\":\"");
    body.put(state.io_backend().as_bytes());
    body.put(b"\",\"reactors\":");
    body.put_u64(state.reactors() as u64);
    body.put(b",\"uptime_s\":");
    body.put_u64(facts.uptime_s);
    body.put(b",\"assets\":");
    body.put_u64(facts.assets as u64);
    body.put(b",\"priced\":");
    body.put_u64(facts.priced as u64);
    body.put(b",\"stale\":");
    body.put_u64(facts.stale as u64);
    if facts.simulated {
        body.put(b",\"simulated\":true");
    }
    if degraded {
        body.put(b",\"degraded\":[");
        let mut first = !offline;
        if offline {
            body.put(b"\"no_venue_reachable\"");
        }
        state.side().degraded(fresh.now_ms, |reason| {
            if !first {
                body.put(b",");
            }
            first = false;
            body.put(b"\"");
            body.put(reason.as_str().as_bytes());
            body.put(b"\"");
        });
        body.put(b"]");
    }
    write_feeds(body, state, fresh.now_ms);
    body.put(b"}");
    let serving = matches!(status, "serving" | "degraded");
    Reply {
        status: if serving {
            Status::Ok
        } else {
            Status::ServiceUnavailable
        },
        content_type: JSON,
        extra: b"",
        error: (!serving).then_some(ErrorCode::Unavailable),
        priced: false,
        key_id: 0,
        denied: None,
        protocol: Protocol::Http,
    }
}

/// `,"feeds":[{"venue":"coinbase","state":"streaming",...}]` when feeds run.
fn write_feeds<S: State>(body: &mut Vec<u8>, state: &S, now_ms: u64) {
    use beast_feeds::client::FeedStatus;
    if state.feeds().is_empty() {
        return;
    }
    body.put(b",\"feeds\":[");
    for (i, feed) in state.feeds().iter().enumerate() {
        if i > 0 {
            body.put(b",");
        }
        let last = FeedStatus::get(&feed.last_message_ms);
        body.put(b"{\"venue\":\"");
        body.put(feed.venue.name().as_bytes());
        body.put(b"\",\"state\":\"");
        body.put(feed.state().as_str().as_bytes());
        body.put(b"\",\"messages_per_second\":");
        body.put_u64(FeedStatus::get(&feed.messages_per_second));
        body.put(b",\"last_message_age_ms\":");
        if last == 0 {
            body.put(b"null");
        } else {
            body.put_u64(now_ms.saturating_sub(last));
        }
        body.put(b",\"reconnects\":");
        body.put_u64(FeedStatus::get(&feed.reconnects));
        body.put(b",\"parse_errors\":");
        body.put_u64(FeedStatus::get(&feed.parse_errors));
        body.put(b",\"exchange_errors\":");
        body.put_u64(FeedStatus::get(&feed.exchange_errors));
        body.put(b",\"ring_drops\":");
        body.put_u64(FeedStatus::get(&feed.ring_drops));
        body.put(b",\"rest_fallback\":");
        let active = feed.rest_active.load(std::sync::atomic::Ordering::Relaxed);
        body.put(if active { b"true" } else { b"false" });
        body.put(b"}");
    }
    body.put(b"]");
}

fn metrics<S: State>(
    _head: &Head<'_>,
    state: &S,
    fresh: Freshness,
    body: &mut Vec<u8>,
    _priced: &mut AssetList,
) -> Reply {
    let mut text = String::with_capacity(16 * 1024);
    state.render_metrics(fresh.now_ms, &mut text);
    body.extend_from_slice(text.as_bytes());
    Reply {
        status: Status::Ok,
        content_type: PROMETHEUS,
        extra: b"",
        error: None,
        priced: false,
        key_id: 0,
        denied: None,
        protocol: Protocol::Http,
    }
}
