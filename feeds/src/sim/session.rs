//! One simulated WebSocket connection: answer subscriptions and pings in the venue's protocol,
//! then stream price frames at the configured rate, with the venue's heartbeats, and obey the
//! fault switches.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use beast_core::{Symbol, Venue};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use super::http::Transport;
use super::{Shared, sent, wire};

/// How long a read waits before the session looks at its timers.
const TICK: Duration = Duration::from_millis(5);

pub fn run<S: Transport>(stream: S, venue: Venue, shared: &Arc<Shared>) -> io::Result<()> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20));
    let mut ws = tungstenite::accept_with_config(stream, Some(config))
        .map_err(|e| io::Error::other(e.to_string()))?;
    ws.get_ref().tcp().set_read_timeout(Some(TICK))?;
    let control = shared.control(venue);
    control.connections.fetch_add(1, Ordering::AcqRel);
    control.connections_total.fetch_add(1, Ordering::AcqRel);
    let result = Session::new(venue, shared).run(&mut ws);
    control.connections.fetch_sub(1, Ordering::AcqRel);
    if !matches!(result, Ok(End::Dropped)) {
        let _ = ws.close(None);
        let _ = ws.flush();
        ws.get_mut().close_notify();
    }
    result.map(|_| ())
}

enum End {
    /// Closed abruptly by a `drop` fault.
    Dropped,
    Closed,
}

struct Session<'a> {
    venue: Venue,
    shared: &'a Shared,
    subscribed: Vec<Symbol>,
    /// Crypto.com: channels whose first frame must carry the subscribe request's id.
    first_frame_ids: Vec<(Symbol, String)>,
    heartbeats: bool,
    sequence: u64,
    next: usize,
    unanswered_heartbeats: u32,
}

impl<'a> Session<'a> {
    fn new(venue: Venue, shared: &'a Shared) -> Session<'a> {
        Session {
            venue,
            shared,
            subscribed: Vec::new(),
            first_frame_ids: Vec::new(),
            heartbeats: false,
            sequence: 0,
            next: 0,
            unanswered_heartbeats: 0,
        }
    }

    fn send<S: Transport>(&mut self, ws: &mut WebSocket<S>, frame: String) -> io::Result<()> {
        self.sequence += 1;
        self.shared
            .control(self.venue)
            .frames_sent
            .fetch_add(1, Ordering::AcqRel);
        ws.send(Message::text(frame))
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn run<S: Transport>(&mut self, ws: &mut WebSocket<S>) -> io::Result<End> {
        let control = self.shared.control(self.venue);
        let generation = control.drop_generation.load(Ordering::Acquire);
        for frame in wire::greeting(self.venue) {
            self.send(ws, frame)?;
        }
        let heartbeat_every = match self.venue {
            Venue::Cryptocom => self.shared.config.heartbeat_every,
            Venue::Gemini => Duration::from_secs(20),
            _ => Duration::from_secs(1),
        };
        let mut next_heartbeat = Instant::now() + heartbeat_every;
        let mut next_tick = Instant::now();
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                return Ok(End::Closed);
            }
            if control.drop_generation.load(Ordering::Acquire) != generation {
                return Ok(End::Dropped);
            }
            let stalled = control.stalled.load(Ordering::Acquire);
            match ws.read() {
                Ok(Message::Text(text)) if !stalled => self.on_message(ws, text.as_str())?,
                Ok(Message::Close(_)) => return Ok(End::Closed),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return Ok(End::Closed);
                }
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
            if stalled {
                continue;
            }
            let now = Instant::now();
            if take_one(&control.garbage) {
                let frame = wire::garbage(self.venue, self.sequence);
                self.send(ws, frame)?;
            }
            if take_one(&control.errors) {
                self.send(ws, wire::error_frame(self.venue))?;
            }
            if now >= next_heartbeat {
                next_heartbeat = now + heartbeat_every;
                if self.venue == Venue::Gemini {
                    ws.send(Message::Ping(Vec::new().into()))
                        .map_err(|e| io::Error::other(e.to_string()))?;
                } else if let Some(frame) =
                    wire::heartbeat(self.venue, super::now_ms(), self.sequence, self.heartbeats)
                {
                    if self.venue == Venue::Cryptocom {
                        // The real exchange closes the socket after three unanswered heartbeats.
                        self.unanswered_heartbeats += 1;
                        if self.unanswered_heartbeats > 3 {
                            return Ok(End::Closed);
                        }
                    }
                    self.send(ws, frame)?;
                }
            }
            if now >= next_tick && !self.subscribed.is_empty() {
                let rate = self.shared.config.rate.max(0.1)
                    / if control.slow.load(Ordering::Acquire) {
                        10.0
                    } else {
                        1.0
                    };
                next_tick = now + Duration::from_secs_f64(1.0 / rate);
                let asset = self
                    .subscribed
                    .get(self.next % self.subscribed.len())
                    .copied();
                self.next = self.next.wrapping_add(1);
                if let Some(asset) = asset {
                    self.send_ticker(ws, &asset, true)?;
                }
            }
        }
    }

    fn send_ticker<S: Transport>(
        &mut self,
        ws: &mut WebSocket<S>,
        asset: &Symbol,
        moved: bool,
    ) -> io::Result<()> {
        let price = if moved {
            self.shared.market.tick(self.venue, asset)
        } else {
            self.shared.market.current(self.venue, asset)
        };
        let id = self
            .first_frame_ids
            .iter()
            .position(|(a, _)| a == asset)
            .map(|i| self.first_frame_ids.swap_remove(i).1);
        let at_ms = super::now_ms();
        let frame = wire::ticker(
            self.venue,
            asset,
            &price,
            at_ms,
            self.sequence,
            id.as_deref(),
        );
        self.send(ws, frame)?;
        self.shared
            .sent
            .record(self.venue, sent::Channel::Stream, *asset, &price, at_ms);
        Ok(())
    }

    fn on_message<S: Transport>(&mut self, ws: &mut WebSocket<S>, text: &str) -> io::Result<()> {
        match wire::incoming(self.venue, text) {
            wire::Incoming::Subscribe { id, assets } => {
                let new: Vec<Symbol> = assets
                    .into_iter()
                    .filter(|a| !self.subscribed.contains(a))
                    .collect();
                self.subscribed.extend(new.iter().copied());
                if self.venue == Venue::Cryptocom {
                    self.first_frame_ids
                        .extend(new.iter().map(|a| (*a, id.clone())));
                }
                let subscribed = self.subscribed.clone();
                for ack in wire::acks(self.venue, &id, &subscribed, self.heartbeats, self.sequence)
                {
                    self.send(ws, ack)?;
                }
                if wire::sends_snapshot(self.venue) {
                    for asset in &new {
                        self.send_ticker(ws, asset, false)?;
                    }
                }
            }
            wire::Incoming::SubscribeHeartbeats => {
                self.heartbeats = true;
                let subscribed = self.subscribed.clone();
                for ack in wire::acks(self.venue, "1", &subscribed, true, self.sequence) {
                    self.send(ws, ack)?;
                }
            }
            wire::Incoming::Ping(reply) => self.send(ws, reply)?,
            wire::Incoming::HeartbeatAnswer => self.unanswered_heartbeats = 0,
            wire::Incoming::Other => {}
        }
        Ok(())
    }
}

fn take_one(counter: &std::sync::atomic::AtomicU64) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
}
