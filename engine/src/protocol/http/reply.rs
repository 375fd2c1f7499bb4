//! The head of a response a route gives back: its status, content type, extra header lines,
//! and what the connection counts and meters of it.

use super::response::{JSON, Status, status_of};
use crate::access::Denied;
use crate::protocol::answer::{ErrorCode, write_error};
use crate::usage::Protocol;

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
    /// The key the request was served for (0: none).
    pub key_id: u64,
    /// Refused for its key: counted with the other refusals.
    pub denied: Option<Denied>,
    /// What the request is metered as.
    pub protocol: Protocol,
}

impl Reply {
    pub(super) fn ok(priced: bool) -> Reply {
        Reply {
            status: Status::Ok,
            content_type: JSON,
            extra: b"",
            error: None,
            priced,
            key_id: 0,
            denied: None,
            protocol: Protocol::Http,
        }
    }

    /// 405 with the `Allow` line (`allow`, a whole header line).
    pub(super) fn method_not_allowed(
        body: &mut Vec<u8>,
        message: &[u8],
        allow: &'static [u8],
    ) -> Reply {
        let mut reply = Reply::error(body, ErrorCode::MethodNotAllowed, message);
        reply.extra = allow;
        reply
    }

    pub(super) fn error(body: &mut Vec<u8>, code: ErrorCode, message: &[u8]) -> Reply {
        body.clear();
        write_error(body, code, message);
        Reply {
            status: status_of(code),
            content_type: JSON,
            extra: b"",
            error: Some(code),
            priced: false,
            key_id: 0,
            denied: None,
            protocol: Protocol::Http,
        }
    }
}
