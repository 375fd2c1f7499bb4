//! `beast feeds parse --exchange NAME`: runs a venue's frame parser over stdin, one WebSocket
//! text frame per line, and prints exactly one line per input line:
//! `{"asset":"BTC","price":"97000.12","ts_ms":N}` for one price, an array of those for several,
//! `{"skip":true}` for a well-formed frame without a price, `{"error":"<reason>"}` otherwise.

use std::io::{BufRead, Read, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use beast_core::clock::wall_ms;
use beast_core::{Symbol, Venue};
use beast_engine::config::Params;
use beast_feeds::{Frame, Update, venues};

/// Longest line read; a longer one is reported as an error and skipped.
const MAX_LINE: usize = 16 << 20;

#[derive(clap::Subcommand, Debug)]
pub enum FeedsCommand {
    /// Parse WebSocket text frames from stdin (one per line) with a venue's parser.
    Parse {
        /// coinbase, gemini, kraken, gateio (gate.io), cryptocom (crypto.com) or okx.
        #[arg(long, value_parser = parse_venue)]
        exchange: Venue,
    },
}

fn parse_venue(name: &str) -> Result<Venue, String> {
    Venue::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Venue::ALL.iter().map(|v| v.name()).collect();
        format!("unknown exchange {name:?}; one of {}", names.join(", "))
    })
}

pub fn run(command: FeedsCommand) -> Result<ExitCode, super::Failure> {
    let FeedsCommand::Parse { exchange } = command;
    // Gemini resolves separator-less symbols through the pairs it would subscribe to.
    let params = Params::default();
    let assets: Vec<Symbol> = match exchange {
        Venue::Gemini => params.gemini_prewarm_assets.0.clone(),
        _ => Vec::new(),
    };
    let parser = venues::for_venue(exchange, &assets);
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut output = std::io::BufWriter::new(stdout.lock());
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = Read::take(&mut input, MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .context("cannot read stdin")?;
        if read == 0 {
            break;
        }
        let oversized = line.len() > MAX_LINE && !line.ends_with(b"\n");
        if oversized {
            // Skip the rest of the overlong line.
            let mut rest = Vec::new();
            input
                .read_until(b'\n', &mut rest)
                .context("cannot read stdin")?;
        }
        let frame = line.strip_suffix(b"\n").unwrap_or(&line);
        let frame = frame.strip_suffix(b"\r").unwrap_or(frame);
        let result = if oversized {
            serde_json::json!({ "error": format!("frame longer than {MAX_LINE} bytes") })
        } else {
            match std::str::from_utf8(frame) {
                Ok(text) => render(parser.as_ref(), text),
                Err(_) => serde_json::json!({ "error": "frame is not UTF-8 text" }),
            }
        };
        if let Err(e) = writeln!(output, "{result}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(anyhow::Error::from(e).context("cannot write stdout").into());
        }
    }
    match output.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(anyhow::Error::from(e).into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn render(parser: &dyn beast_feeds::Exchange, frame: &str) -> serde_json::Value {
    let mut updates: Vec<Update> = Vec::new();
    match parser.parse(frame, wall_ms(), &mut |u| updates.push(u)) {
        Ok(Frame::Prices(_)) => {
            let mut items: Vec<serde_json::Value> = updates
                .iter()
                .map(|u| serde_json::json!({ "asset": u.asset.as_str(), "price": u.price.to_string(), "ts_ms": u.exchange_ms }))
                .collect();
            if items.len() == 1 {
                items.swap_remove(0)
            } else {
                serde_json::Value::Array(items)
            }
        }
        Ok(Frame::Skip(_)) => serde_json::json!({ "skip": true }),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    }
}
