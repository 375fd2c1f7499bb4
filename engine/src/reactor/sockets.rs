//! Listening sockets: every reactor gets its own socket per port, all bound with
//! `SO_REUSEPORT`, so the kernel spreads clients across reactors and no socket is shared.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

use crate::protocol::http::routes::PortKind;

/// UDP socket buffers: room for a burst while the reactor is busy (capped by the kernel's
/// `net.core.rmem_max`/`wmem_max`, see tuning/).
const UDP_BUFFER_BYTES: usize = 4 << 20;
const LISTEN_BACKLOG: i32 = 4096;

/// The ports asked for (0: any free port; `None`: not served by this node's role).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ports {
    pub tcp_lpo: Option<u16>,
    pub tcp_lrs: Option<u16>,
    pub health_lpo: Option<u16>,
    pub health_lrs: Option<u16>,
    pub health_webhook: Option<u16>,
    pub udp_lpo: Option<u16>,
    pub udp_lrs: Option<u16>,
}

impl Ports {
    /// Every port of a price node on any free port (tests, in-process servers).
    pub fn any_free() -> Ports {
        Ports {
            tcp_lpo: Some(0),
            tcp_lrs: Some(0),
            health_lpo: Some(0),
            health_lrs: Some(0),
            health_webhook: None,
            udp_lpo: Some(0),
            udp_lrs: Some(0),
        }
    }
}

/// The addresses actually bound (ports resolved when 0 was asked for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundAddrs {
    pub tcp_lpo: Option<SocketAddr>,
    pub tcp_lrs: Option<SocketAddr>,
    pub health_lpo: Option<SocketAddr>,
    pub health_lrs: Option<SocketAddr>,
    pub health_webhook: Option<SocketAddr>,
    pub udp_lpo: Option<SocketAddr>,
    pub udp_lrs: Option<SocketAddr>,
}

pub struct Listener {
    pub socket: TcpListener,
    pub port: PortKind,
}

/// One reactor's sockets.
pub struct ReactorSockets {
    pub udp: Vec<UdpSocket>,
    /// For each UDP socket: true on the LRS port (reports are answered there).
    pub udp_reports: Vec<bool>,
    pub tcp: Vec<Listener>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {setting} {addr}: {source}")]
pub struct BindError {
    pub setting: &'static str,
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Binds every port for every reactor.
pub(crate) fn bind_all(
    ip: IpAddr,
    ports: Ports,
    reactors: usize,
) -> Result<(Vec<ReactorSockets>, BoundAddrs), BindError> {
    let mut sets: Vec<ReactorSockets> = (0..reactors)
        .map(|_| ReactorSockets {
            udp: Vec::new(),
            udp_reports: Vec::new(),
            tcp: Vec::new(),
        })
        .collect();
    let udp = |setting: &'static str,
               port: Option<u16>,
               reports: bool,
               sets: &mut Vec<ReactorSockets>|
     -> Result<Option<SocketAddr>, BindError> {
        let Some(port) = port else {
            return Ok(None);
        };
        let mut addr = SocketAddr::new(ip, port);
        held_elsewhere(addr, Type::DGRAM).map_err(|source| BindError {
            setting,
            addr,
            source,
        })?;
        for set in sets.iter_mut() {
            let socket = udp_socket(addr).map_err(|source| BindError {
                setting,
                addr,
                source,
            })?;
            addr = socket.local_addr().map_err(|source| BindError {
                setting,
                addr,
                source,
            })?;
            set.udp.push(socket);
            set.udp_reports.push(reports);
        }
        Ok(Some(addr))
    };
    let udp_lpo = udp("UDP_PORT_LPO", ports.udp_lpo, false, &mut sets)?;
    let udp_lrs = udp("UDP_PORT_LRS", ports.udp_lrs, true, &mut sets)?;
    let tcp = |setting: &'static str,
               port: Option<u16>,
               kind: PortKind,
               sets: &mut Vec<ReactorSockets>|
     -> Result<Option<SocketAddr>, BindError> {
        let Some(port) = port else {
            return Ok(None);
        };
        let mut addr = SocketAddr::new(ip, port);
        held_elsewhere(addr, Type::STREAM).map_err(|source| BindError {
            setting,
            addr,
            source,
        })?;
        for set in sets.iter_mut() {
            let socket = tcp_listener(addr).map_err(|source| BindError {
                setting,
                addr,
                source,
            })?;
            addr = socket.local_addr().map_err(|source| BindError {
                setting,
                addr,
                source,
            })?;
            set.tcp.push(Listener { socket, port: kind });
        }
        Ok(Some(addr))
    };
    let tcp_lpo = tcp("TCP_PORT_LPO", ports.tcp_lpo, PortKind::Api, &mut sets)?;
    let tcp_lrs = tcp("TCP_PORT_LRS", ports.tcp_lrs, PortKind::Reports, &mut sets)?;
    let health_lpo = tcp(
        "HEALTH_PORT_LPO",
        ports.health_lpo,
        PortKind::Health,
        &mut sets,
    )?;
    let health_lrs = tcp(
        "HEALTH_PORT_LRS",
        ports.health_lrs,
        PortKind::Health,
        &mut sets,
    )?;
    let health_webhook = tcp(
        "HEALTH_PORT_WEBHOOK",
        ports.health_webhook,
        PortKind::Health,
        &mut sets,
    )?;
    Ok((
        sets,
        BoundAddrs {
            tcp_lpo,
            tcp_lrs,
            health_lpo,
            health_lrs,
            health_webhook,
            udp_lpo,
            udp_lrs,
        },
    ))
}

/// Fails with `AddrInUse` if another socket holds the port. The reactors' sockets share a port
/// through `SO_REUSEPORT`, which would as quietly let a second `beast` (same user) take half of
/// this one's clients; a probe bound without it is refused by any holder.
fn held_elsewhere(addr: SocketAddr, kind: Type) -> std::io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = Socket::new(Domain::for_address(addr), kind, None)?;
    if kind == Type::STREAM {
        // Connections of an earlier process in TIME_WAIT do not hold the port.
        probe.set_reuse_address(true)?;
    }
    probe.bind(&addr.into())
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    // Best effort: the kernel caps these at rmem_max/wmem_max.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn tcp_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    // Accepted sockets inherit TCP_NODELAY on Linux: small responses leave at once.
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reactor_shares_each_resolved_port() {
        let ports = Ports::any_free();
        let (sets, addrs) = bind_all(IpAddr::from([127, 0, 0, 1]), ports, 3).unwrap();
        assert_eq!(sets.len(), 3);
        for set in &sets {
            assert_eq!(Some(set.udp[0].local_addr().unwrap()), addrs.udp_lpo);
            assert_eq!(
                Some(set.tcp[2].socket.local_addr().unwrap()),
                addrs.health_lpo
            );
            assert_eq!(set.tcp[2].port, PortKind::Health);
        }
        assert_ne!(addrs.tcp_lpo.map(|a| a.port()), Some(0));
        assert_eq!(addrs.health_webhook, None);
        let taken = Ports {
            tcp_lpo: addrs.tcp_lpo.map(|a| a.port()),
            ..ports
        };
        // Without SO_REUSEPORT from another owner the port is refused, naming the setting.
        let _hold = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = match bind_all(
            IpAddr::from([127, 0, 0, 1]),
            Ports {
                tcp_lpo: Some(_hold.local_addr().unwrap().port()),
                ..taken
            },
            1,
        ) {
            Err(e) => e,
            Ok(_) => panic!("bound a port another socket holds"),
        };
        assert!(
            err.to_string()
                .starts_with("cannot listen on TCP_PORT_LPO 127.0.0.1:"),
            "{err}"
        );
    }
}
