//! What each path answers.
//!
//! API ports (TCP_PORT_LPO, TCP_PORT_LRS): `/price?asset=`, `/prices?assets=`, `/assets`,
//! `/health`. Health ports: `/health`, `/metrics`. `GET` and `HEAD` only.

use super::request::{Head, Method, percent_decode, query_param};
use super::response::{JSON, PROMETHEUS, Status};
use crate::node::Node;
use crate::protocol::answer::{
    Answer, ErrorCode, Freshness, write_answer, write_error, write_price,
};
use crate::protocol::sink::Sink;

/// Most assets one `/prices` request may list.
pub const MAX_PRICES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortKind {
    Api,
    Health,
}

/// The head of a response whose body is in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: Status,
    pub content_type: &'static [u8],
    /// Extra header lines.
    pub extra: &'static [u8],
    pub error: Option<ErrorCode>,
    /// Every asset asked for was answered with a price (usage metering counts these).
    pub priced: bool,
}

impl Reply {
    fn ok(priced: bool) -> Reply {
        Reply {
            status: Status::Ok,
            content_type: JSON,
            extra: b"",
            error: None,
            priced,
        }
    }

    fn error(body: &mut Vec<u8>, status: Status, code: ErrorCode, message: &[u8]) -> Reply {
        body.clear();
        write_error(body, code, message);
        Reply {
            status,
            content_type: JSON,
            extra: b"",
            error: Some(code),
            priced: false,
        }
    }
}

/// Answers one request, writing the body into `body` (cleared first).
pub fn respond(
    head: &Head<'_>,
    node: &Node,
    fresh: Freshness,
    port: PortKind,
    body: &mut Vec<u8>,
) -> Reply {
    body.clear();
    let route = match (port, head.path) {
        (PortKind::Api, b"/price") => price,
        (PortKind::Api, b"/prices") => prices,
        (PortKind::Api, b"/assets") => assets,
        (_, b"/health") => health,
        (PortKind::Health, b"/metrics") => metrics,
        _ => return Reply::error(body, Status::NotFound, ErrorCode::NotFound, b"no such path"),
    };
    if !matches!(head.method, Method::Get | Method::Head) {
        let mut reply = Reply::error(
            body,
            Status::MethodNotAllowed,
            ErrorCode::MethodNotAllowed,
            b"use GET or HEAD",
        );
        reply.extra = b"Allow: GET, HEAD\r\n";
        return reply;
    }
    route(head, node, fresh, body)
}

fn price(head: &Head<'_>, node: &Node, fresh: Freshness, body: &mut Vec<u8>) -> Reply {
    let mut decoded = [0u8; 64];
    let Some(raw) = query_param(head.query, b"asset").filter(|v| !v.is_empty()) else {
        return Reply::error(
            body,
            Status::BadRequest,
            ErrorCode::BadRequest,
            b"missing asset parameter",
        );
    };
    let Some(asset) = percent_decode(raw, &mut decoded) else {
        return Reply::error(
            body,
            Status::BadRequest,
            ErrorCode::InvalidAsset,
            b"asset symbols are 1-16 letters or digits",
        );
    };
    let answer = Answer::lookup(&node.table, asset);
    write_answer(body, &answer, fresh);
    let (status, error) = match answer {
        Answer::Price { .. } => return Reply::ok(true),
        Answer::Unknown(_) => (Status::NotFound, ErrorCode::UnknownAsset),
        Answer::NoPrice(_) => (Status::ServiceUnavailable, ErrorCode::NoPrice),
        Answer::Invalid(_) => (Status::BadRequest, ErrorCode::InvalidAsset),
    };
    Reply {
        status,
        content_type: JSON,
        extra: b"",
        error: Some(error),
        priced: false,
    }
}

/// An array with one entry per listed asset: a price object, or an error object naming it.
fn prices(head: &Head<'_>, node: &Node, fresh: Freshness, body: &mut Vec<u8>) -> Reply {
    let mut decoded = [0u8; 1024];
    let Some(raw) = query_param(head.query, b"assets").filter(|v| !v.is_empty()) else {
        return Reply::error(
            body,
            Status::BadRequest,
            ErrorCode::BadRequest,
            b"missing assets parameter",
        );
    };
    let Some(list) = percent_decode(raw, &mut decoded) else {
        return Reply::error(
            body,
            Status::BadRequest,
            ErrorCode::BadRequest,
            b"malformed assets parameter",
        );
    };
    let count = list.split(|&b| b == b',').filter(|a| !a.is_empty()).count();
    if count == 0 {
        return Reply::error(
            body,
            Status::BadRequest,
            ErrorCode::BadRequest,
            b"missing assets parameter",
        );
    }
    if count > MAX_PRICES {
        return Reply::error(
            body,
            Status::BadRequest,
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
        let answer = Answer::lookup(&node.table, asset);
        priced &= answer.is_price();
        write_answer(body, &answer, fresh);
    }
    body.put(b"]");
    Reply::ok(priced)
}

/// Every asset, its served price and each venue's latest price.
fn assets(_head: &Head<'_>, node: &Node, fresh: Freshness, body: &mut Vec<u8>) -> Reply {
    let table = &node.table;
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
            body.put(quote.source.tag().as_bytes());
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
    Reply::ok(false)
}

/// 200 while serving; 503 while starting (no price yet) or shutting down.
fn health(_head: &Head<'_>, node: &Node, fresh: Freshness, body: &mut Vec<u8>) -> Reply {
    let facts = node.facts(fresh.now_ms);
    let status = if facts.draining {
        "draining"
    } else if facts.priced == 0 {
        "starting"
    } else {
        "serving"
    };
    body.put(b"{\"status\":\"");
    body.put(status.as_bytes());
    body.put(b"\",\"node\":\"");
    body.put(node.name.as_bytes());
    body.put(b"\",\"version\":\"");
    body.put(crate::build_info::VERSION.as_bytes());
    body.put(b"\",\"commit\":\"");
    body.put(crate::build_info::GIT_COMMIT.as_bytes());
    body.put(b"\",\"io\":\"");
    body.put(node.io_backend.as_bytes());
    body.put(b"\",\"reactors\":");
    body.put_u64(node.reactors.len() as u64);
    body.put(b",\"uptime_s\":");
    body.put_u64(facts.uptime_s);
    body.put(b",\"assets\":");
    body.put_u64(facts.assets as u64);
    body.put(b",\"priced\":");
    body.put_u64(facts.priced as u64);
    body.put(b",\"stale\":");
    body.put_u64(facts.stale as u64);
    write_feeds(body, node, fresh.now_ms);
    body.put(b"}");
    let serving = status == "serving";
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
    }
}

/// `,"feeds":[{"venue":"coinbase","state":"streaming",...}]` when feeds run.
fn write_feeds(body: &mut Vec<u8>, node: &Node, now_ms: u64) {
    use beast_feeds::client::FeedStatus;
    if node.feeds.is_empty() {
        return;
    }
    body.put(b",\"feeds\":[");
    for (i, feed) in node.feeds.iter().enumerate() {
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

fn metrics(_head: &Head<'_>, node: &Node, fresh: Freshness, body: &mut Vec<u8>) -> Reply {
    let mut text = String::with_capacity(16 * 1024);
    crate::metrics::render(
        &mut text,
        &node.reactors,
        &node.facts(fresh.now_ms),
        node.io_backend,
    );
    crate::metrics::render_feeds(&mut text, &node.feeds, fresh.now_ms);
    crate::metrics::render_process(&mut text);
    body.extend_from_slice(text.as_bytes());
    Reply {
        status: Status::Ok,
        content_type: PROMETHEUS,
        extra: b"",
        error: None,
        priced: false,
    }
}
