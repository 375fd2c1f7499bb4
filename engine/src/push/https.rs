//! One HTTPS POST, as the push engine makes it: resolve, check every address against the SSRF
//! guard, connect, TLS (rustls: the webpki roots and the optional extra CA), write, read the
//! response head and at most [`RESPONSE_MAX`] bytes of body, all within one timeout. Kept-alive
//! connections go back to their endpoint's pool.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::guard::{Forbidden, Guard};
use super::subscription::Target;

/// Most bytes of a response read (head and body each).
pub const RESPONSE_MAX: usize = 64 * 1_024;

pub type Conn = TlsStream<TcpStream>;

/// Why an attempt failed before an HTTP status was read.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("{ip} is a {} address (SSRF guard)", why.as_str())]
    Blocked {
        ip: std::net::IpAddr,
        why: Forbidden,
    },
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("I/O: {0}")]
    Io(std::io::Error),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

impl AttemptError {
    /// Short code for the delivery log and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AttemptError::Resolve(_) => "resolve",
            AttemptError::Blocked { .. } => "blocked",
            AttemptError::Connect(_) => "connect",
            AttemptError::Tls(_) => "tls",
            AttemptError::Io(_) => "io",
            AttemptError::Timeout(_) => "timeout",
            AttemptError::Malformed(_) => "malformed_response",
        }
    }
}

/// What came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// `Retry-After` in seconds (delta form), when given.
    pub retry_after_s: Option<u64>,
}

pub struct Client {
    tls: TlsConnector,
    guard: Guard,
    timeout: Duration,
    user_agent: String,
}

/// The TLS client: Mozilla's roots, and every certificate in `ca_file` when given.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("WEBHOOK_CA_FILE {shown}: {e}"))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| format!("WEBHOOK_CA_FILE {shown}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("WEBHOOK_CA_FILE {shown}: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("WEBHOOK_CA_FILE {shown}: no certificate in it"));
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// The addresses `host:port` resolves to, every one allowed by `guard`: one refused address
/// refuses the target (a name must not mix reachable and forbidden addresses).
pub async fn resolve(guard: &Guard, target: &Target) -> Result<Vec<SocketAddr>, AttemptError> {
    let authority = target.authority();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&authority)
        .await
        .map_err(|_| AttemptError::Resolve(authority.clone()))?
        .collect();
    if addrs.is_empty() {
        return Err(AttemptError::Resolve(authority));
    }
    for addr in &addrs {
        guard
            .check(addr.ip())
            .map_err(|why| AttemptError::Blocked { ip: addr.ip(), why })?;
    }
    Ok(addrs)
}

impl Client {
    pub fn new(config: rustls::ClientConfig, guard: Guard, timeout: Duration) -> Client {
        Client {
            tls: TlsConnector::from(Arc::new(config)),
            guard,
            timeout,
            user_agent: format!("beast-push/{}", crate::build_info::VERSION),
        }
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// POSTs `body` with `headers`, on `pooled` if given (a fresh connection if that one turns
    /// out closed). Returns the response and the connection when it may be used again.
    pub async fn post(
        &self,
        pooled: Option<Conn>,
        target: &Target,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (Result<Response, AttemptError>, Option<Conn>) {
        let request = self.request(target, headers, body);
        match tokio::time::timeout(self.timeout, self.exchange(pooled, target, &request)).await {
            Ok(result) => result,
            Err(_) => (Err(AttemptError::Timeout(self.timeout)), None),
        }
    }

    fn request(&self, target: &Target, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let host = if target.port == 443 {
            target.host.clone()
        } else {
            target.authority()
        };
        let mut out = Vec::with_capacity(512 + body.len());
        out.extend_from_slice(
            format!(
                "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                target.path,
                self.user_agent,
                body.len()
            )
            .as_bytes(),
        );
        for (name, value) in headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }

    async fn exchange(
        &self,
        pooled: Option<Conn>,
        target: &Target,
        request: &[u8],
    ) -> (Result<Response, AttemptError>, Option<Conn>) {
        if let Some(mut conn) = pooled {
            // A kept-alive connection the server has closed fails at once: try a new one.
            match send(&mut conn, request).await {
                Ok(outcome) => return outcome.into_parts(conn),
                Err(Reused::Closed) => {}
                Err(Reused::Failed(e)) => return (Err(e), None),
            }
        }
        let mut conn = match self.connect(target).await {
            Ok(conn) => conn,
            Err(e) => return (Err(e), None),
        };
        match send(&mut conn, request).await {
            Ok(outcome) => outcome.into_parts(conn),
            Err(Reused::Closed) => (
                Err(AttemptError::Malformed(
                    "connection closed before a response",
                )),
                None,
            ),
            Err(Reused::Failed(e)) => (Err(e), None),
        }
    }

    async fn connect(&self, target: &Target) -> Result<Conn, AttemptError> {
        let addrs = resolve(&self.guard, target).await?;
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            AttemptError::Connect(last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()))
        })?;
        let _ = tcp.set_nodelay(true);
        let name = match target.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(target.host.clone())
                .map_err(|_| AttemptError::Resolve(target.host.clone()))?,
        };
        self.tls.connect(name, tcp).await.map_err(AttemptError::Tls)
    }
}

/// How a send on a connection ended.
enum Reused {
    /// Closed before any byte of a response: a kept-alive connection the server dropped.
    Closed,
    Failed(AttemptError),
}

struct Exchanged {
    response: Response,
    keep_alive: bool,
}

impl Exchanged {
    fn into_parts(self, conn: Conn) -> (Result<Response, AttemptError>, Option<Conn>) {
        (Ok(self.response), self.keep_alive.then_some(conn))
    }
}

async fn send(conn: &mut Conn, request: &[u8]) -> Result<Exchanged, Reused> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::UnexpectedEof => Reused::Closed,
        _ => Reused::Failed(AttemptError::Io(e)),
    };
    conn.write_all(request).await.map_err(io)?;
    conn.flush().await.map_err(io)?;
    let mut buf = Vec::with_capacity(1_024);
    let mut chunk = [0u8; 4_096];
    // The head.
    let (status, retry_after_s, framing, close, head_len) = loop {
        let n = conn.read(&mut chunk).await.map_err(|e| {
            if buf.is_empty() {
                io(e)
            } else {
                Reused::Failed(AttemptError::Io(e))
            }
        })?;
        if n == 0 {
            return Err(if buf.is_empty() {
                Reused::Closed
            } else {
                Reused::Failed(AttemptError::Malformed("closed in the response head"))
            });
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = response.code.unwrap_or(0);
                let header = |name: &str| {
                    response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .map(str::trim)
                };
                let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok());
                let chunked = header("transfer-encoding")
                    .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
                let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
                let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
                    || response.version == Some(0);
                let framing = match (chunked, length) {
                    (true, _) => Framing::Chunked,
                    (false, Some(n)) => Framing::Length(n),
                    // 204 and 304 have no body; anything else without framing runs to close.
                    (false, None) if status == 204 || status == 304 => Framing::Length(0),
                    (false, None) => Framing::ToClose,
                };
                break (status, retry_after, framing, close, len);
            }
            Ok(httparse::Status::Partial) if buf.len() < RESPONSE_MAX => {}
            Ok(httparse::Status::Partial) => {
                return Err(Reused::Failed(AttemptError::Malformed(
                    "response head too large",
                )));
            }
            Err(_) => return Err(Reused::Failed(AttemptError::Malformed("bad response head"))),
        }
    };
    let mut body = buf.split_off(head_len);
    let complete = read_body(conn, &mut body, framing, &mut chunk)
        .await
        .map_err(Reused::Failed)?;
    Ok(Exchanged {
        response: Response {
            status,
            retry_after_s,
        },
        keep_alive: complete && !close && !matches!(framing, Framing::ToClose),
    })
}

#[derive(Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked,
    ToClose,
}

/// Reads the body (discarded) up to [`RESPONSE_MAX`]; true when it ended where its framing
/// says (the connection may be reused), false when it was cut at the cap.
async fn read_body(
    conn: &mut Conn,
    body: &mut Vec<u8>,
    framing: Framing,
    chunk: &mut [u8],
) -> Result<bool, AttemptError> {
    loop {
        let done = match framing {
            Framing::Length(n) => body.len() >= n,
            Framing::Chunked => chunked_end(body).is_some(),
            Framing::ToClose => false,
        };
        if done {
            return Ok(true);
        }
        if body.len() >= RESPONSE_MAX {
            return Ok(false);
        }
        let n = conn.read(chunk).await.map_err(AttemptError::Io)?;
        if n == 0 {
            return match framing {
                Framing::ToClose => Ok(false),
                _ => Err(AttemptError::Malformed("closed in the response body")),
            };
        }
        body.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// Where a chunked body ends, once it has (its last chunk and trailers read).
fn chunked_end(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = at + body.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(body.get(at..line_end)?).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = at + body.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
                if end == at {
                    return Some(end + 2);
                }
                at = end + 2;
            }
        }
        at = at.checked_add(size)?.checked_add(2)?;
        if at > body.len() {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_end_where_they_say() {
        for (body, end) in [
            (&b"0\r\n\r\n"[..], Some(5)),
            (b"5\r\nhello\r\n0\r\n\r\n", Some(15)),
            (b"5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", Some(29)),
            (b"5\r\nhel", None),
            (b"5\r\nhello\r\n", None),
            (b"zz\r\n", None),
        ] {
            assert_eq!(
                chunked_end(body),
                end,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
