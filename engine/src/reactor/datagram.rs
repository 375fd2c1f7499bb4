//! Answering: what both backends call for each datagram they receive, and what the core lends
//! each HTTP connection to answer its requests. One per reactor; it owns the reactor's usage
//! meter, so every answer with prices (on any protocol) is metered in one place.

use std::sync::Arc;
use std::time::Instant;

use super::conn::Env;
use crate::metrics::{ReactorMetrics, UdpDrop};
use crate::node::Node;
use crate::protocol::udp::{self, Drop, Form, Outcome};
use crate::usage::{AssetList, Meter, Protocol};

pub(crate) struct Answerer {
    node: Arc<Node>,
    index: usize,
    meter: Meter,
    assets: AssetList,
    /// Reusable buffer for HTTP response bodies.
    body: Vec<u8>,
    /// The wall clock for this turn (prices' ages), read once per turn.
    now_ms: u64,
    /// When this turn's input arrived (latency is measured from it).
    arrived: Instant,
    /// Datagrams answered since the last [`Answerer::end_batch`].
    answered: u64,
    /// For each UDP socket of the reactor: it is the LRS port.
    udp_reports: Vec<bool>,
}

impl Answerer {
    pub fn new(node: Arc<Node>, index: usize, meter: Meter, udp_reports: Vec<bool>) -> Answerer {
        Answerer {
            node,
            index,
            meter,
            assets: AssetList::default(),
            body: Vec::with_capacity(64 * 1024),
            now_ms: beast_core::clock::wall_ms(),
            arrived: Instant::now(),
            answered: 0,
            udp_reports,
        }
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn metrics(&self) -> &ReactorMetrics {
        self.node.metrics(self.index)
    }

    /// Starts a turn: its input arrived at `arrived`, and the wall clock reads `now_ms`.
    pub fn begin(&mut self, arrived: Instant, now_ms: u64) {
        self.arrived = arrived;
        self.now_ms = now_ms;
    }

    /// Answers one datagram that came to UDP socket `socket` from `from` (the sender's
    /// `sockaddr` bytes) into `out`; the length of the reply to send, if any. Counts the
    /// datagram and meters the answer.
    pub fn datagram(
        &mut self,
        socket: usize,
        datagram: &[u8],
        from: &[u8],
        truncated: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        let metrics = self.node.metrics(self.index);
        if truncated {
            metrics.udp_drop(UdpDrop::Truncated);
            return None;
        }
        if udp::v8::is_v8(datagram) {
            metrics.udp_v8.inc();
        } else {
            metrics.udp_text.inc();
        }
        // No reply can reach port 0, and sending one fails (and once failed a whole sendmmsg
        // batch): such a datagram is neither answered nor metered.
        if source_port(from) == Some(0) {
            metrics.udp_drop(UdpDrop::BadSource);
            return None;
        }
        self.assets.room = self.meter.has_room();
        let ctx = udp::Context {
            table: &self.node.table,
            access: &self.node.access,
            fresh: self.node.freshness(self.now_ms),
            reports: self.udp_reports.get(socket).copied().unwrap_or(false),
        };
        let outcome = udp::answer(datagram, ctx, out, &mut self.assets);
        match outcome {
            Outcome::Reply {
                len,
                form,
                key_id,
                denied,
                ..
            } => {
                if let Some(refused) = denied {
                    metrics.deny(refused);
                }
                // Metered when the reply carried at least one price.
                if !self.assets.is_empty() {
                    let protocol = match form {
                        Form::Text => Protocol::UdpText,
                        Form::V8 => Protocol::UdpV8,
                        Form::Report => Protocol::UdpReport,
                    };
                    let latency_ns = u64::try_from(self.arrived.elapsed().as_nanos()).unwrap_or(0);
                    let assets = self.assets.as_slice();
                    if self
                        .meter
                        .record(key_id, protocol, self.now_ms, latency_ns, assets)
                    {
                        metrics.usage_recorded.inc();
                    } else {
                        metrics.usage_dropped.inc();
                    }
                }
                self.answered += 1;
                metrics.udp_replies.inc();
                Some(len)
            }
            Outcome::Dropped(Drop::Malformed) => {
                metrics.udp_drop(UdpDrop::Malformed);
                None
            }
            Outcome::Dropped(Drop::Amplification) => {
                metrics.udp_drop(UdpDrop::Amplification);
                None
            }
            Outcome::Dropped(Drop::Metering) => {
                metrics.udp_drop(UdpDrop::Overload);
                metrics.usage_dropped.inc();
                None
            }
        }
    }

    /// The datagrams answered since the last call are on their way: one clock read for the
    /// latency of all of them (each waited this long at most).
    pub(crate) fn end_batch(&mut self) {
        let answered = std::mem::take(&mut self.answered);
        if answered > 0 {
            let ns = u64::try_from(self.arrived.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.node
                .metrics(self.index)
                .udp_latency
                .record_many_ns(ns, answered);
        }
    }

    /// Replies the kernel refused (they were counted as replies when answered: a reply is
    /// one handed to the kernel).
    pub(crate) fn send_failed(&self, failed: u64) {
        let metrics = self.node.metrics(self.index);
        for _ in 0..failed {
            metrics.udp_drop(UdpDrop::SendError);
        }
    }

    /// What an HTTP connection needs to answer its requests this turn.
    pub fn env(&mut self, draining: bool) -> Env<'_> {
        let node = &*self.node;
        Env {
            node,
            metrics: node.metrics(self.index),
            fresh: node.freshness(self.now_ms),
            body: &mut self.body,
            meter: &mut self.meter,
            assets: &mut self.assets,
            arrived: self.arrived,
            draining,
        }
    }
}

/// The port of a `sockaddr_in` or `sockaddr_in6` (both keep it at bytes 2..4, big-endian).
fn source_port(addr: &[u8]) -> Option<u16> {
    let family = libc::sa_family_t::from_ne_bytes(addr.get(..2)?.try_into().ok()?);
    let inet = [libc::AF_INET, libc::AF_INET6]
        .iter()
        .any(|f| libc::sa_family_t::try_from(*f) == Ok(family));
    inet.then(|| {
        u16::from_be_bytes([
            addr.get(2).copied().unwrap_or(0),
            addr.get(3).copied().unwrap_or(0),
        ])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

    fn raw(addr: SocketAddr) -> Vec<u8> {
        let socket = socket2::SockAddr::from(addr);
        // SAFETY: `as_ptr` points at `len` initialised bytes of the socket2 address.
        #[allow(unsafe_code, reason = "reading a sockaddr's bytes in a test")]
        unsafe {
            std::slice::from_raw_parts(socket.as_ptr().cast::<u8>(), socket.len() as usize).to_vec()
        }
    }

    #[test]
    fn source_ports() {
        for (addr, port) in [
            (
                SocketAddr::V4(SocketAddrV4::new([127, 0, 0, 1].into(), 2679)),
                Some(2679),
            ),
            (
                SocketAddr::V4(SocketAddrV4::new([127, 0, 0, 1].into(), 0)),
                Some(0),
            ),
            (
                SocketAddr::V6(SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, 9, 0, 0)),
                Some(9),
            ),
        ] {
            assert_eq!(source_port(&raw(addr)), port, "{addr}");
        }
        assert_eq!(source_port(&[]), None);
    }
}
