//! `beast`: the price server and its operator commands.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
