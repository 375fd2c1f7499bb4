//! The simulator's listeners: read a request head, then serve a REST ticker, a control call, or
//! hand the connection (with the bytes already read) to a WebSocket session.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use beast_core::{Symbol, Venue};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::{MAX_CONNECTIONS, Shared, session, wire};

const MAX_HEAD: usize = 16 * 1024;

/// Accepts until the simulator stops; one thread per connection.
pub fn accept_loop(listener: &TcpListener, tls: Option<Arc<ServerConfig>>, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Acquire) {
        let tcp = match listener.accept() {
            Ok((tcp, _)) => tcp,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The listener is non-blocking so this loop can see the stop flag.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => continue,
        };
        if shared.active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            continue; // dropped: closed
        }
        let _ = tcp.set_nonblocking(false);
        let (shared, tls) = (Arc::clone(shared), tls.clone());
        let spawned = std::thread::Builder::new()
            .name("beast-sim-conn".into())
            .spawn(move || {
                shared.active.fetch_add(1, Ordering::AcqRel);
                let result = match tls {
                    Some(config) => ServerConnection::new(config)
                        .map_err(|e| io::Error::other(e.to_string()))
                        .and_then(|conn| serve(StreamOwned::new(conn, tcp), &shared)),
                    None => serve(tcp, &shared),
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "simulator connection ended");
                }
                shared.active.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "simulator cannot start a connection thread");
        }
    }
}

/// A stream whose TCP socket can be reached (for timeouts) and closed politely.
pub trait Transport: Read + Write {
    fn tcp(&self) -> &TcpStream;
    fn close_notify(&mut self) {}
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Transport for StreamOwned<ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
    fn close_notify(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
    }
}

/// Replays bytes already read before reading the stream again.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    pub inner: S,
}

impl<S: Read> Read for Prefixed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(rest) = self.prefix.get(self.pos..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
                dst.copy_from_slice(src);
            }
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Prefixed<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<S: Transport> Transport for Prefixed<S> {
    fn tcp(&self) -> &TcpStream {
        self.inner.tcp()
    }
    fn close_notify(&mut self) {
        self.inner.close_notify();
    }
}

struct Head {
    path: String,
    query: String,
    method: String,
    websocket: bool,
}

fn read_head(stream: &mut impl Read) -> io::Result<(Vec<u8>, Head)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).into_owned();
            let mut lines = text.split("\r\n");
            let mut request = lines.next().unwrap_or("").split(' ');
            let method = request.next().unwrap_or("").to_string();
            let target = request.next().unwrap_or("/");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let websocket = lines.any(|l| {
                l.split_once(':').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("upgrade")
                        && v.trim().eq_ignore_ascii_case("websocket")
                })
            });
            return Ok((
                buf,
                Head {
                    path: path.to_string(),
                    query: query.to_string(),
                    method,
                    websocket,
                },
            ));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
    }
}

fn respond(stream: &mut impl Transport, status: &str, body: &str) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()?;
    stream.close_notify();
    Ok(())
}

fn serve<S: Transport>(mut stream: S, shared: &Arc<Shared>) -> io::Result<()> {
    stream
        .tcp()
        .set_read_timeout(Some(Duration::from_secs(5)))?;
    let (bytes, head) = read_head(&mut stream)?;
    let mut parts = head.path.trim_start_matches('/').splitn(2, '/');
    let first = parts.next().unwrap_or("");
    let rest = parts.next().map(|r| format!("/{r}")).unwrap_or_default();
    if first == "control" {
        return control(&mut stream, shared, &head, &rest);
    }
    let Some(venue) = Venue::from_name(first) else {
        return respond(&mut stream, "404 Not Found", r#"{"error":"unknown venue"}"#);
    };
    let control = shared.control(venue);
    if head.websocket {
        return session::run(
            Prefixed {
                prefix: bytes,
                pos: 0,
                inner: stream,
            },
            venue,
            shared,
        );
    }
    control.rest_requests.fetch_add(1, Ordering::AcqRel);
    if control.refuse_rest.load(Ordering::Acquire) {
        return respond(
            &mut stream,
            "503 Service Unavailable",
            r#"{"error":"simulated outage"}"#,
        );
    }
    match wire::rest(
        venue,
        &rest,
        &head.query,
        &shared.market,
        &shared.sent,
        super::now_ms(),
    ) {
        Some(body) => respond(&mut stream, "200 OK", &body),
        None => respond(
            &mut stream,
            "404 Not Found",
            r#"{"error":"no such endpoint"}"#,
        ),
    }
}

fn control(
    stream: &mut impl Transport,
    shared: &Shared,
    head: &Head,
    rest: &str,
) -> io::Result<()> {
    if rest == "/status" {
        return respond(stream, "200 OK", &shared.status_json());
    }
    if rest == "/sent" {
        let asset = head
            .query
            .split('&')
            .find_map(|pair| pair.strip_prefix("asset="))
            .and_then(|a| Symbol::parse(a.as_bytes()).ok());
        return match asset {
            Some(asset) => respond(stream, "200 OK", &shared.sent.json(&asset)),
            None => respond(
                stream,
                "400 Bad Request",
                r#"{"error":"GET /control/sent?asset=<symbol>"}"#,
            ),
        };
    }
    let mut parts = rest.trim_start_matches('/').split('/');
    let (venue, fault) = (
        parts.next().and_then(Venue::from_name),
        parts.next().unwrap_or(""),
    );
    match venue {
        Some(venue) if head.method == "POST" && shared.control(venue).apply(fault) => {
            respond(stream, "200 OK", &shared.status_json())
        }
        Some(_) if head.method != "POST" => {
            respond(stream, "405 Method Not Allowed", r#"{"error":"use POST"}"#)
        }
        _ => respond(
            stream,
            "404 Not Found",
            r#"{"error":"POST /control/<venue>/<drop|stall|resume|garbage|error|slow|normal|refuse-rest|allow-rest>"}"#,
        ),
    }
}
