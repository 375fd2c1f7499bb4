//! HTTP/1.1: request heads, routes, response heads. The connection state machine that drives
//! them (keep-alive, pipelining, timeouts) is `reactor::conn`.

mod admin;
pub(crate) mod reply;
pub mod request;
pub mod response;
pub mod routes;
