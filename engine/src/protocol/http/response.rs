//! Status lines and response heads.

use crate::protocol::answer::{ErrorCode, write_error};
use crate::protocol::sink::Sink;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Created,
    BadRequest,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    UriTooLong,
    HeadersTooLarge,
    TooManyRequests,
    ServiceUnavailable,
    Accepted,
    Conflict,
    NotAcceptable,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::Created => 201,
            Status::Accepted => 202,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Conflict => 409,
            Status::NotAcceptable => 406,
            Status::TooManyRequests => 429,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::PayloadTooLarge => 413,
            Status::UriTooLong => 414,
            Status::HeadersTooLarge => 431,
            Status::ServiceUnavailable => 503,
        }
    }

    fn line(self) -> &'static [u8] {
        match self {
            Status::Ok => b"HTTP/1.1 200 OK\r\n",
            Status::Created => b"HTTP/1.1 201 Created\r\n",
            Status::Accepted => b"HTTP/1.1 202 Accepted\r\n",
            Status::BadRequest => b"HTTP/1.1 400 Bad Request\r\n",
            Status::Unauthorized => b"HTTP/1.1 401 Unauthorized\r\n",
            Status::Conflict => b"HTTP/1.1 409 Conflict\r\n",
            Status::NotAcceptable => b"HTTP/1.1 406 Not Acceptable\r\n",
            Status::TooManyRequests => b"HTTP/1.1 429 Too Many Requests\r\n",
            Status::NotFound => b"HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => b"HTTP/1.1 405 Method Not Allowed\r\n",
            Status::RequestTimeout => b"HTTP/1.1 408 Request Timeout\r\n",
            Status::PayloadTooLarge => b"HTTP/1.1 413 Content Too Large\r\n",
            Status::UriTooLong => b"HTTP/1.1 414 URI Too Long\r\n",
            Status::HeadersTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            Status::ServiceUnavailable => b"HTTP/1.1 503 Service Unavailable\r\n",
        }
    }
}

/// Body media types.
pub const JSON: &[u8] = b"application/json";
pub(crate) const PROMETHEUS: &[u8] = b"text/plain; version=0.0.4; charset=utf-8";

/// How the connection continues after a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// HTTP/1.1 default: no header needed.
    KeepAlive,
    /// An HTTP/1.0 client that asked to keep the connection.
    KeepAlive10,
    Close,
}

/// Writes a whole response. `extra` is zero or more complete header lines (`Allow: GET\r\n`).
pub fn write(
    out: &mut impl Sink,
    status: Status,
    content_type: &[u8],
    body: &[u8],
    persist: Persist,
    head_only: bool,
    extra: &[u8],
) {
    out.put(status.line());
    out.put(b"Content-Type: ");
    out.put(content_type);
    out.put(b"\r\nContent-Length: ");
    out.put_u64(body.len() as u64);
    out.put(b"\r\n");
    match persist {
        Persist::KeepAlive => {}
        Persist::KeepAlive10 => out.put(b"Connection: keep-alive\r\n"),
        Persist::Close => out.put(b"Connection: close\r\n"),
    }
    out.put(extra);
    out.put(b"\r\n");
    if !head_only {
        out.put(body);
    }
}

/// Writes an error response with its JSON body.
pub(crate) fn write_error_response(
    out: &mut impl Sink,
    scratch: &mut Vec<u8>,
    code: ErrorCode,
    message: &[u8],
    persist: Persist,
    extra: &[u8],
) {
    scratch.clear();
    write_error(scratch, code, message);
    write(out, status_of(code), JSON, scratch, persist, false, extra);
}

/// The HTTP status of each error code: the one place the mapping is made.
pub(crate) fn status_of(code: ErrorCode) -> Status {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::InvalidAsset
        | ErrorCode::TooManyAssets
        | ErrorCode::TooSmall => Status::BadRequest,
        ErrorCode::UnknownAsset | ErrorCode::NotFound => Status::NotFound,
        ErrorCode::InvalidApiKey | ErrorCode::Unauthorized => Status::Unauthorized,
        ErrorCode::MethodNotAllowed => Status::MethodNotAllowed,
        ErrorCode::RequestTimeout => Status::RequestTimeout,
        ErrorCode::PayloadTooLarge => Status::PayloadTooLarge,
        ErrorCode::UriTooLong => Status::UriTooLong,
        ErrorCode::HeadersTooLarge => Status::HeadersTooLarge,
        ErrorCode::RateLimited => Status::TooManyRequests,
        ErrorCode::Conflict => Status::Conflict,
        ErrorCode::NotAcceptable => Status::NotAcceptable,
        ErrorCode::NoPrice | ErrorCode::Overloaded | ErrorCode::Unavailable => {
            Status::ServiceUnavailable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_heads() {
        let mut out = Vec::new();
        write(
            &mut out,
            Status::Ok,
            JSON,
            b"{}",
            Persist::KeepAlive,
            false,
            b"",
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
        out.clear();
        write(
            &mut out,
            Status::MethodNotAllowed,
            JSON,
            b"{}",
            Persist::Close,
            true,
            b"Allow: GET, HEAD\r\n",
        );
        assert_eq!(
            out,
            &b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\nAllow: GET, HEAD\r\n\r\n"[..]
        );
    }
}
