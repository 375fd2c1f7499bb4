//! Subscription management over HTTP on the API nodes, with the owner's API key: the calls,
//! run on the side thread against the store (through [`super::manage`], as the CLI does).
//!
//! - `POST /subscriptions` (JSON body: `target`, `assets`, `every_s`, `move_bps`,
//!   `min_gap_ms`, `format`) → 201 with the subscription and its secret (shown once)
//! - `GET /subscriptions` → the key's subscriptions; `GET /subscriptions/{id}` → one
//! - `DELETE /subscriptions/{id}` → 200 `{"deleted":id}`
//! - `POST /subscriptions/{id}/pause|resume|rotate-secret`
//! - `GET /subscriptions/{id}/deliveries?since=MS&limit=N`
//! - `POST /subscriptions/{id}/replay?since=MS` → 202
//!
//! A key sees and changes only its own subscriptions (another key's id is 404).

use super::manage::{self, Limits, ManageError};
use super::subscription::{Spec, Subscription};
use crate::protocol::answer::ErrorCode;
use crate::protocol::http::request::{Method, query_param};
use crate::protocol::http::response::Status;
use crate::side::SubscriptionPolicy;
use crate::side::deferred::{Answer, Call};
use crate::store::Store;

/// The answer when the store cannot be reached.
pub fn unavailable() -> Answer {
    Answer::unavailable("the store is unreachable; try again")
}

/// The one mapping from a management failure to the API's error codes.
fn code_of(e: &ManageError) -> ErrorCode {
    match e {
        ManageError::Invalid(_) => ErrorCode::BadRequest,
        ManageError::NotFound(_) => ErrorCode::NotFound,
        ManageError::NoOwner(_) => ErrorCode::InvalidApiKey,
        ManageError::TooMany { .. } | ManageError::AlreadyIn(..) => ErrorCode::Conflict,
        ManageError::Store(_) | ManageError::Secret(_) => ErrorCode::Unavailable,
    }
}

fn failed(e: &ManageError) -> Answer {
    if !e.is_user_error() {
        tracing::error!(error = %e, "subscription call failed");
    }
    Answer::error(code_of(e), &e.to_string())
}

fn with_secret(sub: &Subscription, secret: &str) -> serde_json::Value {
    let mut value = sub.view();
    if let Some(fields) = value.as_object_mut() {
        fields.insert("secret".into(), secret.into());
    }
    value
}

fn number(query: &str, name: &[u8]) -> Result<Option<u64>, ()> {
    match query_param(query.as_bytes(), name) {
        None => Ok(None),
        Some(raw) => std::str::from_utf8(raw)
            .ok()
            .and_then(|t| t.parse().ok())
            .map(Some)
            .ok_or(()),
    }
}

/// Runs one call.
pub async fn execute(store: &mut Store, policy: &SubscriptionPolicy, call: &Call) -> Answer {
    let owner = Some(call.owner);
    let now = beast_core::clock::wall_ms();
    let limits = Limits {
        max_per_key: policy.max_per_key,
        secret_overlap_ms: policy.secret_overlap_ms,
    };
    let segments: Vec<&str> = call.path.split('/').filter(|s| !s.is_empty()).collect();
    let id = match segments.first().map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return Answer::error(ErrorCode::NotFound, "no such subscription"),
    };
    let action = segments.get(1).copied();
    if segments.len() > 2 {
        return Answer::error(ErrorCode::NotFound, "no such path");
    }
    let since = match number(&call.query, b"since") {
        Ok(since) => since,
        Err(()) => return Answer::error(ErrorCode::BadRequest, "since is Unix milliseconds"),
    };
    let limit = match number(&call.query, b"limit") {
        Ok(limit) => limit.unwrap_or(1_000).min(10_000),
        Err(()) => return Answer::error(ErrorCode::BadRequest, "limit is a number"),
    };
    let result = match (call.method, id, action) {
        (Method::Post, None, None) => {
            let spec: Spec = match serde_json::from_slice(&call.body) {
                Ok(spec) => spec,
                Err(e) => {
                    return Answer::error(ErrorCode::BadRequest, &format!("body: {e}"));
                }
            };
            manage::create(store, &policy.guard, &limits, call.owner, &spec, now)
                .await
                .map(|(sub, secret)| Answer::json(Status::Created, &with_secret(&sub, &secret)))
        }
        (Method::Get | Method::Head, None, None) => manage::list(store, owner).await.map(|subs| {
            let views: Vec<_> = subs.iter().map(Subscription::view).collect();
            Answer::json(Status::Ok, &serde_json::Value::from(views))
        }),
        (Method::Get | Method::Head, Some(id), None) => manage::get(store, owner, id)
            .await
            .map(|sub| Answer::json(Status::Ok, &sub.view())),
        (Method::Delete, Some(id), None) => manage::delete(store, owner, id)
            .await
            .map(|()| Answer::json(Status::Ok, &serde_json::json!({ "deleted": id }))),
        (Method::Post, Some(id), Some(which @ ("pause" | "resume"))) => {
            manage::set_active(store, owner, id, which == "resume", now)
                .await
                .map(|sub| Answer::json(Status::Ok, &sub.view()))
        }
        (Method::Post, Some(id), Some("rotate-secret")) => {
            manage::rotate_secret(store, &limits, owner, id, now)
                .await
                .map(|(sub, secret)| Answer::json(Status::Ok, &with_secret(&sub, &secret)))
        }
        (Method::Get | Method::Head, Some(id), Some("deliveries")) => {
            let since = since.unwrap_or_else(|| now.saturating_sub(3_600_000));
            manage::deliveries(store, owner, id, since, limit)
                .await
                .map(|rows| Answer::json(Status::Ok, &serde_json::json!(rows)))
        }
        (Method::Post, Some(id), Some("replay")) => {
            let Some(since) = since else {
                return Answer::error(ErrorCode::BadRequest, "replay needs since (Unix ms)");
            };
            manage::replay(store, owner, id, since, now).await.map(|n| {
                Answer::json(
                    Status::Accepted,
                    &serde_json::json!({ "subscription": id, "replayed": n }),
                )
            })
        }
        (_, _, Some("pause" | "resume" | "rotate-secret" | "replay")) => {
            return allow(b"Allow: POST\r\n");
        }
        (_, _, Some("deliveries")) => return allow(b"Allow: GET, HEAD\r\n"),
        (_, None, None) => return allow(b"Allow: GET, HEAD, POST\r\n"),
        (_, Some(_), None) => return allow(b"Allow: GET, HEAD, DELETE\r\n"),
        (_, _, Some(_)) => return Answer::error(ErrorCode::NotFound, "no such path"),
    };
    result.unwrap_or_else(|e| failed(&e))
}

fn allow(header: &'static [u8]) -> Answer {
    let mut answer = Answer::error(ErrorCode::MethodNotAllowed, "method not allowed here");
    answer.extra = header;
    answer
}
