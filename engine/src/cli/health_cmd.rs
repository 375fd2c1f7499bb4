//! `beast health`: asks the node on this host for `/health`, for a container's HEALTHCHECK
//! (the image has no curl). Exit 0 while the node serves (healthy or degraded), 1 otherwise.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use beast_engine::config::ConfigArgs;
use beast_engine::config::setting::ServerType;
use clap::ArgMatches;

#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 2)]
    pub timeout: u64,
    #[command(flatten)]
    pub settings: ConfigArgs,
}

/// Largest answer read: `/health` is a few hundred bytes.
const MAX_ANSWER: u64 = 64 * 1024;

pub fn run(
    args: &HealthArgs,
    matches: Option<&ArgMatches>,
    file: Option<&Path>,
) -> Result<ExitCode, super::Failure> {
    let loaded = super::load_config(&args.settings, matches, file)?;
    let server = &loaded.config.server;
    // The role's health port, on loopback: the check runs beside the node it checks.
    let port = match server.server_type {
        ServerType::AppReport => server.health_port_lpo.0,
        ServerType::Webhook => server.health_port_webhook.0,
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Duration::from_secs(args.timeout.clamp(1, 60));
    match ask(addr, timeout) {
        Ok((status, body)) => {
            super::print_out(&format!("{}\n", body.trim_end()))?;
            Ok(if status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(e) => {
            eprintln!("error: no answer from {addr}/health: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn ask(addr: SocketAddr, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut answer = String::new();
    stream.take(MAX_ANSWER).read_to_string(&mut answer)?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    Ok((status, body))
}
