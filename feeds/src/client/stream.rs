//! One venue's WebSocket stream: connect, subscribe (confirmed or retried), read and parse
//! frames, answer the venue's heartbeats, ping when quiet, and reconnect with backoff when the
//! connection fails or goes silent (the no-data watchdog).

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use beast_core::Channel;
use rustls::ClientConfig;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Connector, Message, WebSocket};

use super::backoff::Backoff;
use super::status::{FeedState, FeedStatus};
use super::{FeedEvent, FeedOptions, wall_ms};
use crate::exchange::{Exchange, Frame, Skip};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// How often a blocked read returns to check timers and the stop flag.
const READ_TICK: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Stream {
    pub exchange: Arc<dyn Exchange>,
    pub assets: Vec<beast_core::Symbol>,
    pub url: String,
    pub tls: Arc<ClientConfig>,
    pub options: FeedOptions,
    pub status: Arc<FeedStatus>,
    pub producer: rtrb::Producer<FeedEvent>,
    pub notify: Thread,
    pub stop: Arc<AtomicBool>,
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    Stopped,
    Closed,
    /// Nothing at all arrived for the silence limit: the watchdog gave up on it.
    Silent,
    NotConfirmed,
    Failed(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Stopped => f.write_str("stopped"),
            End::Closed => f.write_str("closed by the server"),
            End::Silent => f.write_str("no data within the silence limit"),
            End::NotConfirmed => f.write_str("subscription never confirmed"),
            End::Failed(why) => f.write_str(why),
        }
    }
}

impl Stream {
    pub fn run(mut self) {
        let venue = self.exchange.venue();
        let mut backoff = Backoff::new(
            self.options.backoff_base,
            self.options.backoff_cap,
            wall_ms() ^ venue as u64,
        );
        while !self.stopped() {
            self.status.set_state(FeedState::Connecting);
            match self.connect() {
                Err(e) => {
                    FeedStatus::add(&self.status.failing_connects, 1);
                    if let Some(more) = self.status.connect_log.admit(wall_ms()) {
                        tracing::warn!(venue = venue.name(), url = %self.url, error = %e, failed_since_last_line = more, "feed connect failed (logged once a minute while it fails)");
                    }
                }
                Ok(mut socket) => {
                    self.status
                        .failing_connects
                        .store(0, std::sync::atomic::Ordering::Relaxed);
                    self.status.connect_log.reset();
                    let previous = FeedStatus::get(&self.status.connects);
                    FeedStatus::add(&self.status.connects, 1);
                    if previous > 0 {
                        FeedStatus::add(&self.status.reconnects, 1);
                    }
                    tracing::info!(venue = venue.name(), url = %self.url, "feed connected");
                    let started = Instant::now();
                    let end = self.session(&mut socket);
                    let _ = socket.close(None);
                    let _ = socket.flush();
                    if started.elapsed() >= self.options.stable_after {
                        backoff.reset();
                    }
                    match end {
                        End::Stopped => break,
                        end => {
                            tracing::warn!(venue = venue.name(), reason = %end, "feed disconnected")
                        }
                    }
                }
            }
            if self.stopped() {
                break;
            }
            self.status.set_state(FeedState::Backoff);
            self.wait(backoff.next_delay());
        }
        self.status.set_state(FeedState::Stopped);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps up to `delay`, waking early when stopped.
    fn wait(&self, delay: Duration) {
        let until = Instant::now() + delay;
        while !self.stopped() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::park_timeout(left);
        }
    }

    fn connect(&self) -> Result<Socket, String> {
        let (host, port) = host_port(&self.url)
            .ok_or_else(|| format!("not a ws:// or wss:// URL: {}", self.url))?;
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("host has no address")?;
        let tcp = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(self.options.max_message))
            .max_frame_size(Some(self.options.max_message))
            .read_buffer_size(64 * 1024);
        let connector = Connector::Rustls(Arc::clone(&self.tls));
        let (socket, _) = tungstenite::client_tls_with_config(
            self.url.as_str(),
            tcp,
            Some(config),
            Some(connector),
        )
        .map_err(|e| e.to_string())?;
        tcp_of(&socket)
            .ok_or("unexpected stream type")?
            .set_read_timeout(Some(READ_TICK))
            .map_err(|e| e.to_string())?;
        Ok(socket)
    }

    fn send(&self, socket: &mut Socket, frame: String) -> Result<(), End> {
        socket
            .send(Message::text(frame))
            .map_err(|e| End::Failed(format!("send: {e}")))
    }

    fn session(&mut self, socket: &mut Socket) -> End {
        let exchange = Arc::clone(&self.exchange);
        let venue = exchange.venue();
        let keepalive = exchange.keepalive();
        for frame in exchange.subscribe(&self.assets) {
            if let Err(end) = self.send(socket, frame) {
                return end;
            }
        }
        self.status.set_state(FeedState::Subscribing);
        let mut confirmed = false;
        let mut resubscribed = false;
        let mut subscribed_at = Instant::now();
        let (mut last_rx, mut last_tx, mut last_price) =
            (Instant::now(), Instant::now(), None::<Instant>);
        let (mut window_start, mut window_messages) = (Instant::now(), 0u64);
        let mut ping_sequence = 0u64;
        let mut logged_errors = 0u64;
        loop {
            if self.stopped() {
                return End::Stopped;
            }
            match socket.read() {
                Ok(Message::Text(text)) => {
                    last_rx = Instant::now();
                    window_messages += 1;
                    let received_ms = wall_ms();
                    FeedStatus::add(&self.status.messages, 1);
                    self.status
                        .last_message_ms
                        .store(received_ms, Ordering::Relaxed);
                    let (producer, status) = (&mut self.producer, &self.status);
                    let result = exchange.parse(text.as_str(), received_ms, &mut |update| {
                        let event = FeedEvent {
                            venue,
                            channel: Channel::Stream,
                            asset: update.asset,
                            price: update.price,
                            exchange_ms: update.exchange_ms,
                            received_ms,
                        };
                        match producer.push(event) {
                            Ok(()) => FeedStatus::add(&status.prices, 1),
                            Err(_) => FeedStatus::add(&status.ring_drops, 1),
                        }
                    });
                    match result {
                        Ok(Frame::Prices(_)) => {
                            confirmed = true;
                            last_price = Some(Instant::now());
                            self.status
                                .last_price_ms
                                .store(received_ms, Ordering::Relaxed);
                            self.status.set_state(FeedState::Streaming);
                            self.notify.unpark();
                        }
                        Ok(Frame::Skip(Skip::Ack)) => confirmed = true,
                        Ok(Frame::Skip(Skip::HeartbeatRequest(id))) => {
                            if let Some(reply) = exchange.heartbeat_reply(id) {
                                if let Err(end) = self.send(socket, reply) {
                                    return end;
                                }
                                last_tx = Instant::now();
                            }
                        }
                        Ok(Frame::Skip(Skip::ExchangeError)) => {
                            FeedStatus::add(&self.status.exchange_errors, 1);
                            if logged_errors < 5 {
                                logged_errors += 1;
                                tracing::warn!(venue = venue.name(), frame = %truncate(text.as_str()), "exchange error frame");
                            }
                        }
                        Ok(Frame::Skip(_)) => {}
                        Err(e) => {
                            FeedStatus::add(&self.status.parse_errors, 1);
                            if logged_errors < 5 {
                                logged_errors += 1;
                                tracing::warn!(venue = venue.name(), error = %e, frame = %truncate(text.as_str()), "malformed frame");
                            }
                        }
                    }
                }
                Ok(Message::Close(_)) => return End::Closed,
                Ok(_) => last_rx = Instant::now(), // ping (answered on the next read), pong, binary
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return End::Closed;
                }
                Err(e) => return End::Failed(e.to_string()),
            }
            let now = Instant::now();
            if !confirmed && now.duration_since(subscribed_at) > self.options.subscribe_timeout {
                if resubscribed {
                    return End::NotConfirmed;
                }
                tracing::warn!(
                    venue = venue.name(),
                    "subscription not confirmed; sending it again"
                );
                for frame in exchange.subscribe(&self.assets) {
                    if let Err(end) = self.send(socket, frame) {
                        return end;
                    }
                }
                resubscribed = true;
                subscribed_at = now;
            }
            if let Some(every) = keepalive.ping_every
                && now.duration_since(last_tx) >= every
                && let Some(ping) = exchange.ping_frame(ping_sequence)
            {
                ping_sequence += 1;
                if let Err(end) = self.send(socket, ping) {
                    return end;
                }
                last_tx = now;
            }
            if now.duration_since(last_rx) > keepalive.silence_limit {
                return End::Silent;
            }
            if confirmed {
                let stale =
                    last_price.is_none_or(|at| now.duration_since(at) > self.options.stale_after);
                self.status.set_state(if stale {
                    FeedState::Stale
                } else {
                    FeedState::Streaming
                });
            }
            if now.duration_since(window_start) >= Duration::from_secs(1) {
                self.status
                    .messages_per_second
                    .store(window_messages, Ordering::Relaxed);
                window_start = now;
                window_messages = 0;
            }
        }
    }
}

/// The first 200 bytes of a frame, for logs.
fn truncate(text: &str) -> &str {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

fn tcp_of(socket: &Socket) -> Option<&TcpStream> {
    match socket.get_ref() {
        MaybeTlsStream::Rustls(stream) => Some(&stream.sock),
        MaybeTlsStream::Plain(stream) => Some(stream),
        _ => None, // no other TLS backend is compiled in
    }
}

/// Host and port of a `ws://` or `wss://` URL (ports default to 80 and 443).
pub(super) fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme {
        "wss" | "https" => 443,
        "ws" | "http" => 80,
        _ => return None,
    };
    let authority = rest.split(['/', '?']).next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after
            .strip_prefix(':')
            .map_or(Some(default_port), |p| p.parse().ok())?;
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let cases: &[(&str, Option<(&str, u16)>)] = &[
            (
                "wss://ws.okx.com:8443/ws/v5/public",
                Some(("ws.okx.com", 8443)),
            ),
            (
                "wss://advanced-trade-ws.coinbase.com",
                Some(("advanced-trade-ws.coinbase.com", 443)),
            ),
            ("ws://127.0.0.1:9000/kraken", Some(("127.0.0.1", 9000))),
            ("wss://[::1]:9443/x", Some(("::1", 9443))),
            ("ftp://x", None),
            ("ws://host:notaport/", None),
        ];
        for (url, expected) in cases {
            assert_eq!(
                host_port(url),
                expected.map(|(h, p)| (h.to_string(), p)),
                "{url}"
            );
        }
        assert_eq!(truncate(&"é".repeat(150)).len(), 200);
    }
}
