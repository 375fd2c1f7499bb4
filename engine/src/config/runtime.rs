//! Process-level settings: logging and table capacity.

use super::group::settings_group;
use super::setting::{Int, LogFilter, LogFormat};

settings_group! {
    /// How the process runs.
    pub struct RuntimeConfig, args RuntimeArgs, heading "Runtime" {
        /// Log filter in normal mode: a level or target=level directives.
        beast_log: LogFilter = LogFilter("info".into()), env = "BEAST_LOG";
        /// Log line format: text for people, json for log pipelines.
        beast_log_format: LogFormat = LogFormat::Text, env = "BEAST_LOG_FORMAT";
        /// Most assets the price table holds (fixed at start-up; assets are added up to it).
        beast_max_assets: Int<16, 1_048_576> = Int::new(4096), env = "BEAST_MAX_ASSETS";
    }
}
