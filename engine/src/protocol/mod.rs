//! Wire protocols, independent of the I/O backend: the price answer and its JSON, HTTP/1.1 and
//! UDP (text and binary v8). Nothing here allocates on the request path.

pub(crate) mod answer;
pub mod http;
pub mod sink;
pub(crate) mod state;
pub mod udp;
