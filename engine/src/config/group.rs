//! `settings_group!`: one declaration per subsystem yields its clap arguments, its typed
//! configuration, its beast.toml keys and its documentation, so they cannot drift apart.
//!
//! Each field is written as
//!
//! ```text
//! /// Help text (first line is the summary).
//! field_name: Type = default_expression, env = "ENV_NAME";
//! ```
//!
//! and becomes the flag `--field-name`, the environment variable `ENV_NAME`, the beast.toml key
//! `field_name`, and a typed field of the group's config struct. The clap field is an
//! `Option<String>` without a clap default, so a value absent from the command line and the
//! environment falls through to beast.toml and only then to the default.

macro_rules! settings_group {
    (
        $(#[doc = $group_doc:literal])*
        pub struct $Config:ident, args $Args:ident, heading $heading:literal {
            $(
                $(#[doc = $doc:literal])+
                $field:ident : $ty:ty = $default:expr, env = $env:literal;
            )+
        }
    ) => {
        #[doc = concat!("Command-line and environment arguments of [`", stringify!($Config), "`].")]
        #[derive(clap::Args, Debug, Clone, Default)]
        #[command(next_help_heading = $heading)]
        pub struct $Args {
            $(
                #[arg(
                    long,
                    env = $env,
                    value_name = <$ty as $crate::config::setting::Setting>::VALUE_NAME,
                    num_args = $crate::config::group::num_args(<$ty as $crate::config::setting::Setting>::WITHOUT_VALUE),
                    default_missing_value = <$ty as $crate::config::setting::Setting>::WITHOUT_VALUE,
                    hide_env_values = <$ty as $crate::config::setting::Setting>::SECRET,
                    help = $crate::config::group::help_line(
                        concat!($($doc, "\n"),+),
                        &$crate::config::setting::Setting::document(&{ let default: $ty = $default; default }),
                    ),
                )]
                pub $field: Option<String>,
            )+
        }

        $(#[doc = $group_doc])*
        #[derive(Debug, Clone)]
        pub struct $Config {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        impl Default for $Config {
            fn default() -> Self {
                $Config { $( $field: $default, )+ }
            }
        }

        impl $Config {
            /// Every setting of the group with its documented default.
            pub fn docs() -> Vec<$crate::config::SettingDoc> {
                vec![$(
                    $crate::config::SettingDoc {
                        key: stringify!($field),
                        env: $env,
                        heading: $heading,
                        help: concat!($($doc, "\n"),+),
                        kind: <$ty as $crate::config::setting::Setting>::kind(),
                        default: $crate::config::setting::Setting::document(&{ let default: $ty = $default; default }),
                    },
                )+]
            }
        }

        impl $Args {
            pub(crate) fn resolve(
                &self,
                resolver: &mut $crate::config::Resolver<'_>,
            ) -> Result<$Config, $crate::config::ConfigError> {
                Ok($Config {
                    $(
                        $field: resolver.resolve::<$ty>(
                            $crate::config::SettingId { key: stringify!($field), env: $env },
                            self.$field.as_deref(),
                            || $default,
                        )?,
                    )+
                })
            }
        }
    };
}
pub(crate) use settings_group;

/// A switch takes zero or one value; every other setting exactly one.
pub(crate) fn num_args(without_value: Option<&'static str>) -> clap::builder::ValueRange {
    match without_value {
        Some(_) => clap::builder::ValueRange::new(0..=1),
        None => clap::builder::ValueRange::new(1),
    }
}

/// `--help` text: the doc comment's first paragraph and the default.
pub(crate) fn help_line(doc: &str, default: &str) -> String {
    let summary: Vec<&str> = doc
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    format!("{} [default: {default}]", summary.join(" "))
}
