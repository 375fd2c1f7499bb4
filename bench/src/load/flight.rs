//! Bookkeeping shared by the UDP and HTTP workers: requests in flight, when the next one is
//! due, and the tally of what came back.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::request::Verdict;
use super::{Shared, Window, WorkerResult};
use crate::stats;

/// A request sent and not yet answered.
#[derive(Clone, Copy, Debug)]
pub struct Flight {
    /// When the schedule wanted it sent (open loop), or when it was sent (closed loop).
    pub intended: Instant,
    pub sent: Instant,
    /// Index into [`super::Requests`].
    pub request: usize,
    /// v8 request id; 0 for the forms that match replies in order.
    pub id: u32,
}

/// When a connection may send: up to `window` in flight, and in open loop not before the
/// schedule says so. A schedule that falls behind (the server stalled, the window was full)
/// keeps its intended times, so the lateness lands in the measured latency.
#[derive(Clone, Copy, Debug)]
pub enum Pacer {
    Closed,
    Open { next: Instant, interval: Duration },
}

impl Pacer {
    /// The intended time of a request that may go now, if one may.
    pub fn due(&self, now: Instant, window: &Window) -> Option<Instant> {
        match *self {
            Pacer::Closed => (now < window.send_until).then_some(now),
            Pacer::Open { next, .. } => (next <= now && next < window.send_until).then_some(next),
        }
    }

    pub fn advance(&mut self) {
        if let Pacer::Open { next, interval } = self {
            *next += *interval;
        }
    }

    /// When this pacer next wants to send (open loop), for the wake-up timer.
    pub fn next(&self) -> Option<Instant> {
        match *self {
            Pacer::Closed => None,
            Pacer::Open { next, .. } => Some(next),
        }
    }
}

/// Counts what one worker saw, measured requests only.
pub struct Tally<'a> {
    pub result: WorkerResult,
    pub window: Window,
    shared: &'a Shared,
    open: bool,
    unreported: u64,
}

impl<'a> Tally<'a> {
    pub fn new(window: Window, shared: &'a Shared, open: bool) -> Tally<'a> {
        Tally {
            result: WorkerResult::new(),
            window,
            shared,
            open,
            unreported: 0,
        }
    }

    /// True when no more requests may start.
    pub fn sending_over(&self, now: Instant) -> bool {
        now >= self.window.send_until || self.shared.budget_spent()
    }

    /// Claims a request intended at `intended` from the budget before it is sent; false when
    /// the budget is spent. Warm-up requests take nothing from it.
    pub fn claim(&self, intended: Instant) -> bool {
        !self.window.measured(intended) || self.shared.claim()
    }

    /// Gives back the claims of requests intended at `intended` that were not sent.
    pub fn unclaim(&self, intended: &[Instant]) {
        let measured = intended
            .iter()
            .filter(|t| self.window.measured(**t))
            .count();
        self.shared.unclaim(measured as u64);
    }

    pub fn sent(&mut self, intended: Instant, now: Instant) {
        if !self.window.measured(intended) {
            return;
        }
        self.result.sent += 1;
        if self.open {
            stats::record(
                &mut self.result.lag,
                now.saturating_duration_since(intended),
            );
        }
    }

    pub fn answered(&mut self, flight: &Flight, now: Instant, verdict: Verdict) {
        // The progress line counts warm-up answers too.
        self.unreported += 1;
        if !self.window.measured(flight.intended) {
            return;
        }
        let latency = now.saturating_duration_since(flight.intended);
        stats::record(&mut self.result.latency, latency);
        stats::record(
            &mut self.result.service,
            now.saturating_duration_since(flight.sent),
        );
        self.result
            .series
            .record(self.window.second(flight.intended), latency);
        self.result.answered += 1;
        match verdict {
            Verdict::Ok => self.result.ok += 1,
            Verdict::Malformed => self.result.errors.malformed += 1,
            Verdict::Mismatched => self.result.errors.mismatched += 1,
            Verdict::Status(status) => self.result.errors.count_status(status),
            Verdict::Overloaded => self.result.errors.http_503_overloaded += 1,
        }
    }

    pub fn timed_out(&mut self, flight: &Flight) {
        if self.window.measured(flight.intended) {
            self.result.errors.timeouts += 1;
        }
    }

    /// The connection carrying `flight` failed before it was answered.
    pub fn lost_connection(&mut self, flight: &Flight) {
        if self.window.measured(flight.intended) {
            self.result.errors.connection += 1;
        }
    }

    /// Publishes the answer count for the progress line.
    pub fn report(&mut self) {
        if self.unreported > 0 {
            self.shared
                .answered
                .fetch_add(self.unreported, Ordering::Relaxed);
            self.unreported = 0;
        }
    }

    pub fn finish(mut self) -> WorkerResult {
        self.report();
        self.result
    }
}

/// Pops the flights at the front of `pending` sent longer than `timeout` ago (flights are
/// queued in sending order); returns how many.
pub fn expire(
    pending: &mut VecDeque<Flight>,
    now: Instant,
    timeout: Duration,
    tally: &mut Tally<'_>,
) -> usize {
    let mut expired = 0;
    while let Some(front) = pending.front() {
        if now.saturating_duration_since(front.sent) < timeout {
            break;
        }
        tally.timed_out(front);
        pending.pop_front();
        expired += 1;
    }
    expired
}
