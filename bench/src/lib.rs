//! beast-bench: a load generator for the Beast price server and its peers.
//!
//! UDP (text and binary v8) and HTTP/1.1, closed loop and open loop with coordinated-omission
//! correction, every reply validated; the Run 17 replay; JSON and HTML reports; the same loads
//! against the reference servers.

pub mod args;
pub mod load;
pub mod peers;
pub mod report;
pub mod run17;
pub mod scrape;
pub mod stats;

/// UDP text requests are padded to this many bytes per asset: a keyless reply is never larger
/// than its request, and one asset's JSON answer fits in 200 bytes.
pub const UDP_TEXT_PAD: usize = 200;
