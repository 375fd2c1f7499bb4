//! The push engine's loop: one task owns every subscription's state, fires deliveries when
//! their trigger allows, sends UDP datagrams itself (non-blocking: a full buffer drops, it never
//! waits), and hands HTTPS attempts to tasks of their own, one queue per endpoint. It reads
//! prices from the table like a reactor does and never waits for the feeds, the price thread,
//! the store or a receiver.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::PushOptions;
use super::endpoint::{BreakerPolicy, Endpoint, backoff_ms};
use super::https::{AttemptError, Client, Conn, Response, resolve};
use super::payload::{self, Cause, Event};
use super::sign;
use super::stats::{Outcome, PushStats};
use super::store::{Job, Loaded};
use super::subscription::{Format, Protocol, SubState, Subscription};
use crate::price::{AssetId, Freshness, PriceTable};
use crate::side::SideStats;
use crate::store::{DeliveryRow, Replay};

/// Sequence numbers reserved in the store at a time; a new block is asked for when a sixth of
/// the current one is left, so a restart (even kill -9) never reuses one: it starts past the
/// last block reserved.
const SEQ_BLOCK: u64 = 3_600;
/// How often move triggers are checked and due work is started.
const TICK: Duration = Duration::from_millis(5);
/// How often the buffered delivery log goes to the store worker.
const LOG_EVERY_MS: u64 = 1_000;
/// UDP names are resolved again this often.
const RESOLVE_EVERY_MS: u64 = 60_000;
const RETENTION_EVERY_MS: u64 = 3_600_000;

/// A message for an HTTPS endpoint: one delivery, attempted up to 1 + retries times.
#[derive(Clone)]
pub(super) struct Message {
    seq: u64,
    body: Arc<Vec<u8>>,
    cause: Cause,
    /// When the price that caused it changed (move) or it was due (interval), wall ms.
    since_wall_ms: u64,
    attempt: u32,
    /// A replay of a delivery given up earlier: one attempt, never superseded.
    replay: bool,
}

/// HTTPS progress of one subscription: at most one message queued and one in flight.
#[derive(Default)]
struct Https {
    queued: Option<Message>,
    /// Waiting for its retry time.
    retry: Option<(u64, Message)>,
    in_flight: bool,
    in_endpoint_queue: bool,
    replays: std::collections::VecDeque<Message>,
}

struct Live {
    sub: Subscription,
    endpoint: String,
    next_seq: u64,
    /// Sequence numbers below this are reserved in the store.
    reserved: u64,
    reserving: bool,
    /// When the next interval delivery is due, mono ms.
    next_due_ms: Option<u64>,
    asset_ids: Vec<Option<AssetId>>,
    /// Each asset's price when last delivered (move triggers).
    last_prices: Vec<Option<f64>>,
    last_move_ms: u64,
    https: Https,
}

/// Where a UDP authority resolved to.
struct Route {
    addr: Option<Result<SocketAddr, String>>,
    resolved_ms: u64,
    resolving: bool,
}

/// What the engine's own tasks report.
pub(super) enum Done {
    Attempt(Box<Attempted>),
    Resolved {
        authority: String,
        result: Result<SocketAddr, String>,
        blocked: bool,
    },
}

pub(super) struct Attempted {
    id: u64,
    endpoint: String,
    message: Message,
    result: Result<Response, AttemptError>,
    conn: Option<Conn>,
    latency_ms: u64,
}

/// UDP rows rolled up per (subscription, minute, outcome) until the minute ends.
#[derive(Default)]
struct UdpRollup {
    rows: HashMap<(u64, u64, Outcome), DeliveryRow>,
}

pub(super) struct Engine {
    options: PushOptions,
    table: Arc<PriceTable>,
    stats: Arc<SideStats>,
    client: Arc<Client>,
    subs: HashMap<u64, Live>,
    /// The subscriptions with a move trigger: the only ones each turn looks at prices for.
    movers: Vec<u64>,
    due: BinaryHeap<Reverse<(u64, u64)>>,
    retries: BinaryHeap<Reverse<(u64, u64)>>,
    endpoints: HashMap<String, Endpoint>,
    routes: HashMap<String, Route>,
    udp4: Option<UdpSocket>,
    udp6: Option<UdpSocket>,
    jobs: mpsc::Sender<Job>,
    done_tx: mpsc::UnboundedSender<Done>,
    log: Vec<DeliveryRow>,
    udp_log: UdpRollup,
    replays_seen: HashSet<u64>,
    started: Instant,
    random: u64,
    last_log_ms: u64,
    last_retention_ms: u64,
}

fn push(stats: &SideStats) -> &PushStats {
    &stats.push
}

fn udp_socket(bind: &str) -> Option<UdpSocket> {
    let socket = UdpSocket::bind(bind).ok()?;
    socket.set_nonblocking(true).ok()?;
    Some(socket)
}

impl Engine {
    pub(super) fn new(
        options: PushOptions,
        table: Arc<PriceTable>,
        stats: Arc<SideStats>,
        client: Client,
        jobs: mpsc::Sender<Job>,
        done_tx: mpsc::UnboundedSender<Done>,
    ) -> Engine {
        let seed = beast_core::clock::wall_ms() ^ u64::from(std::process::id()).rotate_left(32);
        Engine {
            options,
            table,
            stats,
            client: Arc::new(client),
            subs: HashMap::new(),
            movers: Vec::new(),
            due: BinaryHeap::new(),
            retries: BinaryHeap::new(),
            endpoints: HashMap::new(),
            routes: HashMap::new(),
            udp4: udp_socket("0.0.0.0:0"),
            udp6: udp_socket("[::]:0"),
            jobs,
            done_tx,
            log: Vec::new(),
            udp_log: UdpRollup::default(),
            replays_seen: HashSet::new(),
            started: Instant::now(),
            random: seed | 1,
            last_log_ms: 0,
            last_retention_ms: 0,
        }
    }

    fn mono_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: jitter only.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random
    }

    fn stats(&self) -> &PushStats {
        push(&self.stats)
    }

    /// Runs until `stop` fires; then hands the last log rows to the worker.
    pub(super) async fn run(
        mut self,
        mut loaded: mpsc::UnboundedReceiver<Loaded>,
        mut done: mpsc::UnboundedReceiver<Done>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => self.turn(),
                Some(event) = loaded.recv() => self.on_loaded(event),
                Some(event) = done.recv() => self.on_done(event),
            }
        }
        self.flush_log(true);
    }

    /// One turn: due intervals, moved prices, due retries, endpoint queues, housekeeping.
    fn turn(&mut self) {
        let now = self.mono_ms();
        while let Some(Reverse((due, id))) = self.due.peek().copied() {
            if due > now {
                break;
            }
            self.due.pop();
            let Some(live) = self.subs.get_mut(&id) else {
                continue;
            };
            if live.next_due_ms != Some(due) {
                continue;
            }
            let every = u64::from(live.sub.trigger.every_s.unwrap_or(1)) * 1_000;
            // Late by more than a period (the engine was busy or paused): start afresh rather
            // than deliver twice in a row.
            let next = if now >= due + every {
                now + every
            } else {
                due + every
            };
            live.next_due_ms = Some(next);
            self.due.push(Reverse((next, id)));
            let late_ms = now - due;
            self.fire(
                id,
                Cause::Interval,
                beast_core::clock::wall_ms().saturating_sub(late_ms),
            );
        }
        self.check_moves(now);
        while let Some(Reverse((due, id))) = self.retries.peek().copied() {
            if due > now {
                break;
            }
            self.retries.pop();
            if let Some(live) = self.subs.get_mut(&id)
                && let Some((at, message)) = live.https.retry.take()
            {
                if at == due {
                    live.https.queued = Some(message);
                    self.enqueue(id);
                } else {
                    live.https.retry = Some((at, message));
                }
            }
        }
        self.pump(now);
        if now.saturating_sub(self.last_log_ms) >= LOG_EVERY_MS {
            self.last_log_ms = now;
            self.flush_log(false);
            self.refresh_gauges();
            self.refresh_routes(now);
        }
        if self.last_retention_ms == 0
            || now.saturating_sub(self.last_retention_ms) >= RETENTION_EVERY_MS
        {
            self.last_retention_ms = now.max(1);
            let keep_ms = self.options.log_retention_days * 86_400_000;
            let before = beast_core::clock::wall_ms().saturating_sub(keep_ms);
            let _ = self.jobs.try_send(Job::Retention(before));
        }
    }

    fn check_moves(&mut self, now: u64) {
        let mut fired: Vec<(u64, u64)> = Vec::new();
        for id in &self.movers {
            let Some(live) = self.subs.get_mut(id) else {
                continue;
            };
            let Some(bps) = live.sub.trigger.move_bps else {
                continue;
            };
            if live.sub.state != SubState::Active
                || now < live.last_move_ms + live.sub.trigger.min_gap_ms
            {
                continue;
            }
            let mut changed_ms = None;
            for (index, symbol) in live.sub.assets.iter().enumerate() {
                let Some(asset) = asset_id(&self.table, &mut live.asset_ids, index, symbol) else {
                    continue;
                };
                let Some(price) = self.table.aggregate(asset) else {
                    continue;
                };
                let value = decimal_f64(price.price);
                match live.last_prices.get(index).copied().flatten() {
                    Some(last) if last > 0.0 => {
                        if ((value - last) / last).abs() * 10_000.0 >= f64::from(bps) {
                            changed_ms = Some(changed_ms.unwrap_or(0).max(price.received_ms));
                        }
                    }
                    // First sight of a price: the baseline, not a move.
                    _ => {
                        if let Some(slot) = live.last_prices.get_mut(index) {
                            *slot = Some(value);
                        }
                    }
                }
            }
            if let Some(changed_ms) = changed_ms {
                live.last_move_ms = now;
                fired.push((*id, changed_ms));
            }
        }
        for (id, changed_ms) in fired {
            self.fire(id, Cause::Move, changed_ms);
        }
    }

    /// One delivery of subscription `id`, now.
    fn fire(&mut self, id: u64, cause: Cause, since_wall_ms: u64) {
        let now_wall = beast_core::clock::wall_ms();
        let fresh = Freshness {
            now_ms: now_wall,
            stale_after_ms: self.options.stale_after_ms,
            simulated: self.table.simulated(),
        };
        let Some(live) = self.subs.get_mut(&id) else {
            return;
        };
        if live.sub.state != SubState::Active {
            return;
        }
        if live.next_seq >= live.reserved {
            self.stats().unsequenced.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let seq = live.next_seq;
        live.next_seq += 1;
        // What was delivered is the baseline for the next move.
        for (index, symbol) in live.sub.assets.iter().enumerate() {
            if let Some(asset) = asset_id(&self.table, &mut live.asset_ids, index, symbol)
                && let Some(price) = self.table.aggregate(asset)
                && let Some(slot) = live.last_prices.get_mut(index)
            {
                *slot = Some(decimal_f64(price.price));
            }
        }
        let event = Event {
            subscription: id,
            seq,
            cause,
            now_ms: now_wall,
        };
        match live.sub.target.protocol {
            Protocol::Udp => {
                let parts = match live.sub.format {
                    Format::Json => payload::json(
                        &event,
                        &live.sub.assets,
                        &self.table,
                        fresh,
                        Some(payload::UDP_MAX),
                    ),
                    Format::V8 => payload::v8(&event, &live.sub.assets, &self.table, fresh),
                };
                let route = self.routes.get(&live.endpoint).and_then(|r| r.addr.clone());
                self.send_udp(id, route, seq, cause, since_wall_ms, &parts);
            }
            Protocol::Https => {
                let body = payload::json(&event, &live.sub.assets, &self.table, fresh, None)
                    .pop()
                    .unwrap_or_default();
                // 150 assets of ~120 bytes: far below the cap by construction.
                debug_assert!(body.len() <= payload::BODY_MAX);
                let message = Message {
                    seq,
                    body: Arc::new(body),
                    cause,
                    since_wall_ms,
                    attempt: 1,
                    replay: false,
                };
                // A newer price replaces an undelivered older one (no retrying stale prices).
                let replaced = live
                    .https
                    .queued
                    .replace(message)
                    .map(|old| (old, false))
                    .or_else(|| live.https.retry.take().map(|(_, old)| (old, true)));
                if let Some((old, attempted)) = replaced {
                    self.stats().count(Protocol::Https, Outcome::Superseded);
                    if attempted {
                        self.log_https(
                            id,
                            &old,
                            Outcome::Superseded,
                            None,
                            "a newer price replaced it",
                            0,
                            false,
                        );
                    }
                }
                self.enqueue(id);
            }
        }
        self.reserve_ahead(id);
    }

    /// Asks the store for the next block of sequence numbers when this one runs low.
    fn reserve_ahead(&mut self, id: u64) {
        let Some(live) = self.subs.get_mut(&id) else {
            return;
        };
        if !live.reserving && live.next_seq + SEQ_BLOCK / 6 >= live.reserved {
            let floor = live.reserved.max(live.next_seq) + SEQ_BLOCK;
            if self.jobs.try_send(Job::Reserve(vec![(id, floor)])).is_ok() {
                live.reserving = true;
            }
        }
    }

    fn send_udp(
        &mut self,
        id: u64,
        route: Option<Result<SocketAddr, String>>,
        seq: u64,
        cause: Cause,
        since_wall_ms: u64,
        parts: &[Vec<u8>],
    ) {
        let (outcome, error) = match route {
            Some(Ok(addr)) => {
                let socket = if addr.is_ipv4() {
                    &self.udp4
                } else {
                    &self.udp6
                };
                let mut result = (Outcome::Sent, String::new());
                for part in parts {
                    match socket.as_ref().map(|s| s.send_to(part, addr)) {
                        Some(Ok(_)) => {
                            self.stats().udp_datagrams.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(Err(e)) => {
                            result = (Outcome::Dropped, e.kind().to_string());
                            break;
                        }
                        None => {
                            result = (Outcome::Dropped, "no socket for the address family".into());
                            break;
                        }
                    }
                }
                result
            }
            Some(Err(e)) if e.contains("SSRF") => (Outcome::Blocked, e),
            Some(Err(e)) => (Outcome::Dropped, e),
            None => (Outcome::Dropped, "not resolved yet".into()),
        };
        let now_wall = beast_core::clock::wall_ms();
        let latency = now_wall.saturating_sub(since_wall_ms);
        let stats = push(&self.stats);
        stats.count(Protocol::Udp, outcome);
        if outcome == Outcome::Sent {
            stats.latency(Protocol::Udp, cause, latency);
        }
        let minute = now_wall / 60_000 * 60_000;
        let row = self
            .udp_log
            .rows
            .entry((id, minute, outcome))
            .or_insert_with(|| DeliveryRow {
                subscription_id: id,
                protocol: "udp".into(),
                seq,
                seq_last: seq,
                count: 0,
                attempt: 1,
                ts_ms: now_wall,
                outcome: outcome.as_str().into(),
                status: None,
                error: String::new(),
                latency_ms: 0,
                payload: None,
            });
        row.seq_last = seq;
        row.count += 1;
        row.latency_ms = row.latency_ms.max(latency);
        if !error.is_empty() {
            row.error = error;
        }
    }

    fn enqueue(&mut self, id: u64) {
        let Some(live) = self.subs.get_mut(&id) else {
            return;
        };
        if live.https.in_endpoint_queue || live.https.in_flight {
            return;
        }
        live.https.in_endpoint_queue = true;
        self.endpoints
            .entry(live.endpoint.clone())
            .or_insert_with(Endpoint::new)
            .queue
            .push_back(id);
    }

    /// Starts every attempt the endpoints have room for.
    fn pump(&mut self, now: u64) {
        let cap = self.options.endpoint_in_flight;
        let mut starts: Vec<(String, u64, Message, Option<Conn>)> = Vec::new();
        for (key, endpoint) in &mut self.endpoints {
            let mut room = endpoint.room(now, cap);
            while room > 0 {
                let Some(id) = endpoint.queue.pop_front() else {
                    break;
                };
                let Some(live) = self.subs.get_mut(&id) else {
                    continue;
                };
                live.https.in_endpoint_queue = false;
                if live.https.in_flight || live.sub.state != SubState::Active {
                    continue;
                }
                let Some(message) = live
                    .https
                    .queued
                    .take()
                    .or_else(|| live.https.replays.pop_front())
                else {
                    continue;
                };
                live.https.in_flight = true;
                endpoint.started();
                room -= 1;
                starts.push((key.clone(), id, message, endpoint.idle.pop()));
            }
        }
        for (endpoint, id, message, conn) in starts {
            self.start_attempt(endpoint, id, message, conn);
        }
    }

    fn start_attempt(&mut self, endpoint: String, id: u64, message: Message, conn: Option<Conn>) {
        let Some(live) = self.subs.get(&id) else {
            return;
        };
        let now_wall = beast_core::clock::wall_ms();
        let timestamp = (now_wall / 1_000).to_string();
        let msg_id = format!("msg_{id}_{}", message.seq);
        let signature = sign::signature(
            live.sub.signing_secrets(now_wall),
            &msg_id,
            now_wall / 1_000,
            &message.body,
        );
        let target = live.sub.target.clone();
        let client = Arc::clone(&self.client);
        let done = self.done_tx.clone();
        if message.attempt > 1 {
            self.stats().retries.fetch_add(1, Ordering::Relaxed);
        }
        tokio::spawn(async move {
            let started = Instant::now();
            let headers = [
                ("webhook-id", msg_id.as_str()),
                ("webhook-timestamp", timestamp.as_str()),
                ("webhook-signature", signature.as_str()),
            ];
            let (result, conn) = client.post(conn, &target, &headers, &message.body).await;
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let _ = done.send(Done::Attempt(Box::new(Attempted {
                id,
                endpoint,
                message,
                result,
                conn,
                latency_ms,
            })));
        });
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Attempt(attempted) => self.on_attempt(*attempted),
            Done::Resolved {
                authority,
                result,
                blocked,
            } => {
                if blocked {
                    self.stats().ssrf_blocked.fetch_add(1, Ordering::Relaxed);
                }
                if let Err(e) = &result {
                    tracing::warn!(target = %authority, error = %e, "push: UDP target not usable");
                }
                let now = self.mono_ms();
                let route = self.routes.entry(authority).or_insert(Route {
                    addr: None,
                    resolved_ms: 0,
                    resolving: false,
                });
                route.addr = Some(result);
                route.resolved_ms = now;
                route.resolving = false;
            }
        }
    }

    fn on_attempt(&mut self, attempted: Attempted) {
        let Attempted {
            id,
            endpoint,
            message,
            result,
            conn,
            latency_ms,
        } = attempted;
        let endpoint_key = endpoint.as_str();
        let now = self.mono_ms();
        let policy = BreakerPolicy {
            failures: self.options.breaker_failures,
            cooldown_ms: self.options.breaker_cooldown_ms,
        };
        let endpoint = self
            .endpoints
            .entry(endpoint_key.to_string())
            .or_insert_with(Endpoint::new);
        let cap = self.options.endpoint_in_flight;
        let outcome = match &result {
            Ok(r) if (200..300).contains(&r.status) => Outcome::Delivered,
            Ok(r) if r.status == 410 => Outcome::Gone,
            Err(AttemptError::Blocked { .. }) => Outcome::Blocked,
            _ if message.replay || message.attempt > self.options.retries => Outcome::GaveUp,
            _ => Outcome::Failed,
        };
        match (&result, outcome) {
            (Ok(_), Outcome::Delivered | Outcome::Gone) => endpoint.succeeded(),
            _ => endpoint.failed(now, &policy),
        }
        if let Some(conn) = conn
            && endpoint.idle.len() < cap
        {
            endpoint.idle.push(conn);
        }
        let failing_for = endpoint.failing_for(now);
        let (status, error) = match &result {
            Ok(r) => (Some(r.status), String::new()),
            Err(e) => {
                if let AttemptError::Blocked { .. } = e {
                    self.stats().ssrf_blocked.fetch_add(1, Ordering::Relaxed);
                }
                (None, format!("{}: {e}", e.code()))
            }
        };
        self.stats().count(Protocol::Https, outcome);
        if outcome == Outcome::Delivered {
            let delay = beast_core::clock::wall_ms().saturating_sub(message.since_wall_ms);
            self.stats().latency(Protocol::Https, message.cause, delay);
        }
        let keep_payload = outcome == Outcome::GaveUp;
        let error_text = if error.is_empty() {
            status.map(|s| format!("HTTP {s}")).unwrap_or_default()
        } else {
            error.clone()
        };
        self.log_https(
            id,
            &message,
            outcome,
            status,
            if outcome == Outcome::Delivered {
                ""
            } else {
                &error_text
            },
            latency_ms,
            keep_payload,
        );
        let Some(live) = self.subs.get_mut(&id) else {
            return;
        };
        live.https.in_flight = false;
        match outcome {
            Outcome::Gone => {
                self.disable(id, "the endpoint answered 410 Gone".into());
                return;
            }
            Outcome::Failed => {
                // Retry unless a newer price is already waiting (it supersedes this one).
                if live.https.queued.is_none() {
                    let retry_after = result.as_ref().ok().and_then(|r| r.retry_after_s);
                    let random = self.next_random();
                    let delay = backoff_ms(
                        message.attempt + 1,
                        self.options.retry_base_ms,
                        retry_after,
                        self.options.retry_after_max_ms,
                        random,
                    );
                    let at = now + delay;
                    if let Some(live) = self.subs.get_mut(&id) {
                        live.https.retry = Some((
                            at,
                            Message {
                                attempt: message.attempt + 1,
                                ..message
                            },
                        ));
                    }
                    self.retries.push(Reverse((at, id)));
                } else {
                    self.stats().count(Protocol::Https, Outcome::Superseded);
                }
            }
            _ => {}
        }
        let disable_after = self.options.disable_after_ms;
        if disable_after > 0 && failing_for >= disable_after {
            let ids: Vec<u64> = self
                .subs
                .iter()
                .filter(|(_, l)| l.endpoint == endpoint_key && l.sub.state == SubState::Active)
                .map(|(id, _)| *id)
                .collect();
            let reason = format!(
                "the endpoint has failed for {} s (last: {error_text})",
                failing_for / 1_000
            );
            for id in ids {
                self.disable(id, reason.clone());
            }
            return;
        }
        if self
            .subs
            .get(&id)
            .is_some_and(|l| l.https.queued.is_some() || !l.https.replays.is_empty())
        {
            self.enqueue(id);
        }
    }

    /// Stops a subscription's deliveries and records why, in the store too.
    fn disable(&mut self, id: u64, reason: String) {
        let Some(live) = self.subs.get_mut(&id) else {
            return;
        };
        tracing::warn!(subscription = id, reason = %reason, "push: subscription disabled");
        let now_ms = beast_core::clock::wall_ms();
        live.sub.state = SubState::Disabled(reason.clone());
        live.sub.updated_ms = now_ms;
        live.https = Https::default();
        live.next_due_ms = None;
        if self
            .jobs
            .try_send(Job::Disable { id, reason, now_ms })
            .is_err()
        {
            tracing::error!(
                subscription = id,
                "push: cannot record the disabling (store worker full)"
            );
        }
    }

    #[allow(clippy::too_many_arguments, reason = "one log row's fields")]
    fn log_https(
        &mut self,
        id: u64,
        message: &Message,
        outcome: Outcome,
        status: Option<u16>,
        error: &str,
        latency_ms: u64,
        keep_payload: bool,
    ) {
        self.log.push(DeliveryRow {
            subscription_id: id,
            protocol: "https".into(),
            seq: message.seq,
            seq_last: message.seq,
            count: 1,
            attempt: message.attempt,
            ts_ms: beast_core::clock::wall_ms(),
            outcome: outcome.as_str().into(),
            status,
            error: error.to_string(),
            latency_ms,
            payload: keep_payload.then(|| String::from_utf8_lossy(&message.body).into_owned()),
        });
    }

    /// Hands log rows to the store worker: HTTPS rows every second, UDP roll-ups once their
    /// minute has ended (or all of them at `last`).
    fn flush_log(&mut self, last: bool) {
        let minute = beast_core::clock::wall_ms() / 60_000 * 60_000;
        let closed: Vec<(u64, u64, Outcome)> = self
            .udp_log
            .rows
            .keys()
            .filter(|(_, m, _)| last || *m < minute)
            .copied()
            .collect();
        for key in closed {
            if let Some(row) = self.udp_log.rows.remove(&key) {
                self.log.push(row);
            }
        }
        if self.log.is_empty() {
            return;
        }
        let rows = std::mem::take(&mut self.log);
        match self.jobs.try_send(Job::Log(rows)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(Job::Log(rows)))
            | Err(mpsc::error::TrySendError::Closed(Job::Log(rows))) => {
                // The worker is behind: keep them, within the same cap it applies.
                self.log = rows;
                let over = self.log.len().saturating_sub(super::store::LOG_BUFFER_MAX);
                if over > 0 {
                    self.log.drain(..over);
                    self.stats()
                        .log_dropped
                        .fetch_add(over as u64, Ordering::Relaxed);
                }
            }
            Err(_) => {}
        }
    }

    fn refresh_gauges(&self) {
        let stats = self.stats();
        let (mut active, mut paused, mut disabled, mut queued, mut in_flight) = (0, 0, 0, 0, 0);
        for live in self.subs.values() {
            match live.sub.state {
                SubState::Active => active += 1,
                SubState::Paused => paused += 1,
                SubState::Disabled(_) => disabled += 1,
            }
            queued += u64::from(live.https.queued.is_some() || live.https.retry.is_some());
            in_flight += u64::from(live.https.in_flight);
        }
        let (mut open, mut half) = (0, 0);
        for endpoint in self.endpoints.values() {
            match endpoint.breaker {
                super::endpoint::Breaker::Open { .. } => open += 1,
                super::endpoint::Breaker::HalfOpen { .. } => half += 1,
                super::endpoint::Breaker::Closed { .. } => {}
            }
        }
        for (gauge, v) in [
            (&stats.active, active),
            (&stats.paused, paused),
            (&stats.disabled, disabled),
            (&stats.queued, queued),
            (&stats.in_flight, in_flight),
            (&stats.breakers_open, open),
            (&stats.breakers_half_open, half),
            (&stats.endpoints, self.endpoints.len() as u64),
        ] {
            gauge.store(v, Ordering::Relaxed);
        }
        stats
            .log_pending
            .fetch_max(self.log.len() as u64, Ordering::Relaxed);
    }

    /// Resolves UDP targets not resolved yet, or not for a minute (a name's addresses change;
    /// the SSRF guard judges each new answer).
    fn refresh_routes(&mut self, now: u64) {
        let wanted: HashSet<&str> = self
            .subs
            .values()
            .filter(|l| l.sub.target.protocol == Protocol::Udp)
            .map(|l| l.endpoint.as_str())
            .collect();
        self.routes
            .retain(|authority, _| wanted.contains(authority.as_str()));
        for live in self.subs.values() {
            if live.sub.target.protocol != Protocol::Udp {
                continue;
            }
            let route = match self.routes.get_mut(&live.endpoint) {
                Some(route) => route,
                None => self.routes.entry(live.endpoint.clone()).or_insert(Route {
                    addr: None,
                    resolved_ms: 0,
                    resolving: false,
                }),
            };
            let stale =
                route.addr.is_none() || now.saturating_sub(route.resolved_ms) >= RESOLVE_EVERY_MS;
            if route.resolving || !stale {
                continue;
            }
            route.resolving = true;
            let guard = self.client.guard().clone();
            let target = live.sub.target.clone();
            let authority = live.endpoint.clone();
            let done = self.done_tx.clone();
            tokio::spawn(async move {
                let (result, blocked) = match resolve(&guard, &target).await {
                    Ok(addrs) => (
                        addrs
                            .first()
                            .copied()
                            .ok_or_else(|| "no address".to_string()),
                        false,
                    ),
                    Err(e @ AttemptError::Blocked { .. }) => {
                        (Err(format!("SSRF guard: {e}")), true)
                    }
                    Err(e) => (Err(e.to_string()), false),
                };
                let _ = done.send(Done::Resolved {
                    authority,
                    result,
                    blocked,
                });
            });
        }
    }

    fn on_loaded(&mut self, loaded: Loaded) {
        match loaded {
            Loaded::Subscriptions {
                subscriptions,
                replays,
            } => {
                self.reconcile(subscriptions);
                self.start_replays(replays);
                self.refresh_gauges();
                let now = self.mono_ms();
                self.refresh_routes(now);
            }
            Loaded::Reserved(floors) => {
                for (id, floor) in floors {
                    if let Some(live) = self.subs.get_mut(&id) {
                        live.reserved = live.reserved.max(floor);
                        live.reserving = false;
                    }
                }
            }
            Loaded::Replay(replay, rows) => self.replay(replay, rows),
        }
    }

    /// Takes the store's subscriptions: new ones start, changed ones keep their sequence and
    /// schedule, deleted ones stop.
    fn reconcile(&mut self, subscriptions: Vec<Subscription>) {
        let now = self.mono_ms();
        let present: HashSet<u64> = subscriptions.iter().map(|s| s.id).collect();
        self.subs.retain(|id, _| present.contains(id));
        let mut reserve = Vec::new();
        for sub in subscriptions {
            let id = sub.id;
            let endpoint = sub.target.authority();
            match self.subs.get_mut(&id) {
                Some(live) => {
                    let was_active = live.sub.state == SubState::Active;
                    if live.sub.assets != sub.assets {
                        live.asset_ids = vec![None; sub.assets.len()];
                        live.last_prices = vec![None; sub.assets.len()];
                    }
                    let trigger_changed = live.sub.trigger != sub.trigger;
                    live.endpoint = endpoint;
                    live.sub = sub;
                    if live.sub.state != SubState::Active {
                        live.next_due_ms = None;
                        live.https.queued = None;
                        live.https.retry = None;
                    } else if !was_active || trigger_changed {
                        live.next_due_ms = first_due(now, &live.sub);
                        if let Some(due) = live.next_due_ms {
                            self.due.push(Reverse((due, id)));
                        }
                    }
                }
                None => {
                    let floor = sub.seq_floor;
                    reserve.push((id, floor + SEQ_BLOCK));
                    let next_due_ms = if sub.state == SubState::Active {
                        first_due(now, &sub)
                    } else {
                        None
                    };
                    if let Some(due) = next_due_ms {
                        self.due.push(Reverse((due, id)));
                    }
                    let assets = sub.assets.len();
                    self.subs.insert(
                        id,
                        Live {
                            sub,
                            endpoint,
                            next_seq: floor,
                            reserved: floor,
                            reserving: true,
                            next_due_ms,
                            asset_ids: vec![None; assets],
                            last_prices: vec![None; assets],
                            last_move_ms: 0,
                            https: Https::default(),
                        },
                    );
                }
            }
        }
        self.movers = self
            .subs
            .iter()
            .filter(|(_, l)| l.sub.trigger.move_bps.is_some())
            .map(|(id, _)| *id)
            .collect();
        let mut users: HashMap<String, usize> = HashMap::new();
        for live in self.subs.values() {
            if live.sub.target.protocol == Protocol::Https {
                *users.entry(live.endpoint.clone()).or_default() += 1;
            }
        }
        self.endpoints.retain(|key, _| users.contains_key(key));
        for (key, n) in users {
            self.endpoints
                .entry(key)
                .or_insert_with(Endpoint::new)
                .users = n;
        }
        for chunk in reserve.chunks(1_000) {
            if self.jobs.try_send(Job::Reserve(chunk.to_vec())).is_err() {
                // Asked again on the next delivery attempt of each.
                for (id, _) in chunk {
                    if let Some(live) = self.subs.get_mut(id) {
                        live.reserving = false;
                    }
                }
            }
        }
    }

    fn start_replays(&mut self, replays: Vec<Replay>) {
        for replay in replays {
            if self.replays_seen.insert(replay.id) {
                let _ = self.jobs.try_send(Job::FetchReplay(replay));
            }
        }
    }

    fn replay(&mut self, replay: Replay, rows: Vec<DeliveryRow>) {
        let Some(live) = self.subs.get_mut(&replay.subscription_id) else {
            return;
        };
        let mut queued = 0;
        for row in rows {
            let Some(body) = row.payload else {
                continue;
            };
            live.https.replays.push_back(Message {
                seq: row.seq,
                body: Arc::new(body.into_bytes()),
                cause: Cause::Interval,
                since_wall_ms: beast_core::clock::wall_ms(),
                attempt: row.attempt + 1,
                replay: true,
            });
            queued += 1;
        }
        self.stats().replays.fetch_add(queued, Ordering::Relaxed);
        tracing::info!(
            subscription = replay.subscription_id,
            deliveries = queued,
            "push: replaying"
        );
        self.enqueue(replay.subscription_id);
    }
}

/// The first interval delivery: within a second, spread by id so subscriptions loaded
/// together (10 000 at a start) do not all fire in the same millisecond.
fn first_due(now: u64, sub: &Subscription) -> Option<u64> {
    let every = u64::from(sub.trigger.every_s?) * 1_000;
    Some(now + sub.id.wrapping_mul(0x9e37_79b9_7f4a_7c15) % every.min(1_000))
}

fn asset_id(
    table: &PriceTable,
    ids: &mut [Option<AssetId>],
    index: usize,
    symbol: &beast_core::Symbol,
) -> Option<AssetId> {
    let slot = ids.get_mut(index)?;
    if slot.is_none() {
        *slot = table.registry().find(symbol);
    }
    *slot
}

#[allow(
    clippy::cast_precision_loss,
    reason = "a relative move in basis points"
)]
fn decimal_f64(price: beast_core::Decimal) -> f64 {
    price.mantissa() as f64 / 10f64.powi(i32::from(price.scale()))
}
