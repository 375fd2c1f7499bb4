//! The operator's calls, on the API ports under `/admin/`. Each needs `X-Admin-Key` equal to
//! `BEAST_ADMIN_KEY`: both are hashed (SHA-256) and the digests compared in constant time, so
//! neither the content nor the length of the key leaks through timing. A wrong or missing key
//! gets 401 and is counted; with no admin key configured, every admin call gets 401. Every call
//! is logged with its outcome, never with a key (only a key's first characters).
//!
//! - `POST /admin/reload-params`: read keys and parameters from the store now.
//! - `POST /admin/invalidate-key?key=K`: refuse K on every reactor at once, revoke it in the store.
//! - `POST /admin/system-mode?mode=performance|normal`: the demo tier's limit and the mode.
//! - `POST /admin/bootstrap-key[?tier=T]`: the first key of an empty store (default tier partner).
//! - `GET /admin/feed-status`, `GET /admin/key-status?key=K`.
//!
//! Admin calls may allocate; they are not the request path.

use std::sync::atomic::Ordering;

use subtle::ConstantTimeEq as _;

use super::reply::Reply;
use super::request::{Head, Method, percent_decode, query_param};
use super::response::{JSON, Status};
use crate::access::key::display_prefix;
use crate::access::{ApiKey, Tier};
use crate::price::Freshness;
use crate::protocol::answer::ErrorCode;
use crate::protocol::state::State;
use crate::side::Command;
use crate::side::stats::add;
use crate::usage::Protocol;

pub fn respond<S: State>(
    head: &Head<'_>,
    state: &S,
    fresh: Freshness,
    body: &mut Vec<u8>,
) -> Reply {
    let stats = &state.side();
    let path = head.path.strip_prefix(b"/admin/").unwrap_or_default();
    if !authorized(state, head.admin_key) {
        add(&stats.admin_denied, 1);
        log_refusal(path, fresh.now_ms);
        return Reply::error(
            body,
            ErrorCode::Unauthorized,
            b"admin calls need the X-Admin-Key header",
        );
    }
    let call = String::from_utf8_lossy(path).into_owned();
    let post = head.method == Method::Post;
    let reply = match (call.as_str(), post) {
        ("reload-params", true) => reload_params(state, body),
        ("invalidate-key", true) => invalidate_key(head, state, body),
        ("system-mode", true) => system_mode(head, state, body),
        ("bootstrap-key", true) => bootstrap_key(head, state, body),
        ("feed-status", false) => feed_status(state, fresh, body),
        ("key-status", false) => key_status(head, state, body),
        ("cluster", false) => cluster(state, fresh, body),
        ("reload-params" | "invalidate-key" | "system-mode" | "bootstrap-key", false) => {
            Reply::method_not_allowed(body, b"use POST", b"Allow: POST\r\n")
        }
        ("feed-status" | "key-status" | "cluster", true) => {
            Reply::method_not_allowed(body, b"use GET", b"Allow: GET, HEAD\r\n")
        }
        _ => Reply::error(body, ErrorCode::NotFound, b"no such admin call"),
    };
    add(&stats.admin_calls, 1);
    tracing::info!(call, status = reply.status.code(), "admin call");
    reply
}

/// Refused admin calls are logged at most once per 10 s (one line for the process, whichever
/// reactor refuses), with how many were refused since the last line and the latest call's
/// name cut to 64 bytes: a flood of wrong keys is counted in full (`beast_admin_denied_total`)
/// but cannot flood the log.
static REFUSALS: beast_core::Throttle = beast_core::Throttle::new(10_000);

fn log_refusal(path: &[u8], now_ms: u64) {
    let Some(earlier) = REFUSALS.admit(now_ms) else {
        return;
    };
    let call = String::from_utf8_lossy(path.get(..64).unwrap_or(path));
    tracing::warn!(
        %call,
        refused = earlier + 1,
        "admin calls refused: wrong or missing X-Admin-Key (at most one line per 10 s)"
    );
}

/// Constant-time comparison of the presented admin key with the configured one.
pub(super) fn authorized<S: State>(state: &S, presented: Option<&[u8]>) -> bool {
    let (Some(expected), Some(presented)) = (state.admin_key(), presented) else {
        return false;
    };
    let digest = crate::access::key::digest(presented);
    bool::from(digest.ct_eq(expected))
}

fn json(body: &mut Vec<u8>, status: Status, value: &serde_json::Value) -> Reply {
    body.clear();
    body.extend_from_slice(value.to_string().as_bytes());
    Reply {
        status,
        content_type: JSON,
        extra: b"",
        error: None,
        priced: false,
        key_id: 0,
        denied: None,
        protocol: Protocol::Http,
    }
}

fn mailbox_full(body: &mut Vec<u8>) -> Reply {
    Reply::error(
        body,
        ErrorCode::Unavailable,
        b"the side thread is busy; try again",
    )
}

/// The `name` query parameter, percent-decoded.
fn param(head: &Head<'_>, name: &[u8]) -> Option<String> {
    let raw = query_param(head.query, name).filter(|v| !v.is_empty())?;
    let mut decoded = [0u8; 256];
    let value = percent_decode(raw, &mut decoded)?;
    String::from_utf8(value.to_vec()).ok()
}

/// The `key` parameter, or the 400 that says it is missing.
fn key_param(head: &Head<'_>, body: &mut Vec<u8>) -> Result<String, Reply> {
    param(head, b"key")
        .ok_or_else(|| Reply::error(body, ErrorCode::BadRequest, b"missing key parameter"))
}

fn reload_params<S: State>(state: &S, body: &mut Vec<u8>) -> Reply {
    if !state.command(Command::ReloadParams) {
        return mailbox_full(body);
    }
    json(
        body,
        Status::Accepted,
        &serde_json::json!({ "status": "reloading" }),
    )
}

fn invalidate_key<S: State>(head: &Head<'_>, state: &S, body: &mut Vec<u8>) -> Reply {
    let key = match key_param(head, body) {
        Ok(key) => key,
        Err(reply) => return reply,
    };
    let Some(hash) = ApiKey::hash_presented(key.as_bytes()) else {
        return Reply::error(body, ErrorCode::BadRequest, b"not a key");
    };
    let keys = state.access().keys();
    let Some(entry) = keys.get(&hash).copied() else {
        return Reply::error(body, ErrorCode::NotFound, b"no such active key");
    };
    // Refused by every reactor from the next request on; the store follows.
    state.access().publish(keys.without(&hash));
    let stored = state.command(Command::RevokeKey { id: entry.id });
    tracing::info!(key = %display_prefix(key.as_bytes()), id = entry.id, "key invalidated");
    json(
        body,
        Status::Ok,
        &serde_json::json!({ "status": "revoked", "id": entry.id, "stored": stored }),
    )
}

fn system_mode<S: State>(head: &Head<'_>, state: &S, body: &mut Vec<u8>) -> Reply {
    let performance = match param(head, b"mode").as_deref() {
        Some("performance") => true,
        Some("normal") => false,
        _ => {
            return Reply::error(
                body,
                ErrorCode::BadRequest,
                b"mode is performance or normal",
            );
        }
    };
    state.access().set_performance(performance);
    let stored = state.command(Command::SystemMode { performance });
    json(
        body,
        Status::Ok,
        &serde_json::json!({
            "mode": if performance { "performance" } else { "normal" },
            "demo_limit_per_s": Tier::Demo.rate(performance).per_second,
            "stored": stored,
        }),
    )
}

fn bootstrap_key<S: State>(head: &Head<'_>, state: &S, body: &mut Vec<u8>) -> Reply {
    let stats = &state.side();
    if !stats.keys_loaded.load(Ordering::Acquire) {
        return Reply::error(
            body,
            ErrorCode::Unavailable,
            b"the key store has not been read yet",
        );
    }
    let tier = match param(head, b"tier").map(|t| t.parse::<Tier>()) {
        None => Tier::Partner,
        Some(Ok(tier)) => tier,
        Some(Err(_)) => {
            return Reply::error(body, ErrorCode::BadRequest, b"unknown tier");
        }
    };
    if stats.keys_total.load(Ordering::Acquire) > 0
        || stats.bootstrapped.swap(true, Ordering::AcqRel)
    {
        return Reply::error(
            body,
            ErrorCode::Conflict,
            b"the store already has keys: use beast keys create",
        );
    }
    let Ok(key) = ApiKey::generate() else {
        stats.bootstrapped.store(false, Ordering::Release);
        return Reply::error(body, ErrorCode::Unavailable, b"no randomness available");
    };
    let sent = state.command(Command::CreateKey {
        hash: key.hash(),
        prefix: key.prefix(),
        tier,
        name: "bootstrap".into(),
    });
    if !sent {
        stats.bootstrapped.store(false, Ordering::Release);
        return mailbox_full(body);
    }
    tracing::info!(key = %key.prefix(), tier = tier.name(), "bootstrap key created");
    json(
        body,
        Status::Ok,
        &serde_json::json!({ "key": key.as_str(), "tier": tier.name(), "note": "in force within a second; shown once" }),
    )
}

fn feed_status<S: State>(state: &S, fresh: Freshness, body: &mut Vec<u8>) -> Reply {
    let feeds: Vec<serde_json::Value> = state
        .feeds()
        .iter()
        .map(|f| {
            use beast_feeds::client::FeedStatus;
            let last = FeedStatus::get(&f.last_message_ms);
            serde_json::json!({
                "venue": f.venue.name(),
                "state": f.state().as_str(),
                "messages_per_second": FeedStatus::get(&f.messages_per_second),
                "last_message_age_ms": (last > 0).then(|| fresh.now_ms.saturating_sub(last)),
                "reconnects": FeedStatus::get(&f.reconnects),
                "parse_errors": FeedStatus::get(&f.parse_errors),
                "rest_fallback": f.rest_active.load(Ordering::Relaxed),
            })
        })
        .collect();
    json(body, Status::Ok, &serde_json::json!({ "feeds": feeds }))
}

/// The live nodes as this node last read them from Valkey (every 3 s), with each entry's age.
fn cluster<S: State>(state: &S, fresh: Freshness, body: &mut Vec<u8>) -> Reply {
    let stats = state.side();
    let nodes: Vec<serde_json::Value> = stats
        .members
        .load()
        .iter()
        .map(|member| {
            let mut member = member.clone();
            let age = member
                .get("ts")
                .and_then(serde_json::Value::as_u64)
                .map(|ts| fresh.now_ms.saturating_sub(ts));
            if let Some(fields) = member.as_object_mut() {
                fields.insert("age_ms".into(), age.into());
            }
            member
        })
        .collect();
    json(
        body,
        Status::Ok,
        &serde_json::json!({
            "node": state.name(),
            "live_nodes": stats.live_nodes.load(Ordering::Relaxed),
            "cache_up": stats.cache_up.load(Ordering::Relaxed),
            "keys_version": stats.keys_version.load(Ordering::Relaxed),
            "limits": stats.limits.view(),
            "governor": {
                "node": stats.governor.view(),
                "cluster": stats.governor_cluster.view(),
            },
            "nodes": nodes,
        }),
    )
}

fn key_status<S: State>(head: &Head<'_>, state: &S, body: &mut Vec<u8>) -> Reply {
    let key = match key_param(head, body) {
        Ok(key) => key,
        Err(reply) => return reply,
    };
    let shown = display_prefix(key.as_bytes());
    let entry =
        ApiKey::hash_presented(key.as_bytes()).and_then(|h| state.access().keys().get(&h).copied());
    let value = match entry {
        Some(entry) => {
            let rate = entry.tier.rate(state.access().performance());
            serde_json::json!({
                "key": shown,
                "active": true,
                "id": entry.id,
                "tier": entry.tier.name(),
                "limit_per_s": rate.per_second,
                "burst": rate.burst,
                // This node's part of that limit in a cluster (1 alone).
                "node_share": f64::from(state.access().limiter().share(entry.slot))
                    / f64::from(crate::access::limiter::WHOLE),
            })
        }
        None => serde_json::json!({ "key": shown, "active": false }),
    };
    json(body, Status::Ok, &value)
}
