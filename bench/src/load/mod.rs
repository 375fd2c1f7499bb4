//! The load generator: threads (pinned to CPUs) each driving several sockets or connections,
//! closed loop (a window of requests in flight per socket) or open loop (requests sent at their
//! scheduled times whatever the server does).
//!
//! In open loop, latency is measured from each request's *intended* send time, so a server
//! stall shows up in the percentiles instead of silently slowing the generator down
//! (coordinated omission); the raw service time (from the actual send) is reported beside it,
//! and so is the generator's lag behind its schedule. Requests intended before the warm-up ends
//! are not counted.

mod flight;
mod http;
mod mmsg;
pub mod request;
mod timer;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::{self, Errors, Percentiles, Second, Series};
use flight::{Pacer, Tally};

pub use request::{Form, Requests};

/// How requests are paced.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "pace")]
pub enum Pace {
    /// Each socket or connection keeps `window` requests in flight (HTTP: pipelined).
    Closed { window: usize },
    /// Requests are sent at `rate` per second in all, on schedule, with at most `window` in
    /// flight per socket or connection (a request due while the window is full waits, and its
    /// wait counts in its latency).
    Open { rate: f64, window: usize },
}

/// One load run.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub target: SocketAddr,
    pub form: Form,
    pub pace: Pace,
    /// UDP sockets or TCP connections, in all.
    pub connections: usize,
    pub threads: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Stop after this many measured requests (besides the duration).
    pub max_requests: Option<u64>,
    pub assets: Vec<String>,
    pub per_request: usize,
    pub key: Option<String>,
    /// UDP text requests are padded to this many bytes (no key): a reply may not exceed its
    /// request.
    pub pad_to: usize,
    /// HTTP: this target on every request instead of prices.
    pub path: Option<String>,
    /// A request unanswered this long is counted as a timeout.
    pub timeout: Duration,
    pub pin: bool,
}

/// What one run measured.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    pub target: String,
    pub form: Form,
    #[serde(flatten)]
    pub pace: Pace,
    pub connections: usize,
    pub threads: usize,
    pub duration_s: f64,
    /// Requests sent in the measured window.
    pub sent: u64,
    /// Answers received for them (good or not).
    pub answered: u64,
    /// Good answers.
    pub ok: u64,
    pub achieved_rps: f64,
    /// Open loop: the rate asked for.
    pub offered_rps: Option<f64>,
    /// How late sends were against their schedule (open loop), µs.
    pub generator_lag_us: Percentiles,
    /// Latency from the intended send time (open loop) or the send (closed loop), µs.
    pub latency_us: Percentiles,
    /// Latency from the actual send, µs.
    pub service_us: Percentiles,
    pub errors: Errors,
    pub per_second: Vec<Second>,
    /// The latency histogram as `.hgrm` text.
    #[serde(skip)]
    pub hgrm: String,
}

/// What a worker thread hands back.
pub(crate) struct WorkerResult {
    pub latency: Histogram<u64>,
    pub service: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub series: Series,
    pub errors: Errors,
    pub sent: u64,
    pub answered: u64,
    pub ok: u64,
}

impl WorkerResult {
    pub fn new() -> WorkerResult {
        WorkerResult {
            latency: stats::histogram(),
            service: stats::histogram(),
            lag: stats::histogram(),
            series: Series::new(),
            errors: Errors::default(),
            sent: 0,
            answered: 0,
            ok: 0,
        }
    }
}

/// The clock every worker shares.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// The open-loop schedule starts here (warm-up included).
    pub start: Instant,
    /// Requests intended before this are warm-up.
    pub measure_from: Instant,
    /// No request is sent from here on.
    pub send_until: Instant,
    /// Answers are awaited until here.
    pub drain_until: Instant,
}

impl Window {
    /// Warm-up, then the measured duration, then the drain, from `start`.
    fn starting(start: Instant, spec: &LoadSpec) -> Window {
        Window {
            start,
            measure_from: start + spec.warmup,
            send_until: start + spec.warmup + spec.duration,
            drain_until: start + spec.warmup + spec.duration + spec.timeout,
        }
    }

    pub fn measured(&self, intended: Instant) -> bool {
        intended >= self.measure_from
    }

    pub fn second(&self, intended: Instant) -> usize {
        usize::try_from(
            intended
                .saturating_duration_since(self.measure_from)
                .as_secs(),
        )
        .unwrap_or(usize::MAX)
    }
}

/// Shared between the workers and the progress line.
pub(crate) struct Shared {
    pub answered: AtomicU64,
    pub measured_sent: AtomicU64,
    pub stop: AtomicBool,
    pub max_requests: Option<u64>,
}

impl Shared {
    /// Takes one measured request from the budget (`-n`); false once it is spent. Workers
    /// claim before they send, so the budget is exact across sockets and threads.
    pub fn claim(&self) -> bool {
        let Some(max) = self.max_requests else {
            return true;
        };
        self.measured_sent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Returns claims for requests that were not sent after all.
    pub fn unclaim(&self, n: u64) {
        if self.max_requests.is_some() {
            self.measured_sent.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// True once the request budget is spent.
    pub fn budget_spent(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self
                .max_requests
                .is_some_and(|max| self.measured_sent.load(Ordering::Relaxed) >= max)
    }
}

/// Runs `spec`; `progress` is called about once a second with (elapsed, answers so far).
pub fn run(spec: &LoadSpec, mut progress: impl FnMut(Duration, u64)) -> anyhow::Result<RunResult> {
    let threads = spec.threads.clamp(1, spec.connections.max(1));
    let requests = Arc::new(Requests::new(
        spec.form,
        &spec.assets,
        spec.per_request,
        spec.key.as_deref(),
        spec.pad_to,
        spec.path.as_deref(),
    ));
    anyhow::ensure!(!requests.is_empty(), "no assets to ask for");
    let shared = Arc::new(Shared {
        answered: AtomicU64::new(0),
        measured_sent: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        max_requests: spec.max_requests,
    });
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    // Connections are made before the clock starts.
    let mut prepared = Vec::new();
    for t in 0..threads {
        let count = spec.connections / threads + usize::from(t < spec.connections % threads);
        prepared.push(match spec.form {
            Form::Http => Prepared::Http(
                http::connect(spec.target, count)
                    .with_context(|| format!("connecting to {}", spec.target))?,
            ),
            Form::UdpText | Form::UdpV8 => Prepared::Udp(
                udp::open(spec.target, count)
                    .with_context(|| format!("opening UDP sockets to {}", spec.target))?,
            ),
        });
    }
    // The workers start together, and each one's clock starts when it first runs: a thread
    // the scheduler starts or wakes late (a loaded machine, thousands of connections) still
    // has the whole level to send in.
    let clock = Arc::new(std::sync::Barrier::new(threads + 1));
    let handles: Vec<_> = prepared
        .into_iter()
        .enumerate()
        .map(|(t, sockets)| {
            let (spec, requests, shared, clock) = (
                spec.clone(),
                Arc::clone(&requests),
                Arc::clone(&shared),
                Arc::clone(&clock),
            );
            // From the last CPU down: the server pins its reactors from CPU 0 up.
            let core = if spec.pin {
                let n = cores.len().max(1);
                cores.get(n - 1 - t % n).copied()
            } else {
                None
            };
            let per_thread_rate = match spec.pace {
                Pace::Open { rate, .. } => Some(rate / threads as f64),
                Pace::Closed { .. } => None,
            };
            std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    clock.wait();
                    let window = Window::starting(Instant::now(), &spec);
                    let worker = Worker {
                        spec: &spec,
                        per_thread_rate,
                        requests: &requests,
                        window,
                        shared: &shared,
                        thread: t,
                    };
                    match sockets {
                        Prepared::Udp(sockets) => {
                            worker.run("UDP", |tally| udp::drive(sockets, &worker, tally))
                        }
                        Prepared::Http(conns) => {
                            worker.run("HTTP", |tally| http::drive(conns, &worker, tally))
                        }
                    }
                })
        })
        .collect::<Result<_, _>>()?;
    clock.wait();
    let start = Instant::now();
    // Progress while the workers run.
    let mut next = start + Duration::from_secs(1);
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::park_timeout(
            next.saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100)),
        );
        if Instant::now() >= next {
            progress(start.elapsed(), shared.answered.load(Ordering::Relaxed));
            next += Duration::from_secs(1);
        }
    }
    let mut total = WorkerResult::new();
    for handle in handles {
        let part = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))?;
        let _ = total.latency.add(&part.latency);
        let _ = total.service.add(&part.service);
        let _ = total.lag.add(&part.lag);
        total.series.merge(part.series);
        total.errors.add(&part.errors);
        total.sent += part.sent;
        total.answered += part.answered;
        total.ok += part.ok;
    }
    if matches!(spec.form, Form::UdpText | Form::UdpV8) {
        total.errors.udp_lost = total.sent.saturating_sub(total.answered);
    }
    // A run bounded by `-n` may end before its duration.
    let seconds = start
        .elapsed()
        .saturating_sub(spec.warmup)
        .min(spec.duration)
        .as_secs_f64()
        .max(1e-3);
    Ok(RunResult {
        target: spec.target.to_string(),
        form: spec.form,
        pace: spec.pace,
        connections: spec.connections,
        threads,
        duration_s: seconds,
        sent: total.sent,
        answered: total.answered,
        ok: total.ok,
        achieved_rps: (total.answered as f64 / seconds * 10.0).round() / 10.0,
        offered_rps: match spec.pace {
            Pace::Open { rate, .. } => Some(rate),
            Pace::Closed { .. } => None,
        },
        generator_lag_us: Percentiles::of(&total.lag),
        latency_us: Percentiles::of(&total.latency),
        service_us: Percentiles::of(&total.service),
        errors: total.errors,
        per_second: total.series.to_seconds(),
        hgrm: stats::hgrm(&total.latency),
    })
}

enum Prepared {
    Udp(Vec<std::net::UdpSocket>),
    Http(Vec<std::net::TcpStream>),
}

/// What one load thread works from.
pub(crate) struct Worker<'a> {
    pub spec: &'a LoadSpec,
    /// Open loop: this thread's share of the rate.
    pub per_thread_rate: Option<f64>,
    pub requests: &'a Requests,
    pub window: Window,
    pub shared: &'a Shared,
    pub thread: usize,
}

impl Worker<'_> {
    /// Runs `drive` and hands back what it counted; an I/O failure ends the thread's share of
    /// the load with a message and counts as a connection error.
    fn run(
        &self,
        name: &str,
        drive: impl FnOnce(&mut Tally<'_>) -> std::io::Result<()>,
    ) -> WorkerResult {
        let mut tally = Tally::new(self.window, self.shared, self.per_thread_rate.is_some());
        if let Err(error) = drive(&mut tally) {
            eprintln!("beast-bench: {name} worker {}: {error}", self.thread);
            tally.result.errors.connection += 1;
        }
        tally.finish()
    }

    /// Requests in flight allowed per socket or connection.
    pub fn window_per_socket(&self) -> usize {
        match self.spec.pace {
            Pace::Closed { window } | Pace::Open { window, .. } => window.max(1),
        }
    }

    /// The pacer of socket `socket` of `sockets`: open-loop sends evenly spaced, each socket
    /// offset so they do not all send at once.
    pub fn pacer(&self, socket: usize, sockets: usize) -> Pacer {
        match self.per_thread_rate {
            Some(rate) => {
                let per_socket = rate / sockets.max(1) as f64;
                let interval = Duration::from_secs_f64(1.0 / per_socket.max(1e-3));
                let offset = interval.mul_f64(socket as f64 / sockets.max(1) as f64);
                Pacer::Open {
                    next: self.window.start + offset,
                    interval,
                }
            }
            None => Pacer::Closed,
        }
    }

    /// Where socket `socket` starts in the asset rotation: each its own place, so a mixed list
    /// is not asked for in lockstep.
    pub fn first_request(&self, socket: usize) -> usize {
        self.thread * 7919 + socket * 31
    }
}
