//! A subscription: which prices go where, when, and in what form. Parsed and checked here once,
//! for the CLI, the HTTP API and the store's rows alike.

use std::fmt;

use beast_core::Symbol;

pub use crate::store::SubscriptionRow;

/// Most assets one subscription may follow.
pub const MAX_ASSETS: usize = 150;
/// Longest target URL accepted.
pub const MAX_TARGET_LEN: usize = 2_048;
const MAX_HOST_LEN: usize = 253;
/// Interval bounds, seconds.
pub const EVERY_S: std::ops::RangeInclusive<u32> = 1..=3_600;
/// Move threshold bounds, basis points.
pub const MOVE_BPS: std::ops::RangeInclusive<u32> = 1..=10_000;
/// Minimum gap between two move-triggered deliveries, ms.
pub const MIN_GAP_MS: std::ops::RangeInclusive<u64> = 100..=3_600_000;
pub const DEFAULT_MIN_GAP_MS: u64 = 1_000;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("target {0:?}: {1}")]
    Target(String, &'static str),
    #[error("assets: {0}")]
    Assets(String),
    #[error(
        "trigger: give every_s ({}-{}) and/or move_bps ({}-{})",
        EVERY_S.start(), EVERY_S.end(), MOVE_BPS.start(), MOVE_BPS.end()
    )]
    NoTrigger,
    #[error("every_s must be {}-{} seconds", EVERY_S.start(), EVERY_S.end())]
    Every,
    #[error("move_bps must be {}-{} basis points", MOVE_BPS.start(), MOVE_BPS.end())]
    Move,
    #[error("min_gap_ms must be {}-{} ms", MIN_GAP_MS.start(), MIN_GAP_MS.end())]
    MinGap,
    #[error("format {0:?}: json, or v8 for udp:// targets")]
    Format(String),
    #[error("target {target}: {why} address {ip} is not reachable from this service")]
    Forbidden {
        target: String,
        ip: std::net::IpAddr,
        why: &'static str,
    },
    #[error("target {0}: the name does not resolve")]
    Unresolved(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Udp,
    Https,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Https => "https",
        }
    }
}

/// Where deliveries go: `udp://host:port` or `https://host[:port]/path`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub protocol: Protocol,
    /// A DNS name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    pub port: u16,
    /// HTTPS only: path and query, starting with `/`.
    pub path: String,
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, SpecError> {
        let bad = |why| SpecError::Target(text.chars().take(80).collect(), why);
        if text.len() > MAX_TARGET_LEN {
            return Err(bad("longer than 2 048 bytes"));
        }
        if text.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("contains spaces or control characters"));
        }
        let (protocol, rest) = if let Some(rest) = text.strip_prefix("udp://") {
            (Protocol::Udp, rest)
        } else if let Some(rest) = text.strip_prefix("https://") {
            (Protocol::Https, rest)
        } else {
            return Err(bad("must start with udp:// or https://"));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not accepted"));
        }
        if path.contains('#') {
            return Err(bad("a fragment has no meaning here"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("malformed host:port"))?;
        let port = match (port, protocol) {
            (Some(port), _) => port,
            (None, Protocol::Https) => 443,
            (None, Protocol::Udp) => return Err(bad("a udp:// target needs a port")),
        };
        if port == 0 {
            return Err(bad("port 0"));
        }
        let path = match protocol {
            Protocol::Udp if !path.is_empty() => return Err(bad("a udp:// target has no path")),
            Protocol::Udp => String::new(),
            Protocol::Https if path.is_empty() => "/".into(),
            Protocol::Https if path.starts_with('?') => format!("/{path}"),
            Protocol::Https => path.to_string(),
        };
        Ok(Target {
            protocol,
            host: host.to_ascii_lowercase(),
            port,
            path,
        })
    }

    /// `host:port` as a resolver takes it (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `host[:port]`, `[v6][:port]`; the host must be a valid name or address.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let valid_name = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host.contains(':') == host.parse::<std::net::Ipv6Addr>().is_ok()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':');
    if !valid_name {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host, port))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.protocol {
            Protocol::Udp => write!(f, "udp://{}", self.authority()),
            Protocol::Https if self.port == 443 && !self.host.contains(':') => {
                write!(f, "https://{}{}", self.host, self.path)
            }
            Protocol::Https => write!(f, "https://{}{}", self.authority(), self.path),
        }
    }
}

/// When a subscription is delivered: every `every_s` seconds, and/or when an asset's price has
/// moved `move_bps` basis points since it was last delivered, no sooner than `min_gap_ms` after
/// the previous move-triggered delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub every_s: Option<u32>,
    pub move_bps: Option<u32>,
    pub min_gap_ms: u64,
}

impl Trigger {
    pub fn new(
        every_s: Option<u32>,
        move_bps: Option<u32>,
        min_gap_ms: Option<u64>,
    ) -> Result<Trigger, SpecError> {
        if every_s.is_none() && move_bps.is_none() {
            return Err(SpecError::NoTrigger);
        }
        if every_s.is_some_and(|s| !EVERY_S.contains(&s)) {
            return Err(SpecError::Every);
        }
        if move_bps.is_some_and(|b| !MOVE_BPS.contains(&b)) {
            return Err(SpecError::Move);
        }
        let min_gap_ms = min_gap_ms.unwrap_or(DEFAULT_MIN_GAP_MS);
        if !MIN_GAP_MS.contains(&min_gap_ms) {
            return Err(SpecError::MinGap);
        }
        Ok(Trigger {
            every_s,
            move_bps,
            min_gap_ms,
        })
    }
}

/// How prices are written into a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    /// Binary v8 records (docs/PROTOCOL-UDP.md), UDP only.
    V8,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::V8 => "v8",
        }
    }

    pub fn parse(text: &str, protocol: Protocol) -> Result<Format, SpecError> {
        match (text, protocol) {
            ("json", _) => Ok(Format::Json),
            ("v8", Protocol::Udp) => Ok(Format::V8),
            _ => Err(SpecError::Format(text.chars().take(20).collect())),
        }
    }
}

/// Where a subscription is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubState {
    Active,
    /// Paused by its owner; resumed by its owner.
    Paused,
    /// Stopped by the push engine (the endpoint answered 410, or failed too long), with why.
    Disabled(String),
}

impl SubState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SubState::Active => "active",
            SubState::Paused => "paused",
            SubState::Disabled(_) => "disabled",
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            SubState::Disabled(reason) => reason,
            _ => "",
        }
    }

    fn from_parts(state: &str, reason: &str) -> Option<SubState> {
        match state {
            "active" => Some(SubState::Active),
            "paused" => Some(SubState::Paused),
            "disabled" => Some(SubState::Disabled(reason.to_string())),
            _ => None,
        }
    }
}

/// What an owner asks for; checked by [`Spec::check`].
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub target: String,
    pub assets: Vec<String>,
    #[serde(default)]
    pub every_s: Option<u32>,
    #[serde(default)]
    pub move_bps: Option<u32>,
    #[serde(default)]
    pub min_gap_ms: Option<u64>,
    #[serde(default)]
    pub format: Option<String>,
}

/// A spec that passed every check but the address one (which needs DNS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub target: Target,
    pub assets: Vec<Symbol>,
    pub trigger: Trigger,
    pub format: Format,
}

impl Spec {
    pub fn check(&self) -> Result<Checked, SpecError> {
        let target = Target::parse(&self.target)?;
        let assets = parse_assets(self.assets.iter().map(String::as_str))?;
        let trigger = Trigger::new(self.every_s, self.move_bps, self.min_gap_ms)?;
        let format = Format::parse(self.format.as_deref().unwrap_or("json"), target.protocol)?;
        Ok(Checked {
            target,
            assets,
            trigger,
            format,
        })
    }
}

/// 1 to [`MAX_ASSETS`] distinct symbols, in the order given.
pub fn parse_assets<'a>(texts: impl Iterator<Item = &'a str>) -> Result<Vec<Symbol>, SpecError> {
    let mut assets: Vec<Symbol> = Vec::new();
    for text in texts {
        let symbol = Symbol::parse(text.trim().as_bytes()).map_err(|e| {
            SpecError::Assets(format!(
                "{:?}: {e}",
                text.chars().take(20).collect::<String>()
            ))
        })?;
        if !assets.contains(&symbol) {
            assets.push(symbol);
        }
        if assets.len() > MAX_ASSETS {
            return Err(SpecError::Assets(format!("at most {MAX_ASSETS}")));
        }
    }
    if assets.is_empty() {
        return Err(SpecError::Assets("at least one".into()));
    }
    Ok(assets)
}

/// A subscription as the store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub id: u64,
    /// The API key that owns it.
    pub owner: u64,
    pub target: Target,
    pub assets: Vec<Symbol>,
    pub trigger: Trigger,
    pub format: Format,
    pub secret: String,
    /// The secret before the last rotation, signed with too until `previous_until_ms`.
    pub previous_secret: Option<String>,
    pub previous_until_ms: u64,
    pub state: SubState,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Sequence numbers below this may have been used: a restarted engine starts here.
    pub seq_floor: u64,
}

impl Subscription {
    /// The secrets deliveries are signed with at `now_ms`: the current one, and the previous
    /// one while the rotation overlaps.
    pub fn signing_secrets(&self, now_ms: u64) -> impl Iterator<Item = &str> {
        let previous = self
            .previous_secret
            .as_deref()
            .filter(|_| now_ms < self.previous_until_ms);
        std::iter::once(self.secret.as_str()).chain(previous)
    }

    /// The owner's view: everything but the secrets.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "owner_key_id": self.owner,
            "target": self.target.to_string(),
            "assets": self.assets.iter().map(Symbol::as_str).collect::<Vec<_>>(),
            "every_s": self.trigger.every_s,
            "move_bps": self.trigger.move_bps,
            "min_gap_ms": self.trigger.min_gap_ms,
            "format": self.format.as_str(),
            "state": self.state.as_str(),
            "disabled_reason": match &self.state {
                SubState::Disabled(reason) => Some(reason.as_str()),
                _ => None,
            },
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
        })
    }

    pub fn to_row(&self) -> SubscriptionRow {
        SubscriptionRow {
            id: self.id,
            owner: self.owner,
            target: self.target.to_string(),
            assets: self
                .assets
                .iter()
                .map(Symbol::as_str)
                .collect::<Vec<_>>()
                .join(","),
            every_s: self.trigger.every_s,
            move_bps: self.trigger.move_bps,
            min_gap_ms: self.trigger.min_gap_ms,
            format: self.format.as_str().into(),
            secret: self.secret.clone(),
            previous_secret: self.previous_secret.clone(),
            previous_until_ms: self.previous_until_ms,
            state: self.state.as_str().into(),
            reason: self.state.reason().into(),
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            seq_floor: self.seq_floor,
        }
    }

    pub fn from_row(row: SubscriptionRow) -> Result<Subscription, String> {
        let corrupt = |what: &str| format!("subscription {}: {what}", row.id);
        let target = Target::parse(&row.target).map_err(|e| corrupt(&e.to_string()))?;
        let assets = parse_assets(row.assets.split(',')).map_err(|e| corrupt(&e.to_string()))?;
        let trigger = Trigger::new(row.every_s, row.move_bps, Some(row.min_gap_ms))
            .map_err(|e| corrupt(&e.to_string()))?;
        let format =
            Format::parse(&row.format, target.protocol).map_err(|e| corrupt(&e.to_string()))?;
        let state = SubState::from_parts(&row.state, &row.reason)
            .ok_or_else(|| corrupt(&format!("state {:?}", row.state)))?;
        Ok(Subscription {
            id: row.id,
            owner: row.owner,
            target,
            assets,
            trigger,
            format,
            secret: row.secret,
            previous_secret: row.previous_secret,
            previous_until_ms: row.previous_until_ms,
            state,
            created_ms: row.created_ms,
            updated_ms: row.updated_ms,
            seq_floor: row.seq_floor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_or_say_why_not() {
        let cases: &[(&str, Option<(Protocol, &str, u16, &str)>)] = &[
            (
                "udp://127.0.0.1:9000",
                Some((Protocol::Udp, "127.0.0.1", 9000, "")),
            ),
            ("udp://[::1]:9000", Some((Protocol::Udp, "::1", 9000, ""))),
            (
                "udp://Prices.Example.com:53",
                Some((Protocol::Udp, "prices.example.com", 53, "")),
            ),
            (
                "https://hooks.example.com",
                Some((Protocol::Https, "hooks.example.com", 443, "/")),
            ),
            (
                "https://hooks.example.com:8443/in?x=1",
                Some((Protocol::Https, "hooks.example.com", 8443, "/in?x=1")),
            ),
            (
                "https://h.example?x=1",
                Some((Protocol::Https, "h.example", 443, "/?x=1")),
            ),
            (
                "https://[2001:db8::1]:444/p",
                Some((Protocol::Https, "2001:db8::1", 444, "/p")),
            ),
            ("udp://127.0.0.1", None),
            ("udp://127.0.0.1:0", None),
            ("udp://127.0.0.1:9000/x", None),
            ("http://hooks.example.com/", None),
            ("https://user:pw@hooks.example.com/", None),
            ("https://hooks.example.com/#frag", None),
            ("https://hooks example.com/", None),
            ("https://:443/", None),
            ("https://[nope]:443/", None),
            ("https://a:b:c/", None),
            ("https://host:99999/", None),
            ("ftp://x", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = Target::parse(text)
                .ok()
                .map(|t| (t.protocol, t.host.clone(), t.port, t.path.clone()));
            let want = want.map(|(p, h, port, path)| (p, h.to_string(), port, path.to_string()));
            assert_eq!(got, want, "{text}");
        }
        let long = format!("https://h.example/{}", "a".repeat(MAX_TARGET_LEN));
        assert!(Target::parse(&long).is_err());
    }

    #[test]
    fn targets_print_as_they_parse() {
        for text in [
            "udp://127.0.0.1:9000",
            "udp://[::1]:9000",
            "https://hooks.example.com/in",
            "https://hooks.example.com:8443/in?x=1",
            "https://[2001:db8::1]:443/p",
        ] {
            let target = Target::parse(text).unwrap();
            assert_eq!(
                Target::parse(&target.to_string()).unwrap(),
                target,
                "{text}"
            );
        }
    }

    #[test]
    fn triggers_are_bounded() {
        for (every, moved, gap, ok) in [
            (Some(1), None, None, true),
            (Some(3_600), None, None, true),
            (None, Some(25), Some(500), true),
            (Some(60), Some(10), None, true),
            (None, None, None, false),
            (Some(0), None, None, false),
            (Some(3_601), None, None, false),
            (None, Some(0), None, false),
            (None, Some(10_001), None, false),
            (None, Some(5), Some(99), false),
        ] {
            assert_eq!(
                Trigger::new(every, moved, gap).is_ok(),
                ok,
                "{every:?} {moved:?} {gap:?}"
            );
        }
    }

    #[test]
    fn specs_are_checked_whole() {
        let spec = |target: &str, assets: &[&str], format: Option<&str>| Spec {
            target: target.into(),
            assets: assets.iter().map(|s| (*s).into()).collect(),
            every_s: Some(1),
            format: format.map(Into::into),
            ..Spec::default()
        };
        assert!(
            spec("udp://127.0.0.1:9", &["btc", "ETH", "BTC"], Some("v8"))
                .check()
                .is_ok()
        );
        assert_eq!(
            spec("udp://127.0.0.1:9", &["btc", "ETH", "BTC"], None)
                .check()
                .unwrap()
                .assets
                .len(),
            2
        );
        assert!(matches!(
            spec("https://h.example/", &["BTC"], Some("v8")).check(),
            Err(SpecError::Format(_))
        ));
        assert!(matches!(
            spec("udp://127.0.0.1:9", &[], None).check(),
            Err(SpecError::Assets(_))
        ));
        assert!(matches!(
            spec("udp://127.0.0.1:9", &["B-TC"], None).check(),
            Err(SpecError::Assets(_))
        ));
        let many: Vec<String> = (0..=MAX_ASSETS).map(|i| format!("A{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            spec("udp://127.0.0.1:9", &many, None).check(),
            Err(SpecError::Assets(_))
        ));
    }

    #[test]
    fn rows_round_trip_and_secrets_overlap_then_expire() {
        let checked = Spec {
            target: "https://h.example:8443/in".into(),
            assets: vec!["BTC".into(), "ETH".into()],
            move_bps: Some(20),
            ..Spec::default()
        }
        .check()
        .unwrap();
        let sub = Subscription {
            id: 7,
            owner: 3,
            target: checked.target,
            assets: checked.assets,
            trigger: checked.trigger,
            format: checked.format,
            secret: "whsec_new".into(),
            previous_secret: Some("whsec_old".into()),
            previous_until_ms: 2_000,
            state: SubState::Disabled("410 Gone".into()),
            created_ms: 1,
            updated_ms: 2,
            seq_floor: 3_600,
        };
        assert_eq!(Subscription::from_row(sub.to_row()).unwrap(), sub);
        assert_eq!(
            sub.signing_secrets(1_999).collect::<Vec<_>>(),
            ["whsec_new", "whsec_old"]
        );
        assert_eq!(
            sub.signing_secrets(2_000).collect::<Vec<_>>(),
            ["whsec_new"]
        );
        let view = sub.view().to_string();
        assert!(!view.contains("whsec"), "{view}");
        let mut row = sub.to_row();
        row.state = "weird".into();
        assert!(Subscription::from_row(row).is_err());
    }
}
