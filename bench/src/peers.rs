//! `beast-bench peers`: the reference servers of ../shared/peers (nginx, udpsrv, the Go
//! reference) and `beast`, started in turn on 127.0.0.1 and put under the same loads, each load
//! driven both by the classic tool (wrk, udpload) and by beast-bench. Server CPU comes from
//! /proc (the process and its children), so the figure compared is requests per
//! server-core-second: generator and server share the cores.
//!
//! Two tables come out, written into the results file between markers: whether beast-bench
//! agrees with wrk and udpload on the same server (the generator's own calibration), and
//! beast against each peer.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;

use crate::args::parse_duration;
use crate::load::{self, Form, LoadSpec, Pace};

/// Options of `beast-bench peers`.
#[derive(clap::Args, Debug, Clone)]
pub struct PeersArgs {
    /// The reference servers' folder, prepared by its setup.sh (nginx and wrk installed,
    /// udpsrv, udpload and the Go reference built).
    #[arg(long, env = "BEAST_PEERS_DIR", default_value = "../shared/peers")]
    pub peers: PathBuf,
    /// The `beast` binary [default: the one beside this beast-bench].
    #[arg(long)]
    pub beast: Option<PathBuf>,
    /// Measured time per run.
    #[arg(short = 'd', long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub reps: u32,
    /// Only the configurations whose name contains this.
    #[arg(long, default_value = "")]
    pub only: String,
    /// The Markdown file whose peers section (between the beast-bench markers) is rewritten;
    /// the section is appended when the markers are missing.
    #[arg(long, default_value = "bench/RESULTS.md")]
    pub results: PathBuf,
    /// Every run as one JSON line, appended here.
    #[arg(long)]
    pub raw: Option<PathBuf>,
}

const BEGIN: &str = "<!-- beast-bench peers: begin -->";
const END: &str = "<!-- beast-bench peers: end -->";
/// 128 bytes: room for the ~90-byte JSON answer, which beast sends no larger than the request.
const UDP_PAD: usize = 128;
const BEAST_HTTP: u16 = 18090;
const BEAST_UDP: u16 = 12690;
const NGINX_HTTP: u16 = 18091;
const UDPSRV_UDP: u16 = 12691;
const GOREF_HTTP: u16 = 18092;
const GOREF_UDP: u16 = 12692;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Server {
    Nginx,
    Udpsrv,
    Goref,
    /// beast on a backend, metering off (only the server's own work is counted)...
    Beast(Io),
    /// ... and with usage metering into its embedded store, for the record.
    BeastMetered(Io),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Io {
    Uring,
    Epoll,
}

/// beast on both backends.
const BEASTS: [Server; 2] = [Server::Beast(Io::Uring), Server::Beast(Io::Epoll)];

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Nginx => "nginx",
            Server::Udpsrv => "udpsrv",
            Server::Goref => "goref",
            Server::Beast(Io::Uring) => "beast (io_uring)",
            Server::Beast(Io::Epoll) => "beast (epoll)",
            Server::BeastMetered(Io::Uring) => "beast (io_uring, metering on)",
            Server::BeastMetered(Io::Epoll) => "beast (epoll, metering on)",
        }
    }

    fn is_beast(self) -> bool {
        matches!(self, Server::Beast(_) | Server::BeastMetered(_))
    }
}

#[derive(Clone, Copy, Debug)]
enum Load {
    Http {
        connections: usize,
        pipeline: usize,
    },
    Udp {
        threads: usize,
        sockets: usize,
        window: usize,
    },
}

struct Config {
    name: &'static str,
    load: Load,
    /// The peer beast is held against, then any others measured too.
    servers: &'static [Server],
    /// Server on CPU 0 and load generator on CPU 1, instead of sharing both: each side has a
    /// core of its own, which makes the tools' figures steadier.
    pinned: bool,
}

const CONFIGS: &[Config] = &[
    Config {
        name: "HTTP keep-alive, 64 connections",
        load: Load::Http {
            connections: 64,
            pipeline: 1,
        },
        servers: &[Server::Nginx, Server::Goref, BEASTS[0], BEASTS[1]],
        pinned: false,
    },
    Config {
        name: "HTTP pipelined ×16, 64 connections",
        load: Load::Http {
            connections: 64,
            pipeline: 16,
        },
        servers: &[Server::Nginx, BEASTS[0], BEASTS[1]],
        pinned: false,
    },
    Config {
        name: "UDP 1 thread, 4 sockets × 16 in flight",
        load: Load::Udp {
            threads: 1,
            sockets: 4,
            window: 16,
        },
        servers: &[Server::Udpsrv, Server::Goref, BEASTS[0], BEASTS[1]],
        pinned: false,
    },
    Config {
        name: "UDP 2 threads, 4 sockets × 64 in flight",
        load: Load::Udp {
            threads: 2,
            sockets: 4,
            window: 64,
        },
        servers: &[Server::Udpsrv, BEASTS[0], BEASTS[1]],
        pinned: false,
    },
    Config {
        name: "HTTP keep-alive, 64 connections, pinned (server CPU 0, load CPU 1)",
        load: Load::Http {
            connections: 64,
            pipeline: 1,
        },
        servers: &[
            Server::Nginx,
            BEASTS[0],
            BEASTS[1],
            Server::BeastMetered(Io::Uring),
            Server::BeastMetered(Io::Epoll),
        ],
        pinned: true,
    },
    Config {
        name: "UDP 1 thread, 4 sockets × 16 in flight, pinned (server CPU 0, load CPU 1)",
        load: Load::Udp {
            threads: 1,
            sockets: 4,
            window: 16,
        },
        servers: &[
            Server::Udpsrv,
            BEASTS[0],
            BEASTS[1],
            Server::BeastMetered(Io::Uring),
            Server::BeastMetered(Io::Epoll),
        ],
        pinned: true,
    },
];

/// `program` run on `cpu` (taskset) when given.
fn on_cpu(program: impl AsRef<std::ffi::OsStr>, cpu: Option<&str>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cpu]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// One measured run.
#[derive(Clone, Debug, Serialize)]
struct Run {
    rep: u32,
    config: &'static str,
    server: Server,
    tool: &'static str,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    server_cores: f64,
    /// The load generator's CPU over the run, in cores.
    client_cores: f64,
    per_core: f64,
}

/// A server started for a configuration, stopped on drop.
struct Running {
    child: Child,
    http: Option<SocketAddr>,
    udp: Option<SocketAddr>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM, so nginx's master takes its workers down with it.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn run(args: &PeersArgs) -> anyhow::Result<()> {
    let peers = args
        .peers
        .canonicalize()
        .with_context(|| format!("peers folder {}", args.peers.display()))?;
    let beast = match &args.beast {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("beast"),
    };
    anyhow::ensure!(
        beast.is_file(),
        "{} is missing: build it (cargo build --release --bin beast) or pass --beast",
        beast.display()
    );
    for (what, path) in [
        ("udpsrv", peers.join("udpsrv/udpsrv")),
        ("udpload", peers.join("udpload")),
        ("goref", peers.join("goref/goref")),
    ] {
        anyhow::ensure!(
            path.is_file(),
            "{what} is not built at {}: run {}/setup.sh",
            path.display(),
            peers.display()
        );
    }
    for tool in ["nginx", "wrk"] {
        let found = Command::new(tool)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        anyhow::ensure!(
            found,
            "{tool} is not installed: run {}/setup.sh",
            peers.display()
        );
    }
    let scratch = std::env::temp_dir().join(format!("beast-bench-peers-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let prices = scratch.join("prices.jsonl");
    std::fs::write(
        &prices,
        "{\"asset\":\"BTC\",\"price\":\"97123.45\",\"source\":\"coinbase-ws\"}\n",
    )?;
    let configs: Vec<&Config> = CONFIGS
        .iter()
        .filter(|c| c.name.contains(&args.only))
        .collect();
    anyhow::ensure!(
        !configs.is_empty(),
        "no configuration matches --only {:?}",
        args.only
    );
    let mut runs = Vec::new();
    for rep in 1..=args.reps {
        for config in &configs {
            // Alternate the order rep by rep so drift on a shared machine spreads over all.
            let mut servers = config.servers.to_vec();
            if rep % 2 == 0 {
                servers.reverse();
            }
            for server in servers {
                let running = start(server, config.pinned, &peers, &beast, &prices, &scratch)?;
                let mut tools = vec!["beast-bench", classic_tool(config.load)];
                if rep % 2 == 1 {
                    tools.reverse();
                }
                warm_up(config, &running)?;
                for tool in tools {
                    let run = measure(rep, config, server, tool, &running, &peers, args.duration)?;
                    eprintln!(
                        "rep {rep} | {} | {} | {tool}: {:.0} req/s, p50 {:.0} µs, p99 {:.0} µs, server {:.2} cores, {:.0} per core, errors {}",
                        config.name,
                        server.name(),
                        run.rps,
                        run.p50_us,
                        run.p99_us,
                        run.server_cores,
                        run.per_core,
                        run.errors
                    );
                    if let Some(raw) = &args.raw {
                        let mut file = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(raw)?;
                        writeln!(file, "{}", serde_json::to_string(&run)?)?;
                    }
                    runs.push(run);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let section = tables(&runs, &configs, args);
    println!("{section}");
    write_section(&args.results, &section)?;
    eprintln!("wrote the peers section of {}", args.results.display());
    Ok(())
}

fn classic_tool(load: Load) -> &'static str {
    match load {
        Load::Http { .. } => "wrk",
        Load::Udp { .. } => "udpload",
    }
}

fn start(
    server: Server,
    pinned: bool,
    peers: &Path,
    beast: &Path,
    prices: &Path,
    scratch: &Path,
) -> anyhow::Result<Running> {
    let cpu = pinned.then_some("0");
    let (mut command, http, udp) = match server {
        Server::Beast(io) | Server::BeastMetered(io) => {
            let mut c = on_cpu(beast, cpu);
            // Shared runs leave reactors unpinned like the peers: the load generator could not
            // get out of a pinned reactor's way. Pinned runs: one reactor, on CPU 0, and the
            // side thread with it.
            let pin = if pinned { "true" } else { "false" };
            let io = match io {
                Io::Uring => "uring",
                Io::Epoll => "epoll",
            };
            let metering = if matches!(server, Server::BeastMetered(_)) {
                "true"
            } else {
                "false"
            };
            let data = scratch.join(format!("data-{io}-{metering}"));
            let _ = std::fs::remove_dir_all(&data);
            c.arg("serve").args([
                "--bind",
                "127.0.0.1",
                "--feeds",
                "off",
                "--demo-walk",
                "true",
                "--io",
                io,
                "--pin",
                pin,
                "--usage-metering",
                metering,
            ]);
            c.arg("--beast-data-dir").arg(data);
            c.arg("--prices").arg(prices);
            c.args([
                "--tcp-port-lpo",
                &BEAST_HTTP.to_string(),
                "--udp-port-lpo",
                &BEAST_UDP.to_string(),
            ]);
            c.args([
                "--tcp-port-lrs",
                "0",
                "--udp-port-lrs",
                "0",
                "--health-port-lpo",
                "0",
                "--health-port-lrs",
                "0",
            ]);
            (c, Some(local(BEAST_HTTP)), Some(local(BEAST_UDP)))
        }
        Server::Nginx => {
            let prefix = scratch.join("nginx");
            std::fs::create_dir_all(prefix.join("tmp"))?;
            let template = std::fs::read_to_string(peers.join("nginx/nginx.conf.in"))?;
            let conf = template
                .replace("@PORT@", &NGINX_HTTP.to_string())
                .replace("@PREFIX@", &prefix.to_string_lossy());
            std::fs::write(prefix.join("nginx.conf"), conf)?;
            let mut c = on_cpu("nginx", cpu);
            c.arg("-p").arg(format!("{}/", prefix.display()));
            c.arg("-e").arg(prefix.join("error.log"));
            c.arg("-c").arg(prefix.join("nginx.conf"));
            c.args(["-g", "daemon off;"]);
            (c, Some(local(NGINX_HTTP)), None)
        }
        Server::Udpsrv => {
            let mut c = on_cpu(peers.join("udpsrv/udpsrv"), cpu);
            c.args(["-p", &UDPSRV_UDP.to_string()]);
            if pinned {
                c.args(["-t", "1"]);
            }
            (c, None, Some(local(UDPSRV_UDP)))
        }
        Server::Goref => {
            let mut c = on_cpu(peers.join("goref/goref"), cpu);
            c.args([
                "-http",
                &GOREF_HTTP.to_string(),
                "-udp",
                &GOREF_UDP.to_string(),
            ]);
            (c, Some(local(GOREF_HTTP)), Some(local(GOREF_UDP)))
        }
    };
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", server.name()))?;
    let mut running = Running { child, http, udp };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let http_up = running
            .http
            .is_none_or(|a| TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok());
        let udp_up = running.udp.is_none_or(udp_answers);
        if http_up && udp_up {
            return Ok(running);
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            bail!("{} exited during start-up ({status})", server.name());
        }
        if Instant::now() >= deadline {
            bail!("{} did not start listening within 15 s", server.name());
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

fn udp_answers(target: SocketAddr) -> bool {
    let Ok(socket) = UdpSocket::bind(("127.0.0.1", 0)) else {
        return false;
    };
    let mut request = b"BTC".to_vec();
    request.resize(UDP_PAD, b' ');
    let mut reply = [0u8; 512];
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .is_ok()
        && socket.send_to(&request, target).is_ok()
        && socket.recv(&mut reply).is_ok()
}

fn spec(
    config: &Config,
    running: &Running,
    duration: Duration,
    warmup: Duration,
) -> anyhow::Result<LoadSpec> {
    let (form, target, pace, connections, threads) = match config.load {
        Load::Http {
            connections,
            pipeline,
        } => (
            Form::Http,
            running.http,
            Pace::Closed { window: pipeline },
            connections,
            1,
        ),
        Load::Udp {
            threads,
            sockets,
            window,
        } => (
            Form::UdpText,
            running.udp,
            Pace::Closed { window },
            sockets,
            threads,
        ),
    };
    Ok(LoadSpec {
        target: target.context("this server does not serve that protocol")?,
        form,
        pace,
        connections,
        threads,
        duration,
        warmup,
        max_requests: None,
        assets: vec![String::from("BTC")],
        per_request: 1,
        key: None,
        pad_to: UDP_PAD,
        path: None,
        timeout: Duration::from_secs(1),
        // One load thread, on the last CPU (CPU 1 on two cores).
        pin: config.pinned,
    })
}

fn warm_up(config: &Config, running: &Running) -> anyhow::Result<()> {
    load::run(
        &spec(config, running, Duration::from_secs(1), Duration::ZERO)?,
        |_, _| {},
    )?;
    Ok(())
}

/// CPU seconds used so far by `pid` and its children (nginx's workers), from /proc.
fn tree_cpu(pid: u32) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for entry in entries.flatten() {
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if id == pid || field(1) == u64::from(pid) {
            ticks += field(11) + field(12);
        }
    }
    // procfs counts in USER_HZ, fixed at 100 by the kernel ABI.
    ticks as f64 / 100.0
}

/// This process's CPU seconds, and its waited-for children's (`/proc/self/stat` utime+stime,
/// cutime+cstime).
fn own_cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let sum = |a: usize, b: usize| {
        (fields.get(a).unwrap_or(&0) + fields.get(b).unwrap_or(&0)) as f64 / 100.0
    };
    (sum(11, 12), sum(13, 14))
}

fn measure(
    rep: u32,
    config: &Config,
    server: Server,
    tool: &'static str,
    running: &Running,
    peers: &Path,
    duration: Duration,
) -> anyhow::Result<Run> {
    let pid = running.child.id();
    let (cpu0, client0, t0) = (tree_cpu(pid), own_cpu(), Instant::now());
    let (rps, p50_us, p99_us, errors) = if tool == "beast-bench" {
        let result = load::run(&spec(config, running, duration, Duration::ZERO)?, |_, _| {})?;
        (
            result.achieved_rps,
            result.latency_us.p50 as f64,
            result.latency_us.p99 as f64,
            result.errors.failed(),
        )
    } else {
        run_classic(config.load, config.pinned, running, peers, duration)?
    };
    let seconds = t0.elapsed().as_secs_f64();
    let cores = (tree_cpu(pid) - cpu0) / seconds;
    let client1 = own_cpu();
    // beast-bench runs in this process; wrk and udpload are children waited for.
    let client = if tool == "beast-bench" {
        client1.0 - client0.0
    } else {
        client1.1 - client0.1
    };
    Ok(Run {
        rep,
        config: config.name,
        server,
        tool,
        rps,
        p50_us,
        p99_us,
        errors,
        server_cores: (cores * 1000.0).round() / 1000.0,
        client_cores: (client / seconds * 1000.0).round() / 1000.0,
        per_core: if cores > 0.0 {
            (rps / cores).round()
        } else {
            0.0
        },
    })
}

/// Runs wrk or udpload and reads its figures.
fn run_classic(
    load: Load,
    pinned: bool,
    running: &Running,
    peers: &Path,
    duration: Duration,
) -> anyhow::Result<(f64, f64, f64, u64)> {
    let seconds = duration.as_secs().max(1);
    let output = match load {
        Load::Http {
            connections,
            pipeline,
        } => {
            let target = running.http.context("no HTTP port")?;
            let url = format!("http://{target}/price?asset=BTC");
            let mut c = on_cpu("wrk", pinned.then_some("1"));
            c.args([
                "-t1",
                &format!("-c{connections}"),
                &format!("-d{seconds}s"),
                "--latency",
                "-s",
            ]);
            if pipeline > 1 {
                c.arg(peers.join("lua/pipeline.lua"))
                    .arg(&url)
                    .args(["--", &pipeline.to_string()]);
            } else {
                c.arg(peers.join("lua/report.lua")).arg(&url);
            }
            c.output().context("running wrk")?
        }
        Load::Udp {
            threads,
            sockets,
            window,
        } => {
            let target = running.udp.context("no UDP port")?;
            let payload = format!("{:<width$}", "BTC", width = UDP_PAD);
            on_cpu(peers.join("udpload"), pinned.then_some("1"))
                .args([
                    "-p",
                    &target.port().to_string(),
                    "-t",
                    &threads.to_string(),
                    "-c",
                    &sockets.to_string(),
                ])
                .args([
                    "-w",
                    &window.to_string(),
                    "-d",
                    &seconds.to_string(),
                    "-u",
                    "0",
                    "-P",
                    &payload,
                ])
                .output()
                .context("running udpload")?
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let figures = match load {
        Load::Http { .. } => parse_wrk(&text),
        Load::Udp { .. } => parse_udpload(&text),
    };
    figures.with_context(|| {
        format!(
            "unexpected output:\n{text}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn field_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let at = text.find(key)? + key.len();
    text.get(at..)?.split_whitespace().next()
}

fn number_after(text: &str, key: &str) -> Option<f64> {
    field_after(text, key)?.trim_end_matches(',').parse().ok()
}

fn count_after(text: &str, key: &str) -> Option<u64> {
    field_after(text, key)?.trim_end_matches(',').parse().ok()
}

fn parse_wrk(text: &str) -> Option<(f64, f64, f64, u64)> {
    let rps = number_after(text, "Requests/sec:")?;
    let p50 = number_after(text, "PCTL p50=")?;
    let p99 = number_after(text, "p99=")?;
    let errors = count_after(text, "Non-2xx or 3xx responses:").unwrap_or(0);
    Some((rps, p50, p99, errors))
}

fn parse_udpload(text: &str) -> Option<(f64, f64, f64, u64)> {
    let rps = number_after(text, "rps=")?;
    let p50 = number_after(text, "lat_us p50=")?;
    let p99 = number_after(text, " p99=")?;
    let errors = count_after(text, "lost=")? + count_after(text, "bad=")?;
    Some((rps, p50, p99, errors))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values.get(n / 2).copied().unwrap_or(0.0),
        n => {
            (values.get(n / 2 - 1).copied().unwrap_or(0.0)
                + values.get(n / 2).copied().unwrap_or(0.0))
                / 2.0
        }
    }
}

fn tables(runs: &[Run], configs: &[&Config], args: &PeersArgs) -> String {
    let machine = crate::report::Machine::here();
    let mut out = format!(
        "{BEGIN}\n### beast-bench peers — {} reps × {:.0} s, {} CPUs ({}), kernel {}\n\n\
         Generated by `beast-bench peers`; medians over the reps. Server cores: CPU time of the server's process tree\n\
         over the run (/proc). Client and server share the machine's cores.\n\n\
         **The generator against the classic tools** (same server, same load, back to back; the last\n\
         column is the median over the reps of each rep's ratio):\n\n\
         | load | server | tool | req/s | p50 µs | p99 µs | server cores | req/s per server core | client cores | beast-bench ÷ tool (req/s) |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
        args.reps,
        args.duration.as_secs_f64(),
        machine.cpus,
        machine.cpu_model,
        machine.kernel
    );
    let med = |config: &str, server: Server, tool: &str, f: fn(&Run) -> f64| {
        median(
            runs.iter()
                .filter(|r| r.config == config && r.server == server && r.tool == tool)
                .map(f)
                .collect(),
        )
    };
    for config in configs {
        let classic = classic_tool(config.load);
        for &server in config.servers {
            for tool in [classic, "beast-bench"] {
                let rps = med(config.name, server, tool, |r| r.rps);
                let ratio = if tool == "beast-bench" {
                    // Each rep's pair ran back to back against one server process: the median of
                    // the per-rep ratios is steadier than a ratio of medians on a noisy machine.
                    let r = median(
                        (1..=args.reps)
                            .filter_map(|rep| {
                                let of = |tool: &str| {
                                    runs.iter().find(|r| {
                                        r.rep == rep
                                            && r.config == config.name
                                            && r.server == server
                                            && r.tool == tool
                                    })
                                };
                                let (bench, base) = (of("beast-bench")?, of(classic)?);
                                (base.rps > 0.0).then(|| bench.rps / base.rps)
                            })
                            .collect(),
                    );
                    let verdict = if (r - 1.0).abs() <= 0.10 {
                        "within 10 %"
                    } else {
                        "**outside 10 %**"
                    };
                    format!("{r:.2} ({verdict})")
                } else {
                    String::new()
                };
                out.push_str(&format!(
                    "| {} | {} | {tool} | {rps:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} | {ratio} |\n",
                    config.name,
                    server.name(),
                    med(config.name, server, tool, |r| r.p50_us),
                    med(config.name, server, tool, |r| r.p99_us),
                    med(config.name, server, tool, |r| r.server_cores),
                    med(config.name, server, tool, |r| r.per_core),
                    med(config.name, server, tool, |r| r.client_cores),
                ));
            }
        }
    }
    out.push_str(
        "\n**beast against each peer** (figures from beast-bench; ratio of requests per server-core-second, \
         and of raw req/s):\n\n| load | peer | beast | peer per core | beast per core | **per-core ratio** | req/s ratio | p99 peer µs | p99 beast µs |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for config in configs {
        let peers = config.servers.iter().filter(|s| !s.is_beast());
        let beasts = config.servers.iter().filter(|s| s.is_beast());
        for (&peer, &beast) in peers.flat_map(|p| beasts.clone().map(move |b| (p, b))) {
            let get = |server, f: fn(&Run) -> f64| med(config.name, server, "beast-bench", f);
            let (peer_core, beast_core) = (get(peer, |r| r.per_core), get(beast, |r| r.per_core));
            let (peer_rps, beast_rps) = (get(peer, |r| r.rps), get(beast, |r| r.rps));
            let ratio = |a: f64, b: f64| {
                if a > 0.0 {
                    format!("{:.2}×", b / a)
                } else {
                    String::from("—")
                }
            };
            out.push_str(&format!(
                "| {} | {} | {} | {peer_core:.0} | {beast_core:.0} | **{}** | {} | {:.0} | {:.0} |\n",
                config.name,
                peer.name(),
                beast.name(),
                ratio(peer_core, beast_core),
                ratio(peer_rps, beast_rps),
                get(peer, |r| r.p99_us),
                get(beast, |r| r.p99_us),
            ));
        }
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// Replaces the marked section of `path` with `section`, or appends it.
fn write_section(path: &Path, section: &str) -> anyhow::Result<()> {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    let updated = match (current.find(BEGIN), current.find(END)) {
        (Some(begin), Some(end)) if end > begin => {
            let after = end + END.len();
            let tail = current
                .get(after..)
                .unwrap_or_default()
                .trim_start_matches('\n');
            // A blank line after the section: the table must end before the prose.
            format!(
                "{}{section}\n{tail}",
                current.get(..begin).unwrap_or_default()
            )
        }
        _ => format!("{}\n{section}", current.trim_end()),
    };
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_classic_tools() {
        let wrk = "Running 10s test\n  Latency 300us\nRequests/sec:  95970.12\nTransfer/sec: 20MB\nPCTL p50=275.0 p90=400.0 p99=4306.0 p99.9=9000.0 max=1.0 mean=1.0\n";
        assert_eq!(parse_wrk(wrk), Some((95970.12, 275.0, 4306.0, 0)));
        let udpload = "udpload port=1 payload=BTC sockets=4 window=16 threads=1 duration=10.0s warmup=0.0s\n\
            sent=100 received=98 lost=2 inflight_end=0 bad=1 stray=0 errors=0\nrps=197323\n\
            lat_us p50=117.0 p90=200.0 p99=3211.0 p99.9=4000.0 max=5000.0 mean=130.0\n";
        assert_eq!(parse_udpload(udpload), Some((197323.0, 117.0, 3211.0, 3)));
        assert_eq!(parse_udpload("nothing"), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0]), 2.5);
    }

    #[test]
    fn rewrites_only_its_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("RESULTS.md");
        std::fs::write(&path, "# Results\n\nprose\n").unwrap();
        write_section(&path, &format!("{BEGIN}\none\n{END}\n")).unwrap();
        std::fs::write(&path, std::fs::read_to_string(&path).unwrap() + "\nafter\n").unwrap();
        write_section(&path, &format!("{BEGIN}\ntwo\n{END}\n")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("# Results\n\nprose\n{BEGIN}\ntwo\n{END}\n\nafter\n")
        );
    }
}
