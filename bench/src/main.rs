//! `beast-bench`: load generator for the Beast price server.

use std::process::ExitCode;

use clap::Parser;

/// Load generator for the Beast price server (UDP and HTTP/1.1).
#[derive(Parser, Debug)]
#[command(name = "beast-bench", version)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    eprintln!(
        "beast-bench {}: load commands are not built yet",
        beast_engine::build_info::VERSION
    );
    ExitCode::from(2)
}
