//! `beast version`.

use std::process::ExitCode;

use beast_engine::build_info;

#[derive(clap::Args, Debug)]
pub struct VersionArgs {
    /// Print as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &VersionArgs) -> Result<ExitCode, super::Failure> {
    let backends = build_info::io_backends();
    if args.json {
        let value = serde_json::json!({
            "version": build_info::VERSION,
            "commit": build_info::GIT_COMMIT,
            "target": build_info::TARGET,
            "profile": build_info::PROFILE,
            "io_backends": backends,
        });
        super::print_out(&format!("{value}\n"))?;
    } else {
        super::print_out(&format!(
            "beast {}\ncommit:      {}\ntarget:      {} ({})\nio backends: {}\n",
            build_info::VERSION,
            build_info::GIT_COMMIT,
            build_info::TARGET,
            build_info::PROFILE,
            backends.join(", ")
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
