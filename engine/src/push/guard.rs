//! The SSRF guard: where the push engine may send. A subscription names a target, and the
//! node would connect to whatever that name resolves to, so addresses a stranger must not reach
//! through us are refused: loopback, private, link-local (the cloud metadata endpoints
//! 169.254.169.254 and the ECS task endpoint 169.254.170.2 among them), CGNAT, multicast,
//! unspecified, documentation and other reserved ranges, for IPv4 and IPv6 (IPv4-mapped and
//! NAT64 addresses are judged as the IPv4 address they carry). `WEBHOOK_ALLOW_NETS` lifts the
//! rule for the networks it lists (tests list 127.0.0.0/8).
//!
//! The check runs when a subscription is created and again on every address a connection or
//! datagram is about to use, after DNS resolution: a name that resolved to a public address
//! yesterday and to 10.0.0.1 today is refused today.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    let prefix = prefix.min(width);
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(width - prefix);
    (a >> shift) == (b >> shift)
}

impl std::str::FromStr for Net {
    type Err = String;

    fn from_str(text: &str) -> Result<Net, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP network (like 10.0.0.0/8 or fd00::/8)"))?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0-{width}"))?,
        };
        Ok(Net {
            addr: canonical(addr),
            prefix,
        })
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4-mapped (`::ffff:a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`) address as the IPv4
/// address it reaches.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let bits = v6.to_bits();
            if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
                #[allow(
                    clippy::cast_possible_truncation,
                    reason = "the low 32 bits are the IPv4 address"
                )]
                return IpAddr::V4(Ipv4Addr::from_bits(bits as u32));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Why an address is refused; shown to the user and in the delivery log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forbidden {
    Loopback,
    Private,
    LinkLocal,
    SharedNat,
    Multicast,
    Unspecified,
    Reserved,
}

impl Forbidden {
    pub fn as_str(self) -> &'static str {
        match self {
            Forbidden::Loopback => "loopback",
            Forbidden::Private => "private",
            Forbidden::LinkLocal => "link-local",
            Forbidden::SharedNat => "carrier-grade NAT",
            Forbidden::Multicast => "multicast",
            Forbidden::Unspecified => "unspecified",
            Forbidden::Reserved => "reserved",
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Forbidden> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => Forbidden::Unspecified,
        (127, ..) => Forbidden::Loopback,
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => Forbidden::Private,
        (169, 254, _) => Forbidden::LinkLocal,
        (100, 64..=127, _) => Forbidden::SharedNat,
        (224..=239, ..) => Forbidden::Multicast,
        // "This network", IETF protocol assignments, the documentation and benchmarking
        // ranges, 6to4 relay anycast, and 240/4 with broadcast.
        (0, ..)
        | (192, 0, 0 | 2)
        | (198, 18..=19, _)
        | (198, 51, 100)
        | (203, 0, 113)
        | (192, 88, 99)
        | (240..=255, ..) => Forbidden::Reserved,
        _ => return None,
    })
}

#[allow(
    clippy::cast_possible_truncation,
    reason = "16-bit groups of the address, shifted into place"
)]
fn classify_v6(ip: Ipv6Addr) -> Option<Forbidden> {
    let bits = ip.to_bits();
    let top16 = (bits >> 112) as u16;
    Some(if ip.is_unspecified() {
        Forbidden::Unspecified
    } else if ip.is_loopback() {
        Forbidden::Loopback
    } else if top16 & 0xfe00 == 0xfc00 {
        Forbidden::Private // unique local fc00::/7
    } else if top16 & 0xffc0 == 0xfe80 || top16 & 0xffc0 == 0xfec0 {
        Forbidden::LinkLocal // fe80::/10 and the deprecated site-local fec0::/10
    } else if top16 >> 8 == 0xff {
        Forbidden::Multicast
    } else if top16 == 0x2001 && (bits >> 96) as u16 == 0x0db8
        || top16 == 0x0100 && bits >> 64 == 0x0100_0000_0000_0000
        || top16 == 0x2002
        || bits >> 96 == 0
    {
        // Documentation, discard-only, 6to4 (embeds any IPv4 address) and the IPv4-compatible
        // range.
        Forbidden::Reserved
    } else {
        return None;
    })
}

/// What the push engine may reach.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    allow: Vec<Net>,
}

impl Guard {
    pub fn new(allow: Vec<Net>) -> Guard {
        Guard { allow }
    }

    /// `Err` with the reason when `ip` must not be reached.
    pub fn check(&self, ip: IpAddr) -> Result<(), Forbidden> {
        let ip = canonical(ip);
        let forbidden = match ip {
            IpAddr::V4(v4) => classify_v4(v4),
            IpAddr::V6(v6) => classify_v6(v6),
        };
        match forbidden {
            Some(why) if !self.allow.iter().any(|net| net.contains(ip)) => Err(why),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_a_stranger_must_not_reach() {
        let guard = Guard::default();
        let cases: &[(&str, Option<Forbidden>)] = &[
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("2606:4700:4700::1111", None),
            ("127.0.0.1", Some(Forbidden::Loopback)),
            ("127.8.9.10", Some(Forbidden::Loopback)),
            ("::1", Some(Forbidden::Loopback)),
            ("10.1.2.3", Some(Forbidden::Private)),
            ("172.16.0.1", Some(Forbidden::Private)),
            ("172.31.255.255", Some(Forbidden::Private)),
            ("172.32.0.1", None),
            ("192.168.1.1", Some(Forbidden::Private)),
            ("169.254.169.254", Some(Forbidden::LinkLocal)),
            ("169.254.170.2", Some(Forbidden::LinkLocal)),
            ("100.64.0.1", Some(Forbidden::SharedNat)),
            ("100.127.255.254", Some(Forbidden::SharedNat)),
            ("100.128.0.1", None),
            ("224.0.0.1", Some(Forbidden::Multicast)),
            ("0.0.0.0", Some(Forbidden::Unspecified)),
            ("0.1.2.3", Some(Forbidden::Reserved)),
            ("255.255.255.255", Some(Forbidden::Reserved)),
            ("192.0.2.1", Some(Forbidden::Reserved)),
            ("::", Some(Forbidden::Unspecified)),
            ("fd00::1", Some(Forbidden::Private)),
            ("fe80::1", Some(Forbidden::LinkLocal)),
            ("ff02::1", Some(Forbidden::Multicast)),
            ("2001:db8::1", Some(Forbidden::Reserved)),
            ("2002:7f00:1::", Some(Forbidden::Reserved)),
            ("::ffff:127.0.0.1", Some(Forbidden::Loopback)),
            ("::ffff:169.254.169.254", Some(Forbidden::LinkLocal)),
            ("64:ff9b::a9fe:a9fe", Some(Forbidden::LinkLocal)),
            ("64:ff9b::808:808", None),
            ("::ffff:8.8.8.8", None),
        ];
        for (text, want) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(guard.check(ip).err(), *want, "{text}");
        }
    }

    #[test]
    fn the_allow_list_lifts_the_rule_for_its_networks_only() {
        let guard = Guard::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ]);
        for (text, allowed) in [
            ("127.0.0.1", true),
            ("::ffff:127.0.0.1", true),
            ("fd12::1", true),
            ("10.0.0.1", false),
            ("::1", false),
            ("169.254.169.254", false),
        ] {
            assert_eq!(
                guard.check(text.parse().unwrap()).is_ok(),
                allowed,
                "{text}"
            );
        }
    }

    #[test]
    fn networks_parse_or_say_why_not() {
        for (text, ok) in [
            ("10.0.0.0/8", true),
            ("10.0.0.1", true),
            ("::/0", true),
            ("fd00::/129", false),
            ("10.0.0.0/33", false),
            ("example.com/8", false),
            ("", false),
        ] {
            assert_eq!(text.parse::<Net>().is_ok(), ok, "{text}");
        }
        let net: Net = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.255.0.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert_eq!(net.to_string(), "10.0.0.0/8");
    }
}
