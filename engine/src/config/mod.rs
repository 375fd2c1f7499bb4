//! Configuration: every setting from a flag, the environment, beast.toml or its default, in that
//! order of precedence, with where each value came from.
//!
//! Each subsystem declares its settings once (`settings_group!`), which yields its clap
//! arguments, its typed config struct, its beast.toml keys and its documentation. A bad value
//! stops start-up with one line naming the setting and where it came from.

mod engine;
mod feeds;
pub(crate) mod file;
pub(crate) mod group;
mod params;
mod push;
mod runtime;
mod server;
pub mod setting;
mod stores;

use std::fmt;
use std::path::{Path, PathBuf};

use clap::ArgMatches;
use clap::parser::ValueSource;

pub use engine::{EngineArgs, EngineConfig};
pub use feeds::{FeedArgs, FeedConfig};
pub use file::FileValues;
pub use params::{Params, ParamsArgs};
pub use push::{PushArgs, PushConfig};
pub use runtime::{RuntimeArgs, RuntimeConfig};
pub use server::{ServerArgs, ServerConfig};
pub use setting::{Port, Setting};
pub use stores::{StoreArgs, StoreConfig};

/// The beast.toml read when `--config` is not given, if it exists.
pub(crate) const DEFAULT_CONFIG_FILE: &str = "beast.toml";

/// Every setting, as flags and environment variables; flattened into the commands that use them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub stores: StoreArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub feeds: FeedArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub params: ParamsArgs,
    #[command(flatten)]
    pub push: PushArgs,
}

/// The effective configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub server: ServerConfig,
    pub stores: StoreConfig,
    pub engine: EngineConfig,
    pub feeds: FeedConfig,
    pub runtime: RuntimeConfig,
    pub params: Params,
    pub push: PushConfig,
}

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env,
    File,
    Default,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Flag => "flag",
            Origin::Env => "env",
            Origin::File => "file",
            Origin::Default => "default",
        }
    }
}

/// A setting's names.
#[derive(Clone, Copy, Debug)]
pub struct SettingId {
    /// beast.toml key, and the flag in kebab case.
    pub key: &'static str,
    pub env: &'static str,
}

impl SettingId {
    pub fn flag(self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }
}

/// A setting's documentation, for the README table.
#[derive(Clone, Debug)]
pub struct SettingDoc {
    pub key: &'static str,
    pub env: &'static str,
    pub heading: &'static str,
    pub help: &'static str,
    pub kind: String,
    pub default: String,
}

/// One effective value and its origin, for `beast config show`.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub id: SettingId,
    /// The value as shown: secrets masked.
    pub shown: String,
    pub origin: Origin,
}

/// The outcome of loading: the configuration and how every value was arrived at.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub file: Option<PathBuf>,
    pub settings: Vec<Resolved>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value {value:?} for {name} (from {origin}): {reason}")]
    Invalid {
        name: String,
        origin: String,
        value: String,
        reason: String,
    },
    #[error("cannot read config file {}: {source}", path.display())]
    FileRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {} is not valid TOML (line {line}): {message}", path.display())]
    FileSyntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("setting {key:?} in {} (line {line}) must be a string, number, boolean or list of them", path.display())]
    FileType {
        path: PathBuf,
        key: String,
        line: usize,
    },
    #[error("unknown setting {key:?} in {} (line {line}); `beast config show` lists every setting", path.display())]
    UnknownKey {
        path: PathBuf,
        key: String,
        line: usize,
    },
    #[error("{first} and {second} are both port {port}: ports must differ")]
    PortClash {
        first: String,
        second: String,
        port: u16,
    },
}

/// Resolves settings one by one, recording where each value came from.
pub(crate) struct Resolver<'a> {
    matches: Option<&'a ArgMatches>,
    file: &'a mut FileValues,
    settings: Vec<Resolved>,
}

impl Resolver<'_> {
    /// `cli` is clap's value (from a flag or the environment), if any.
    pub(crate) fn resolve<T: Setting>(
        &mut self,
        id: SettingId,
        cli: Option<&str>,
        default: impl FnOnce() -> T,
    ) -> Result<T, ConfigError> {
        let file_value = self.file.take(id.key);
        let file_path = self.file.path().map(Path::to_path_buf);
        let invalid =
            |name: String, origin: String, text: &str, reason: String| ConfigError::Invalid {
                name,
                origin,
                value: T::redact(text),
                reason,
            };
        // A bad file value fails even when a flag overrides it: the file is wrong either way.
        let from_file = match &file_value {
            Some(v) => Some(T::parse_setting(&v.text).map_err(|reason| {
                let path = file_path
                    .as_deref()
                    .map_or_else(String::new, |p| p.display().to_string());
                invalid(
                    id.key.to_string(),
                    format!("{path} line {}", v.line),
                    &v.text,
                    reason,
                )
            })?),
            None => None,
        };
        let (value, origin) = if let Some(text) = cli {
            let from_env =
                self.matches.and_then(|m| m.value_source(id.key)) == Some(ValueSource::EnvVariable);
            let (name, origin) = if from_env {
                (id.env.to_string(), Origin::Env)
            } else {
                (id.flag(), Origin::Flag)
            };
            let what = if from_env {
                "environment"
            } else {
                "command line"
            };
            (
                T::parse_setting(text)
                    .map_err(|reason| invalid(name, what.into(), text, reason))?,
                origin,
            )
        } else if let Some(value) = from_file {
            (value, Origin::File)
        } else {
            (default(), Origin::Default)
        };
        self.settings.push(Resolved {
            id,
            shown: value.show(),
            origin,
        });
        Ok(value)
    }

    fn origin_of(&self, key: &str) -> Option<&Resolved> {
        self.settings.iter().find(|r| r.id.key == key)
    }
}

impl Config {
    /// Resolves every setting. `matches` are the clap matches of the command that flattened
    /// `args` (to tell flags from environment variables); `file` is the parsed beast.toml.
    pub fn resolve(
        args: &ConfigArgs,
        matches: Option<&ArgMatches>,
        mut file: FileValues,
    ) -> Result<Loaded, ConfigError> {
        let mut resolver = Resolver {
            matches,
            file: &mut file,
            settings: Vec::new(),
        };
        let config = Config {
            server: args.server.resolve(&mut resolver)?,
            stores: args.stores.resolve(&mut resolver)?,
            engine: args.engine.resolve(&mut resolver)?,
            feeds: args.feeds.resolve(&mut resolver)?,
            runtime: args.runtime.resolve(&mut resolver)?,
            params: args.params.resolve(&mut resolver)?,
            push: args.push.resolve(&mut resolver)?,
        };
        if let Some((key, line)) = resolver.file.leftover() {
            let path = resolver
                .file
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            return Err(ConfigError::UnknownKey {
                path,
                key: key.to_string(),
                line,
            });
        }
        config.check_ports(&resolver)?;
        let settings = resolver.settings;
        Ok(Loaded {
            config,
            file: file.path().map(Path::to_path_buf),
            settings,
        })
    }

    /// Reads the config file (if any) and resolves. `explicit` files must exist; the default
    /// `beast.toml` is read only if present.
    pub fn load(
        args: &ConfigArgs,
        matches: Option<&ArgMatches>,
        explicit: Option<&Path>,
    ) -> Result<Loaded, ConfigError> {
        let file = match explicit {
            Some(path) => FileValues::load(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                FileValues::load(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => FileValues::empty(),
        };
        Config::resolve(args, matches, file)
    }

    /// Every setting's documentation, in declaration order.
    pub fn docs() -> Vec<SettingDoc> {
        [
            ServerConfig::docs(),
            StoreConfig::docs(),
            EngineConfig::docs(),
            FeedConfig::docs(),
            RuntimeConfig::docs(),
            Params::docs(),
            PushConfig::docs(),
        ]
        .concat()
    }

    /// Listening ports of one protocol must differ (0 means "any free port" and never clashes).
    fn check_ports(&self, resolver: &Resolver<'_>) -> Result<(), ConfigError> {
        let s = &self.server;
        let tcp = [
            ("tcp_port_lpo", s.tcp_port_lpo),
            ("tcp_port_lrs", s.tcp_port_lrs),
            ("health_port_lpo", s.health_port_lpo),
            ("health_port_lrs", s.health_port_lrs),
        ];
        let udp = [
            ("udp_port_lpo", s.udp_port_lpo),
            ("udp_port_lrs", s.udp_port_lrs),
        ];
        let describe = |key: &str| {
            resolver.origin_of(key).map_or_else(
                || key.to_string(),
                |r| format!("{} (from {})", r.id.env, r.origin.as_str()),
            )
        };
        for group in [&tcp[..], &udp[..]] {
            for (i, (first, a)) in group.iter().enumerate() {
                for (second, b) in group.iter().skip(i + 1) {
                    if a.0 != 0 && a == b {
                        return Err(ConfigError::PortClash {
                            first: describe(first),
                            second: describe(second),
                            port: a.0,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The README's configuration table, generated from the declarations.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Setting (env) | Flag | Default | Accepts | Meaning |\n|---|---|---|---|---|\n",
    );
    let mut heading = "";
    for doc in Config::docs() {
        if doc.heading != heading {
            heading = doc.heading;
            out.push_str(&format!("| **{heading}** | | | | |\n"));
        }
        let help = doc
            .help
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        let default = if doc.default.is_empty() {
            "(empty)".to_string()
        } else {
            doc.default.replace(',', ", ")
        };
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} |\n",
            doc.env,
            SettingId {
                key: doc.key,
                env: doc.env
            }
            .flag(),
            default,
            doc.kind.replace('|', "\\|"),
            help.trim()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: ConfigArgs, file: &str) -> Result<Loaded, ConfigError> {
        let file = if file.is_empty() {
            FileValues::empty()
        } else {
            FileValues::parse(Path::new("beast.toml"), file)?
        };
        Config::resolve(&args, None, file)
    }

    fn origin(loaded: &Loaded, key: &str) -> (String, Origin) {
        let r = loaded.settings.iter().find(|r| r.id.key == key).unwrap();
        (r.shown.clone(), r.origin)
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let mut args = ConfigArgs::default();
        // TC0: default
        let loaded = resolve(args.clone(), "").unwrap();
        assert_eq!(loaded.config.server.tcp_port_lpo, Port(8080));
        assert_eq!(
            origin(&loaded, "tcp_port_lpo"),
            ("8080".into(), Origin::Default)
        );
        // TC1: file
        let loaded = resolve(args.clone(), "tcp_port_lpo = 9200\n").unwrap();
        assert_eq!(
            origin(&loaded, "tcp_port_lpo"),
            ("9200".into(), Origin::File)
        );
        // TC2: command line (no matches: counted as a flag)
        args.server.tcp_port_lpo = Some("9100".into());
        let loaded = resolve(args, "tcp_port_lpo = 9200\n").unwrap();
        assert_eq!(
            origin(&loaded, "tcp_port_lpo"),
            ("9100".into(), Origin::Flag)
        );
    }

    #[test]
    fn errors_name_the_setting_and_its_source() {
        let mut args = ConfigArgs::default();
        args.server.tcp_port_lpo = Some("70000".into());
        let err = resolve(args, "").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid value \"70000\" for --tcp-port-lpo (from command line): not a port number (0-65535)"
        );

        let err = resolve(ConfigArgs::default(), "server_type = \"PRICES\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "invalid value \"PRICES\" for server_type (from beast.toml line 1): expected one of"
            ),
            "{err}"
        );

        let err = resolve(ConfigArgs::default(), "tcp_port_lpoo = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown setting \"tcp_port_lpoo\" in beast.toml (line 1)"),
            "{err}"
        );

        let err = resolve(ConfigArgs::default(), "tcp_port_lrs = 8080\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "TCP_PORT_LPO (from default) and TCP_PORT_LRS (from file) are both port 8080: ports must differ"
        );

        let mut args = ConfigArgs::default();
        args.stores.cache_url = Some("http://cache".into());
        let err = resolve(args, "").unwrap_err().to_string();
        assert!(err.contains("for --cache-url"), "{err}");
    }

    #[test]
    fn secrets_never_appear() {
        let mut args = ConfigArgs::default();
        args.server.admin_key = Some("correct-horse-battery".into());
        args.stores.database_url = Some("postgres://beast:pa55word@db/beast".into());
        let loaded = resolve(args, "").unwrap();
        let shown = format!("{:?} {:?}", loaded.settings, loaded.config);
        assert!(
            !shown.contains("correct-horse") && !shown.contains("pa55word"),
            "{shown}"
        );
        assert_eq!(
            loaded.config.server.admin_key.as_ref().map(|k| k.expose()),
            Some("correct-horse-battery")
        );

        let mut args = ConfigArgs::default();
        args.server.admin_key = Some("short".into());
        let err = resolve(args, "").unwrap_err().to_string();
        assert!(
            !err.contains("short\"") && err.contains(setting::MASK),
            "{err}"
        );
    }

    #[test]
    fn port_zero_never_clashes() {
        let text = "tcp_port_lpo = 0\ntcp_port_lrs = 0\nhealth_port_lpo = 0\nhealth_port_lrs = 0\nudp_port_lpo = 0\nudp_port_lrs = 0\n";
        assert!(resolve(ConfigArgs::default(), text).is_ok());
    }

    #[test]
    fn every_setting_is_documented_once() {
        let docs = Config::docs();
        let resolved = resolve(ConfigArgs::default(), "").unwrap().settings;
        assert_eq!(
            docs.len(),
            resolved.len(),
            "a settings group is missing from Config::docs"
        );
        let mut envs: Vec<&str> = docs.iter().map(|d| d.env).collect();
        envs.sort_unstable();
        envs.dedup();
        assert_eq!(envs.len(), docs.len(), "duplicate environment names");
        assert!(docs.iter().all(|d| !d.help.trim().is_empty()));
    }
}
