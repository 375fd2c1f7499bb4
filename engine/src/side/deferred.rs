//! HTTP calls a reactor cannot answer itself (they need the store): the reactor hands the call
//! to the side thread and keeps the connection waiting; the side thread answers into the
//! outbox; the reactor collects its answers at its next sweep (within 100 ms) and writes them.
//! Subscription management and the usage report take this path; price requests never do.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::protocol::answer::ErrorCode;
use crate::protocol::http::request::Method;
use crate::protocol::http::response::Status;

/// Which connection waits, and for which of its calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiter {
    pub reactor: usize,
    /// The connection's slab index and generation.
    pub conn: (u32, u32),
    pub ticket: u64,
}

/// What a deferred call asks for.
#[derive(Debug)]
pub enum CallKind {
    /// `/subscriptions...`: the method, path and body below.
    Subscriptions,
    /// `/reports/usage`, its parameters checked by the reactor.
    UsageReport(crate::report::usage::UsageRequest),
}

/// A call for the side thread.
#[derive(Debug)]
pub struct Call {
    pub waiter: Waiter,
    pub kind: CallKind,
    /// The API key the call is made with: the owner of what it creates or reads.
    pub owner: u64,
    pub method: Method,
    /// The path after `/subscriptions`.
    pub path: String,
    pub query: String,
    pub body: Vec<u8>,
}

impl Call {
    /// Answering it is usage, metered like a report (the usage report).
    pub fn is_usage(&self) -> bool {
        matches!(self.kind, CallKind::UsageReport(_))
    }
}

/// What a deferred call is answered with.
#[derive(Debug)]
pub struct Answer {
    pub status: Status,
    pub error: Option<ErrorCode>,
    pub content_type: &'static [u8],
    /// Extra header lines.
    pub extra: &'static [u8],
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(status: Status, value: &serde_json::Value) -> Answer {
        Answer {
            status,
            error: None,
            content_type: crate::protocol::http::response::JSON,
            extra: b"",
            body: value.to_string().into_bytes(),
        }
    }

    /// The JSON error answer (`message` may quote the caller's input: it is escaped).
    pub fn error(code: ErrorCode, message: &str) -> Answer {
        let body = serde_json::json!({ "error": code.as_str(), "message": message });
        Answer {
            status: crate::protocol::http::response::status_of(code),
            error: Some(code),
            content_type: crate::protocol::http::response::JSON,
            extra: b"",
            body: body.to_string().into_bytes(),
        }
    }

    /// 503 `unavailable`: the store or the side thread could not answer.
    pub fn unavailable(message: &str) -> Answer {
        Answer::error(ErrorCode::Unavailable, message)
    }
}

/// An answer and the connection waiting for it.
#[derive(Debug)]
pub struct Answered {
    pub waiter: Waiter,
    pub answer: Answer,
}

/// Answers waiting for their reactors.
#[derive(Default)]
pub struct Outbox {
    waiting: AtomicUsize,
    answers: Mutex<Vec<Answered>>,
}

impl Outbox {
    pub fn post(&self, answer: Answered) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers.push(answer);
        self.waiting.store(answers.len(), Ordering::Release);
    }

    /// Reactor `reactor`'s answers (one atomic load when there are none: a sweep's cost).
    pub fn take(&self, reactor: usize, out: &mut Vec<Answered>) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut index = 0;
        while index < answers.len() {
            if answers
                .get(index)
                .is_some_and(|a| a.waiter.reactor == reactor)
            {
                out.push(answers.swap_remove(index));
            } else {
                index += 1;
            }
        }
        self.waiting.store(answers.len(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(reactor: usize, ticket: u64) -> Answered {
        Answered {
            waiter: Waiter {
                reactor,
                conn: (0, 0),
                ticket,
            },
            answer: Answer::json(Status::Ok, &serde_json::Value::Null),
        }
    }

    #[test]
    fn each_reactor_takes_its_own_answers() {
        let outbox = Outbox::default();
        outbox.post(answer(0, 1));
        outbox.post(answer(1, 2));
        outbox.post(answer(0, 3));
        let mut mine = Vec::new();
        outbox.take(0, &mut mine);
        let mut tickets: Vec<u64> = mine.iter().map(|a| a.waiter.ticket).collect();
        tickets.sort_unstable();
        assert_eq!(tickets, [1, 3]);
        let mut theirs = Vec::new();
        outbox.take(1, &mut theirs);
        assert_eq!(theirs.len(), 1);
        outbox.take(1, &mut theirs);
        assert_eq!(theirs.len(), 1, "taken once");
    }
}
