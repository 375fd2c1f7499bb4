//! Request heads: parsed in place by httparse (no allocation: the header array is on the
//! stack), checked against our limits, and reduced to what routing needs.

/// Longest request head accepted (request line plus headers): 431 beyond.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// Longest request target: 414 beyond.
pub(crate) const MAX_URI: usize = 2 * 1024;
/// Most headers accepted: 431 beyond.
pub(crate) const MAX_HEADERS: usize = 32;
/// Largest request body accepted (subscription calls take one, other routes ignore it).
pub const MAX_BODY: usize = 4 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Delete,
    Other,
}

/// What routing needs from a request head.
#[derive(Clone, Copy, Debug)]
pub struct Head<'a> {
    pub method: Method,
    pub path: &'a [u8],
    pub query: &'a [u8],
    /// The client spoke HTTP/1.0.
    pub http10: bool,
    /// The connection stays open after the response.
    pub keep_alive: bool,
    /// Bytes of body that follow the head.
    pub content_length: usize,
    /// Bytes of the head, blank line included.
    pub head_len: usize,
    /// `X-API-Key`.
    pub api_key: Option<&'a [u8]>,
    /// `X-Admin-Key`.
    pub admin_key: Option<&'a [u8]>,
    /// `Accept` (reports choose their format by it).
    pub accept: Option<&'a [u8]>,
}

/// Why a head was refused. The connection is closed after the error response, because the
/// framing of whatever follows can no longer be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    Malformed(&'static str),
    UriTooLong,
    HeadersTooLarge,
    BodyTooLarge,
}

#[derive(Debug)]
pub enum Parsed<'a> {
    Complete(Head<'a>),
    /// More bytes needed.
    Partial,
    Error(HeadError),
}

/// Parses the head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        // The read buffer has room for a body too: a head past the limit is refused whole.
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
            return Parsed::Error(HeadError::HeadersTooLarge);
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            // A request line longer than the limit is refused before its end arrives.
            let line_end = memchr::memchr(b'\n', buf).unwrap_or(buf.len());
            return if line_end > MAX_URI + 16 {
                Parsed::Error(HeadError::UriTooLong)
            } else if buf.len() >= MAX_HEAD {
                Parsed::Error(HeadError::HeadersTooLarge)
            } else {
                Parsed::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Parsed::Error(HeadError::HeadersTooLarge),
        Err(httparse::Error::Version) => {
            return Parsed::Error(HeadError::Malformed("unsupported HTTP version"));
        }
        Err(_) => return Parsed::Error(HeadError::Malformed("malformed request")),
    };
    let target = request.path.unwrap_or("/").as_bytes();
    if target.len() > MAX_URI {
        return Parsed::Error(HeadError::UriTooLong);
    }
    let (path, query) = match memchr::memchr(b'?', target) {
        Some(at) => (
            target.get(..at).unwrap_or_default(),
            target.get(at + 1..).unwrap_or_default(),
        ),
        None => (target, &b""[..]),
    };
    let method = match request.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        _ => Method::Other,
    };
    let http10 = request.version == Some(0);
    let mut keep_alive = !http10;
    let mut content_length: Option<usize> = None;
    let mut api_key = None;
    let mut admin_key = None;
    let mut accept = None;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let Some(length) = parse_length(header.value) else {
                return Parsed::Error(HeadError::Malformed("invalid Content-Length"));
            };
            if content_length.is_some_and(|previous| previous != length) {
                return Parsed::Error(HeadError::Malformed("conflicting Content-Length headers"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Error(HeadError::Malformed("request bodies need Content-Length"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("x-api-key") {
            api_key = Some(header.value);
        } else if name.eq_ignore_ascii_case("x-admin-key") {
            admin_key = Some(header.value);
        } else if name.eq_ignore_ascii_case("accept") {
            accept = Some(header.value);
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY {
        return Parsed::Error(HeadError::BodyTooLarge);
    }
    Parsed::Complete(Head {
        method,
        path,
        query,
        http10,
        keep_alive,
        content_length,
        head_len,
        api_key,
        admin_key,
        accept,
    })
}

fn parse_length(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 12 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0usize, |n, &d| {
        n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

/// The raw value of query parameter `name` (`asset` in `asset=BTC&x=1`), if present.
pub(crate) fn query_param<'a>(query: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    query.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match memchr::memchr(b'=', pair) {
            Some(at) => (pair.get(..at)?, pair.get(at + 1..)?),
            None => (pair, &b""[..]),
        };
        (key == name).then_some(value)
    })
}

/// Percent-decodes `value` into `out`; `None` if it is malformed or does not fit.
pub(crate) fn percent_decode<'o>(value: &[u8], out: &'o mut [u8]) -> Option<&'o [u8]> {
    let mut len = 0;
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        let byte = if b == b'%' {
            let hex = |at: usize| value.get(at).and_then(|c| (*c as char).to_digit(16));
            let (high, low) = (hex(i + 1)?, hex(i + 2)?);
            i += 3;
            u8::try_from(high * 16 + low).ok()?
        } else {
            i += 1;
            b
        };
        *out.get_mut(len)? = byte;
        len += 1;
    }
    out.get(..len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head<'_> {
        match parse(raw.as_bytes()) {
            Parsed::Complete(head) => head,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn parses_heads() {
        let h = head("GET /price?asset=BTC HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            (h.method, h.path, h.query, h.keep_alive, h.http10),
            (Method::Get, &b"/price"[..], &b"asset=BTC"[..], true, false)
        );
        assert_eq!(h.head_len, 42);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").keep_alive);
        assert_eq!(
            head("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").content_length,
            5
        );
        assert_eq!(
            head("GET / HTTP/1.1\r\nX-API-Key: abc\r\n\r\n").api_key,
            Some(&b"abc"[..])
        );
        assert_eq!(head("DELETE / HTTP/1.1\r\n\r\n").method, Method::Delete);
        assert_eq!(head("PUT / HTTP/1.1\r\n\r\n").method, Method::Other);
    }

    #[test]
    fn refuses_what_breaks_the_limits() {
        let long_uri = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI + 1));
        let many_headers = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        let huge_head = format!("GET / HTTP/1.1\r\nA: {}", "b".repeat(MAX_HEAD));
        let cases: Vec<(String, HeadError)> = vec![
            (
                "GARBAGE\r\n\r\n".into(),
                HeadError::Malformed("malformed request"),
            ),
            (
                "GET / HTTP/2.0\r\n\r\n".into(),
                HeadError::Malformed("unsupported HTTP version"),
            ),
            (long_uri, HeadError::UriTooLong),
            (many_headers, HeadError::HeadersTooLarge),
            (huge_head, HeadError::HeadersTooLarge),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999\r\n\r\n".into(),
                HeadError::BodyTooLarge,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n".into(),
                HeadError::Malformed("invalid Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".into(),
                HeadError::Malformed("conflicting Content-Length headers"),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
                HeadError::Malformed("request bodies need Content-Length"),
            ),
        ];
        for (raw, expected) in cases {
            match parse(raw.as_bytes()) {
                Parsed::Error(e) => assert_eq!(e, expected, "{raw:.60}"),
                other => panic!("{raw:.60}: {other:?}"),
            }
        }
        assert!(matches!(
            parse(b"GET /price?asset=BTC HTTP/1.1\r\nHost"),
            Parsed::Partial
        ));
    }

    #[test]
    fn reads_query_parameters() {
        assert_eq!(query_param(b"asset=BTC", b"asset"), Some(&b"BTC"[..]));
        assert_eq!(query_param(b"x=1&asset=eth&y", b"asset"), Some(&b"eth"[..]));
        assert_eq!(query_param(b"assets=BTC", b"asset"), None);
        assert_eq!(query_param(b"asset", b"asset"), Some(&b""[..]));
        let mut buf = [0u8; 16];
        assert_eq!(
            percent_decode(b"BTC%2Ceth", &mut buf),
            Some(&b"BTC,eth"[..])
        );
        assert_eq!(percent_decode(b"%zz", &mut buf), None);
        assert_eq!(percent_decode(b"%2", &mut buf), None);
        assert_eq!(percent_decode(&[b'a'; 17], &mut buf), None);
    }
}
