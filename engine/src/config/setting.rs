//! How one setting's text becomes a typed value, and how the value is shown back.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use beast_core::Symbol;

/// A value that can be given as text on the command line, in the environment or in beast.toml.
pub trait Setting: Sized {
    /// Placeholder in `--help` (`--tcp-port-lpo <PORT>`).
    const VALUE_NAME: &'static str;
    /// Secrets are masked by [`Setting::show`] and their environment values hidden in `--help`.
    const SECRET: bool = false;
    /// What the operator may write, for `--help` and the README.
    fn kind() -> String;
    fn parse_setting(text: &str) -> Result<Self, String>;
    /// The value as `beast config show` prints it; secrets masked.
    fn show(&self) -> String;
    /// The value as `--help` and the README document it, when it is the default. Defaults
    /// that depend on the machine (the host name) describe themselves instead.
    fn document(&self) -> String {
        self.show()
    }
    /// A switch (`--demo-walk`) may be given without a value, meaning this.
    const WITHOUT_VALUE: Option<&'static str> = None;
    /// Operator text as it may appear in an error message: secrets masked.
    fn redact(text: &str) -> String {
        if Self::SECRET {
            MASK.into()
        } else {
            text.into()
        }
    }
}

/// Shown for a secret that is set.
pub(crate) const MASK: &str = "********";

impl<T: Setting> Setting for Option<T> {
    const VALUE_NAME: &'static str = T::VALUE_NAME;
    const SECRET: bool = T::SECRET;
    fn kind() -> String {
        format!("{}; empty or unset for none", T::kind())
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            Ok(None)
        } else {
            T::parse_setting(text).map(Some)
        }
    }
    fn show(&self) -> String {
        self.as_ref().map_or_else(|| "(none)".to_string(), T::show)
    }
    fn redact(text: &str) -> String {
        T::redact(text)
    }
}

/// A TCP or UDP port; 0 lets the kernel pick a free one (tests use it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Port(pub u16);

impl Setting for Port {
    const VALUE_NAME: &'static str = "PORT";
    fn kind() -> String {
        "port 0-65535 (0: any free port)".into()
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        text.trim()
            .parse::<u16>()
            .map(Port)
            .map_err(|_| "not a port number (0-65535)".into())
    }
    fn show(&self) -> String {
        self.0.to_string()
    }
}

/// An integer within `MIN..=MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Int<MIN, MAX> {
    /// `value` clamped into the range (defaults are written in range; this keeps them total).
    pub const fn new(value: u64) -> Self {
        Int(if value < MIN {
            MIN
        } else if value > MAX {
            MAX
        } else {
            value
        })
    }
    pub const fn get(self) -> u64 {
        self.0
    }
    pub fn get_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl<const MIN: u64, const MAX: u64> Setting for Int<MIN, MAX> {
    const VALUE_NAME: &'static str = "N";
    fn kind() -> String {
        format!("integer {MIN}-{MAX}")
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        let value: u64 = text
            .trim()
            .parse()
            .map_err(|_| format!("not an integer ({MIN}-{MAX})"))?;
        if (MIN..=MAX).contains(&value) {
            Ok(Int(value))
        } else {
            Err(format!("out of range ({MIN}-{MAX})"))
        }
    }
    fn show(&self) -> String {
        self.0.to_string()
    }
}

/// On or off. As a flag it may stand alone (`--demo-walk` means true).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch(pub bool);

impl Setting for Switch {
    const VALUE_NAME: &'static str = "BOOL";
    const WITHOUT_VALUE: Option<&'static str> = Some("true");
    fn kind() -> String {
        "true | false".into()
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Switch(true)),
            "false" | "0" | "no" | "off" => Ok(Switch(false)),
            _ => Err("expected true or false".into()),
        }
    }
    fn show(&self) -> String {
        self.0.to_string()
    }
}

/// An IP address to listen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindAddr(pub std::net::IpAddr);

impl Setting for BindAddr {
    const VALUE_NAME: &'static str = "IP";
    fn kind() -> String {
        "IPv4 or IPv6 address".into()
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map(BindAddr)
            .map_err(|_| "not an IP address".into())
    }
    fn show(&self) -> String {
        self.0.to_string()
    }
}

/// A fraction between 0 and 1, e.g. a success-ratio threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratio(pub f64);

impl Setting for Ratio {
    const VALUE_NAME: &'static str = "RATIO";
    fn kind() -> String {
        "number 0-1".into()
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        let value: f64 = text
            .trim()
            .parse()
            .map_err(|_| "not a number (0-1)".to_string())?;
        if (0.0..=1.0).contains(&value) {
            Ok(Ratio(value))
        } else {
            Err("out of range (0-1)".into())
        }
    }
    fn show(&self) -> String {
        format!("{:.2}", self.0)
    }
}

/// A short identifier: node names, regions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(pub String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Setting for Name {
    const VALUE_NAME: &'static str = "NAME";
    fn kind() -> String {
        "1-64 letters, digits, '.', '_' or '-'".into()
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        let valid = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Name(text.to_string()))
        } else {
            Err(format!("expected {}", Self::kind()))
        }
    }
    fn show(&self) -> String {
        self.0.clone()
    }
}

/// This node's name: the host name unless set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeName {
    Host(Name),
    Set(Name),
}

impl NodeName {
    /// The host name, which is unique per Fargate task; `beast` where it cannot be read.
    pub fn host() -> NodeName {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .and_then(|h| Name::parse_setting(h.trim()).ok())
            .unwrap_or_else(|| Name("beast".into()));
        NodeName::Host(host)
    }

    pub fn as_str(&self) -> &str {
        match self {
            NodeName::Host(name) | NodeName::Set(name) => name.as_str(),
        }
    }
}

impl Setting for NodeName {
    const VALUE_NAME: &'static str = "NAME";
    fn kind() -> String {
        Name::kind()
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        Name::parse_setting(text).map(NodeName::Set)
    }
    fn show(&self) -> String {
        self.as_str().to_string()
    }
    fn document(&self) -> String {
        match self {
            NodeName::Host(_) => "the host name".into(),
            NodeName::Set(name) => name.show(),
        }
    }
}

/// A filesystem path (directories are created and checked when used, not here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathSetting(pub PathBuf);

impl Setting for PathSetting {
    const VALUE_NAME: &'static str = "PATH";
    fn kind() -> String {
        "path".into()
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.contains('\0') {
            Err("not a path".into())
        } else {
            Ok(PathSetting(PathBuf::from(text)))
        }
    }
    fn show(&self) -> String {
        self.0.display().to_string()
    }
}

/// A secret such as the admin key: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that compares or sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Setting for Secret {
    const VALUE_NAME: &'static str = "SECRET";
    const SECRET: bool = true;
    fn kind() -> String {
        "secret, 8-256 printable characters".into()
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        let printable = text.bytes().all(|b| b.is_ascii_graphic());
        if (8..=256).contains(&text.len()) && printable {
            Ok(Secret(text.to_string()))
        } else {
            Err("must be 8-256 printable ASCII characters without spaces".into())
        }
    }
    fn show(&self) -> String {
        MASK.into()
    }
}

/// Comma-separated asset symbols (`btc,eth,1inch`); stored upper-case, no duplicates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetList(pub Vec<Symbol>);

impl AssetList {
    /// Most assets one list may name.
    pub(crate) const MAX_LEN: usize = 1000;

    pub(crate) fn of(symbols: &[&str]) -> AssetList {
        AssetList(
            symbols
                .iter()
                .filter_map(|s| Symbol::parse(s.as_bytes()).ok())
                .collect(),
        )
    }
}

impl Setting for AssetList {
    const VALUE_NAME: &'static str = "ASSETS";
    fn kind() -> String {
        format!("comma-separated asset symbols, at most {}", Self::MAX_LEN)
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        let mut symbols = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let symbol =
                Symbol::parse(part.as_bytes()).map_err(|e| format!("asset {part:?}: {e}"))?;
            if symbols.contains(&symbol) {
                return Err(format!("asset {symbol} listed twice"));
            }
            symbols.push(symbol);
        }
        if symbols.len() > Self::MAX_LEN {
            return Err(format!("more than {} assets", Self::MAX_LEN));
        }
        Ok(AssetList(symbols))
    }
    fn show(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A `tracing` filter directive such as `info` or `beast_engine=debug,warn`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFilter(pub String);

impl Setting for LogFilter {
    const VALUE_NAME: &'static str = "FILTER";
    fn kind() -> String {
        "log filter (error, warn, info, debug, trace, or target=level,...)".into()
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        tracing_subscriber::EnvFilter::try_new(text).map_err(|e| e.to_string())?;
        Ok(LogFilter(text.to_string()))
    }
    fn show(&self) -> String {
        self.0.clone()
    }
}

/// Declares a setting that is one of a few words, matched case-insensitively.
macro_rules! word_setting {
    ($(#[$meta:meta])* pub enum $Name:ident, $value_name:literal { $($(#[$vmeta:meta])* $Variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $Name { $($(#[$vmeta])* $Variant),+ }

        impl $Name {
            pub fn as_str(self) -> &'static str {
                match self { $($Name::$Variant => $text),+ }
            }
        }

        impl $crate::config::setting::Setting for $Name {
            const VALUE_NAME: &'static str = $value_name;
            fn kind() -> String {
                [$($text),+].join(" | ")
            }
            fn parse_setting(text: &str) -> Result<Self, String> {
                let text = text.trim();
                $(if text.eq_ignore_ascii_case($text) { return Ok($Name::$Variant); })+
                Err(format!("expected one of: {}", Self::kind()))
            }
            fn show(&self) -> String {
                self.as_str().to_string()
            }
        }
    };
}

/// Networks in CIDR notation (`127.0.0.0/8,fd00::/8`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetList(pub Vec<crate::push::guard::Net>);

impl NetList {
    const MAX_LEN: usize = 64;
}

impl Setting for NetList {
    const VALUE_NAME: &'static str = "NETS";
    fn kind() -> String {
        format!(
            "comma-separated IP networks in CIDR notation, at most {}",
            Self::MAX_LEN
        )
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        let nets = text
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<crate::push::guard::Net>, String>>()?;
        if nets.len() > Self::MAX_LEN {
            return Err(format!("more than {} networks", Self::MAX_LEN));
        }
        Ok(NetList(nets))
    }
    fn show(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

word_setting! {
    /// What this node serves.
    pub enum ServerType, "TYPE" {
        /// Prices (LPO ports) and reports (LRS ports).
        AppReport => "APP_REPORT_SERVER",
        /// Pushes prices to subscribers.
        Webhook => "WEBHOOK_SERVER",
    }
}

word_setting! {
    /// Which I/O backend the reactors use.
    pub enum IoChoice, "BACKEND" {
        /// io_uring when the kernel and sandbox allow it, otherwise epoll (logged once).
        Auto => "auto",
        Uring => "uring",
        Epoll => "epoll",
    }
}

word_setting! {
    /// Where prices come from.
    pub enum FeedMode, "FEEDS" {
        /// The six exchanges' public WebSocket APIs.
        Live => "live",
        /// The built-in exchange simulator, started in this process.
        Sim => "sim",
        /// No feeds: only `--prices` and `--demo-walk`.
        Off => "off",
    }
}

word_setting! {
    /// What drives the simulator's prices.
    pub enum SimSource, "SOURCE" {
        Samples => "samples",
        Walk => "walk",
    }
}

/// A venue name, or empty for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VenueName(pub beast_core::Venue);

impl Setting for VenueName {
    const VALUE_NAME: &'static str = "VENUE";
    fn kind() -> String {
        "coinbase | gemini | kraken | gateio | cryptocom | okx".into()
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        beast_core::Venue::from_name(text)
            .map(VenueName)
            .ok_or_else(|| format!("expected one of: {}", Self::kind()))
    }
    fn show(&self) -> String {
        self.0.name().into()
    }
}

word_setting! {
    /// Log line format.
    pub enum LogFormat, "FORMAT" {
        Text => "text",
        Json => "json",
    }
}

word_setting! {
    /// A log level.
    pub enum LogLevel, "LEVEL" {
        Error => "error",
        Warn => "warn",
        Info => "info",
        Debug => "debug",
        Trace => "trace",
    }
}

/// A service URL, checked for its scheme, host and port; any password is masked when shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Url<K: UrlKind> {
    text: String,
    /// Byte range of the password inside `text`, if any.
    password: Option<(usize, usize)>,
    kind: PhantomData<K>,
}

/// The schemes a URL setting accepts.
pub trait UrlKind {
    const SCHEMES: &'static [&'static str];
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKind;
impl UrlKind for CacheKind {
    const SCHEMES: &'static [&'static str] = &["redis", "rediss", "valkey", "valkeys"];
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseKind;
impl UrlKind for DatabaseKind {
    const SCHEMES: &'static [&'static str] = &["postgres", "postgresql"];
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpKind;
impl UrlKind for HttpKind {
    const SCHEMES: &'static [&'static str] = &["https", "http"];
}

impl<K: UrlKind> Url<K> {
    /// The full URL, password included: only for the client that connects with it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The URL with any password replaced by the mask, safe to log.
    pub fn masked(&self) -> String {
        match self.password {
            Some((start, end)) => {
                format!(
                    "{}{MASK}{}",
                    self.text.get(..start).unwrap_or(""),
                    self.text.get(end..).unwrap_or("")
                )
            }
            None => self.text.clone(),
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("not a URL (scheme://host...)")?;
        if !K::SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
            return Err(format!(
                "URL scheme must be one of {}",
                K::SCHEMES.join(", ")
            ));
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = rest.get(..authority_end).unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed '[' in URL host")?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
        if !host_ok {
            return Err("URL has no valid host".into());
        }
        if let Some(port) = port {
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or("URL port is not a number 1-65535")?;
        }
        if text.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err("URL contains spaces or control characters".into());
        }
        let password = userinfo.and_then(|user| {
            let colon = user.find(':')?;
            let start = scheme.len() + 3 + colon + 1;
            Some((start, scheme.len() + 3 + user.len()))
        });
        Ok(Url {
            text: text.to_string(),
            password,
            kind: PhantomData,
        })
    }
}

impl<K: UrlKind> fmt::Debug for Url<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl<K: UrlKind> Setting for Url<K> {
    const VALUE_NAME: &'static str = "URL";
    // A URL may carry a password: keep its environment value out of `--help`.
    const SECRET: bool = true;
    fn kind() -> String {
        format!("{} URL", K::SCHEMES.join("/"))
    }
    fn parse_setting(text: &str) -> Result<Self, String> {
        Url::parse(text)
    }
    fn show(&self) -> String {
        self.masked()
    }
    /// Even a URL that failed to parse keeps its password out of the error message.
    fn redact(text: &str) -> String {
        let Some((scheme, rest)) = text.split_once("://") else {
            return text.into();
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        match rest.get(..authority_end).and_then(|a| a.rsplit_once('@')) {
            Some((userinfo, _)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or("");
                let after = rest.get(userinfo.len()..).unwrap_or("");
                format!("{scheme}://{user}:{MASK}{after}")
            }
            _ => text.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(Port::parse_setting("8080"), Ok(Port(8080)));
        assert_eq!(Port::parse_setting("0"), Ok(Port(0)));
        assert!(Port::parse_setting("70000").is_err());
        assert!(Port::parse_setting("-1").is_err());
        assert!(Port::parse_setting("http").is_err());
        assert_eq!(Int::<1, 10>::parse_setting("10"), Ok(Int(10)));
        assert!(Int::<1, 10>::parse_setting("11").is_err());
        assert!(Int::<1, 10>::parse_setting("0").is_err());
        assert_eq!(
            Ratio::parse_setting("0.50").map(|r| r.show()),
            Ok("0.50".into())
        );
        assert!(Ratio::parse_setting("1.5").is_err());
        assert!(Ratio::parse_setting("NaN").is_err());
        assert_eq!(
            ServerType::parse_setting("webhook_server"),
            Ok(ServerType::Webhook)
        );
        assert!(ServerType::parse_setting("PRICE_SERVER").is_err());
        assert_eq!(Option::<Port>::parse_setting(""), Ok(None));
        assert_eq!(
            AssetList::parse_setting("btc, ETH,1inch").map(|l| l.show()),
            Ok("btc,eth,1inch".into())
        );
        assert!(AssetList::parse_setting("btc,btc").is_err());
        assert!(AssetList::parse_setting("btc-usd").is_err());
        assert!(Name::parse_setting("node 1").is_err());
        assert!(Secret::parse_setting("short").is_err());
        assert!(LogFilter::parse_setting("info").is_ok());
        assert!(LogFilter::parse_setting("beast=loud").is_err());
    }

    #[test]
    fn urls_are_checked_and_passwords_masked() {
        type Db = Url<DatabaseKind>;
        let cases: &[(&str, Result<&str, ()>)] = &[
            (
                "postgres://beast:hunter2@db.internal:5432/beast",
                Ok("postgres://beast:********@db.internal:5432/beast"),
            ),
            (
                "postgresql://localhost/beast?sslmode=require",
                Ok("postgresql://localhost/beast?sslmode=require"),
            ),
            (
                "postgres://user@[::1]:5432/db",
                Ok("postgres://user@[::1]:5432/db"),
            ),
            ("mysql://localhost/beast", Err(())),
            ("postgres://", Err(())),
            ("postgres://host:99999/db", Err(())),
            ("localhost:5432", Err(())),
            ("postgres://ho st/db", Err(())),
        ];
        for (text, expected) in cases {
            let got = Db::parse_setting(text).map(|u| u.show()).map_err(|_| ());
            assert_eq!(got.as_deref(), expected.as_ref().map(|s| *s), "{text}");
        }
        assert_eq!(Db::redact("mysql://u:pw@h/d"), "mysql://u:********@h/d");
        assert_eq!(Db::redact("nonsense"), "nonsense");
        let url = Db::parse_setting("postgres://a:b@h/d").unwrap();
        assert_eq!(url.expose(), "postgres://a:b@h/d");
        assert_eq!(format!("{url:?}"), "postgres://a:********@h/d");
        assert!(Url::<CacheKind>::parse_setting("redis://127.0.0.1:6379/15").is_ok());
        assert!(Url::<HttpKind>::parse_setting("http://127.0.0.1:54566/123/usage").is_ok());
    }
}
