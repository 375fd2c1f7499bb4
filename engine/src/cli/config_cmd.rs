//! `beast config show` and `beast config check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use beast_engine::config::{Config, ConfigArgs, FileValues};
use clap::ArgMatches;

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print every effective setting, its value and its source (flag, env, file or default).
    /// Secrets are masked.
    Show {
        #[command(flatten)]
        settings: Box<ConfigArgs>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check a beast.toml: every key known, every value valid. Exit 0 if so, 2 if not.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the configuration reference as a Markdown table (the README's table).
    Docs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Text,
    Json,
}

pub fn run(
    command: ConfigCommand,
    matches: Option<&ArgMatches>,
    file: Option<&Path>,
) -> Result<ExitCode, super::Failure> {
    match command {
        ConfigCommand::Show { settings, format } => show(&settings, matches, file, format),
        ConfigCommand::Check { file } => {
            let values = FileValues::load(&file)?;
            let loaded = Config::resolve(&ConfigArgs::default(), None, values)?;
            let from_file = loaded
                .settings
                .iter()
                .filter(|s| s.origin.as_str() == "file")
                .count();
            let defaults = loaded.settings.len() - from_file;
            super::print_out(&format!(
                "{}: ok ({from_file} settings set, {defaults} defaults)\n",
                file.display()
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Docs => {
            super::print_out(&beast_engine::config::markdown_table())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show(
    settings: &ConfigArgs,
    matches: Option<&ArgMatches>,
    file: Option<&Path>,
    format: Format,
) -> Result<ExitCode, super::Failure> {
    let loaded = super::load_config(settings, matches, file)?;
    match format {
        Format::Json => {
            let rows: Vec<_> = loaded
                .settings
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "setting": s.id.env,
                        "key": s.id.key,
                        "flag": s.id.flag(),
                        "value": s.shown,
                        "source": s.origin.as_str(),
                    })
                })
                .collect();
            let file = loaded.file.as_ref().map(|p| p.display().to_string());
            super::print_out(&format!(
                "{}\n",
                serde_json::json!({ "file": file, "settings": rows })
            ))?;
        }
        Format::Text => {
            let file = loaded
                .file
                .as_ref()
                .map_or_else(|| "none".to_string(), |p| p.display().to_string());
            let mut out =
                format!("# config file: {file}\n# precedence: flag > env > file > default\n");
            let width = loaded
                .settings
                .iter()
                .map(|s| s.id.env.len())
                .max()
                .unwrap_or(0);
            for s in &loaded.settings {
                out.push_str(&format!(
                    "{:width$}  {:8}  {}\n",
                    s.id.env,
                    s.origin.as_str(),
                    s.shown
                ));
            }
            super::print_out(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
