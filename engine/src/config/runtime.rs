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
        /// Most memory the price history's candles take, MiB (a series needs 369 KiB for an
        /// asset's served price, 113 KiB per venue; past the budget new series are counted, not kept).
        beast_history_max_mib: Int<1, 1_048_576> = Int::new(512), env = "BEAST_HISTORY_MAX_MIB";
    }
}
