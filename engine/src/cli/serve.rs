//! `beast serve`.

use std::path::Path;
use std::process::ExitCode;

use beast_engine::config::ConfigArgs;
use clap::ArgMatches;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub settings: ConfigArgs,
}

pub fn run(
    args: &ServeArgs,
    matches: Option<&ArgMatches>,
    file: Option<&Path>,
) -> Result<ExitCode, super::Failure> {
    let _loaded = super::load_config(&args.settings, matches, file)?;
    eprintln!(
        "error: the serving engine is not built yet; `beast config show` checks the configuration"
    );
    Ok(ExitCode::from(2))
}
