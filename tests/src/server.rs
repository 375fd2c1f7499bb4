//! A real `beast serve` process on loopback ports, and small HTTP and UDP clients for it.
//! Every wait is bounded; nothing sleeps.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::Scratch;

/// The I/O backends every protocol test runs against.
pub const BACKENDS: [&str; 2] = ["uring", "epoll"];

/// How long any single wait in these tests may take before it fails the test.
pub const WAIT: Duration = Duration::from_secs(10);

/// Seed prices every test server starts with.
pub const SEED: &str = r#"{"asset":"BTC","price":"97123.45","source":"coinbase-ws"}
{"asset":"ETH","price":"3512.50","source":"kraken-ws"}
{"asset":"PEPE","price":"0.00001234","source":"okx-ws"}
{"asset":"OLD","price":"1.5","source":"gemini-ws","ts":1000}
"#;

/// The admin key of [`Beast::cluster_node`]s.
pub const CLUSTER_ADMIN: &str = "cluster-admin-key-0123456789abcdef";

pub struct Beast {
    pid: libc::pid_t,
    /// The exit status, sent by a thread blocked in waitpid(2).
    exited: mpsc::Receiver<ExitStatus>,
    status: Option<ExitStatus>,
    pub ready: Value,
    pub stderr: std::path::PathBuf,
    pub scratch: Scratch,
}

impl Beast {
    /// Starts `beast serve` on `backend` with every port on 127.0.0.1:0, two reactors and
    /// `extra` arguments; without `--feeds` in them, with the [`SEED`] prices and no feeds.
    /// Returns once it is ready.
    pub fn start(backend: &str, extra: &[&str]) -> Beast {
        Beast::start_with(backend, extra, |_| {})
    }

    /// As [`Beast::start`], letting the caller adjust the command (environment, limits).
    pub fn start_with(
        backend: &str,
        extra: &[&str],
        adjust: impl FnOnce(&mut std::process::Command),
    ) -> Beast {
        Beast::start_in(Scratch::new(), backend, extra, adjust)
    }

    /// As [`Beast::start_with`], in a scratch directory the caller prepared (keys created with
    /// [`Scratch::create_key`], a journal left by an earlier run).
    pub fn start_in(
        scratch: Scratch,
        backend: &str,
        extra: &[&str],
        adjust: impl FnOnce(&mut std::process::Command),
    ) -> Beast {
        let prices = scratch.write("prices.jsonl", SEED);
        let stderr = scratch.path().join("stderr.log");
        let mut args = vec![
            "serve",
            "--io",
            backend,
            "--bind",
            "127.0.0.1",
            "--reactors",
            "2",
        ];
        // Protocol tests want the seeded prices alone; feed tests ask for the simulator and
        // get its prices alone.
        if !extra.contains(&"--feeds") {
            args.extend(["--feeds", "off", "--prices", prices.to_str().unwrap()]);
        }
        for port in [
            "--tcp-port-lpo",
            "--tcp-port-lrs",
            "--health-port-lpo",
            "--health-port-lrs",
            "--health-port-webhook",
            "--udp-port-lpo",
            "--udp-port-lrs",
        ] {
            args.extend([port, "0"]);
        }
        args.extend_from_slice(extra);
        let mut command = scratch.beast(&args);
        command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .env("BEAST_LOG", "info");
        adjust(&mut command);
        let mut child = command.spawn().expect("spawn beast");
        let stdout = child.stdout.take().unwrap();
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        let (exit_tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = exit_tx.send(child.wait().expect("wait for beast"));
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(WAIT).unwrap_or_default();
        let Ok(ready) = serde_json::from_str::<Value>(&line) else {
            kill(pid, libc::SIGKILL);
            let _ = exited.recv_timeout(WAIT);
            panic!(
                "beast did not become ready: {line:?}\nstderr:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        Beast {
            pid,
            exited,
            status: None,
            ready,
            stderr,
            scratch,
        }
    }

    /// A node of a cluster: named `name`, sharing `cache` (Valkey) and `database`
    /// (PostgreSQL), with [`CLUSTER_ADMIN`] as its admin key and 6 000 connections for the
    /// cluster to share.
    pub fn cluster_node(backend: &str, cache: &str, database: &str, name: &str) -> Beast {
        Beast::start_with(backend, &["--database-url", database], |c| {
            c.env("CACHE_URL", cache)
                .env("CLUSTER_NODE", name)
                .env("ADMIN_KEY", CLUSTER_ADMIN)
                .env("ADAPTIVE_MAX_CONCURRENT", "6000");
        })
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.ready[name]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {}", self.ready))
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Sends a signal.
    pub fn signal(&self, signal: i32) {
        if self.status.is_none() {
            kill(self.pid, signal);
        }
    }

    /// Sends a signal and waits (bounded) for the process to exit.
    pub fn signal_and_wait(&mut self, signal: i32) -> ExitStatus {
        self.signal(signal);
        self.wait()
    }

    /// Waits (bounded) for the process to exit on its own.
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let status = self
            .exited
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("beast did not exit within {WAIT:?}"));
        self.status = Some(status);
        status
    }

    /// Returns once the server has started draining: its health port answers `draining`, or
    /// no longer accepts connections. Bounded by [`WAIT`].
    pub fn wait_until_draining(&self) {
        let deadline = std::time::Instant::now() + WAIT;
        let addr = self.addr("health_lpo");
        loop {
            let Ok(mut stream) = TcpStream::connect_timeout(&addr, WAIT) else {
                return;
            };
            let _ = stream.set_read_timeout(Some(WAIT));
            let _ = stream.write_all(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            if reply.is_empty() || reply.contains("\"draining\"") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not start draining"
            );
        }
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// One request on a fresh connection, read to the end of the response.
    pub fn get(&self, path: &str) -> Response {
        let mut client = HttpClient::connect(self.addr("tcp_lpo"));
        client.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        client.response()
    }

    /// One request with `method` and extra header lines on a fresh connection.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut client = HttpClient::connect(self.addr("tcp_lpo"));
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        client.send(head.as_bytes());
        client.response()
    }

    /// `/metrics` from the health port, as text.
    pub fn metrics(&self) -> String {
        // A push node's only listener is its health port.
        let health = if self.ready["health_lpo"].is_string() {
            "health_lpo"
        } else {
            "health_webhook"
        };
        let mut client = HttpClient::connect(self.addr(health));
        client.send(b"GET /metrics HTTP/1.1\r\n\r\n");
        client.response().body_text()
    }

    /// The value of one metric line (`name{labels}` exactly), summed if it repeats.
    pub fn metric(&self, series: &str) -> f64 {
        metric(&self.metrics(), series)
    }

    /// Waits (up to a minute) until `sink` has delivered everything this node journaled, and
    /// the journal has every record the reactors queued.
    pub fn wait_delivered(&self, sink: &str) {
        let backlog = format!("beast_usage_sink_backlog_bytes{{sink=\"{sink}\"}}");
        // One scrape for all three: read apart, a batch journaled between them would pass.
        assert!(
            wait_until(Duration::from_secs(60), || {
                let metrics = self.metrics();
                metric(&metrics, &backlog) == 0.0
                    && metric(&metrics, "beast_usage_journaled_total")
                        == metric(&metrics, "beast_usage_recorded_total")
            }),
            "{sink} did not catch up:\n{}",
            self.metrics()
        );
    }

    /// Applies a fault to the in-process simulator (`beast serve --feeds sim`).
    pub fn sim_fault(&self, venue: &str, fault: &str) {
        let mut client = self.sim_client();
        client.send(
            format!("POST /control/{venue}/{fault} HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(client.response().status, 200, "fault {fault} on {venue}");
    }

    /// The ticks of `asset` the in-process simulator has streamed (`GET /control/sent`).
    pub fn sim_sent(&self, asset: &str) -> Value {
        let mut client = self.sim_client();
        client.send(format!("GET /control/sent?asset={asset} HTTP/1.1\r\n\r\n").as_bytes());
        let answer = client.response();
        assert_eq!(answer.status, 200, "{}", answer.body_text());
        answer.json()
    }

    fn sim_client(&self) -> HttpClient {
        let plain = self.ready["sim"]["plain"]
            .as_str()
            .expect("serve runs the simulator");
        HttpClient::connect(plain.parse().expect("sim address"))
    }

    /// `/health` as JSON.
    pub fn health(&self) -> Value {
        let mut client = HttpClient::connect(self.addr("health_lpo"));
        client.send(b"GET /health HTTP/1.1\r\n\r\n");
        client.response().json()
    }

    /// One venue's entry in `/health`'s feeds.
    pub fn feed(&self, venue: &str) -> Value {
        let health = self.health();
        health["feeds"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["venue"] == venue).cloned())
            .unwrap_or(Value::Null)
    }

    pub fn udp_client(&self, port: &str) -> UdpClient {
        UdpClient::connect(self.addr(port))
    }
}

impl Drop for Beast {
    fn drop(&mut self) {
        if self.status.is_none() {
            kill(self.pid, libc::SIGKILL);
            let _ = self.exited.recv_timeout(WAIT);
        }
    }
}

pub fn kill(pid: libc::pid_t, signal: i32) {
    // SAFETY: kill(2) on the pid of a child we started and have not reaped yet.
    #[allow(unsafe_code, reason = "sending a signal to our own child process")]
    let _ = unsafe { libc::kill(pid, signal) };
}

/// Polls `condition` every 20 ms until it holds; false if it did not within `limit`.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// The value of `series` in Prometheus text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body_text()))
    }
}

/// A raw HTTP/1.1 client over one connection.
pub struct HttpClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The last read gave up at the wait (rather than the server closing).
    timed_out: bool,
}

impl HttpClient {
    pub fn connect(addr: SocketAddr) -> HttpClient {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        HttpClient {
            stream,
            buf: Vec::new(),
            timed_out: false,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// Reads one response (head plus Content-Length body).
    pub fn response(&mut self) -> Response {
        self.try_response().unwrap_or_else(|| {
            panic!(
                "{} before a whole response; got {:?}",
                if self.timed_out {
                    "no answer within the wait"
                } else {
                    "connection closed"
                },
                String::from_utf8_lossy(&self.buf)
            )
        })
    }

    /// One response, or `None` if the server closed the connection first.
    pub fn try_response(&mut self) -> Option<Response> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .expect("status code");
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                let head_only = false;
                let total = end + 4 + if head_only { 0 } else { length };
                if self.buf.len() >= total {
                    let body = self.buf[end + 4..total].to_vec();
                    self.buf.drain(..total);
                    return Some(Response { status, head, body });
                }
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }

    /// Reads one response to a HEAD request (no body follows the head).
    pub fn head_response(&mut self) -> Response {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 4);
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .expect("status code");
                return Response {
                    status,
                    head,
                    body: Vec::new(),
                };
            }
            assert!(self.fill() > 0, "closed before the head");
        }
    }

    /// True once the server has closed the connection (reads to the end, bounded by WAIT).
    pub fn closed_by_server(&mut self) -> bool {
        loop {
            match self.fill_result() {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    fn fill(&mut self) -> usize {
        match self.fill_result() {
            Ok(n) => n,
            Err(e) => {
                self.timed_out |= matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
                0
            }
        }
    }

    fn fill_result(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A UDP client `connect`ed to one server port.
pub struct UdpClient {
    socket: UdpSocket,
}

impl UdpClient {
    pub fn connect(addr: SocketAddr) -> UdpClient {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(addr).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        UdpClient { socket }
    }

    pub fn send(&self, datagram: &[u8]) {
        self.socket.send(datagram).expect("send datagram");
    }

    /// Sends and waits for the reply.
    pub fn ask(&self, datagram: &[u8]) -> Vec<u8> {
        self.send(datagram);
        self.recv()
    }

    pub fn recv(&self) -> Vec<u8> {
        let mut buf = [0u8; 65536];
        let n = self.socket.recv(&mut buf).expect("a reply within the wait");
        buf[..n].to_vec()
    }

    /// Sends `datagram`, then a probe (a padded v8 request with a request id no test uses),
    /// and returns every reply that came before the probe's. One socket's datagrams are
    /// answered in order, so an empty result proves `datagram` got no reply, without waiting
    /// for a timeout.
    pub fn ask_then_probe(&self, datagram: &[u8]) -> Vec<Vec<u8>> {
        use beast_engine::protocol::udp::v8;
        const PROBE_ID: u32 = 0x00C0_FFEE;
        let mut probe = [0u8; 64];
        let len = v8::encode_request(&mut probe, PROBE_ID, None, &[b"BTC"], v8::reply_len(1))
            .expect("probe");
        self.send(datagram);
        self.send(&probe[..len]);
        let mut replies = Vec::new();
        loop {
            let reply = self.recv();
            if v8::parse_reply(&reply).is_ok_and(|(header, _)| header.request_id == PROBE_ID) {
                return replies;
            }
            replies.push(reply);
        }
    }
}

/// `text` padded with spaces to `len` bytes.
pub fn padded(text: &str, len: usize) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    if bytes.len() < len {
        bytes.resize(len, b' ');
    }
    bytes
}

/// Drives `beast-bench` against a server and reads its JSON result.
pub struct Load {
    handle: std::thread::JoinHandle<Value>,
}

impl Load {
    /// Starts `beast-bench http|udp ADDR` with `args` (no warm-up, so every request counts) in
    /// the background.
    pub fn start(form: &str, addr: SocketAddr, args: &[&str]) -> Load {
        let out = crate::Scratch::new();
        let mut command = std::process::Command::new(crate::bench_bin());
        command
            .args([form, &addr.to_string(), "--warmup", "0s", "-q"])
            .args(args)
            .arg("--json")
            .arg(out.path().join("load.json"));
        if !args.contains(&"-d") {
            command.args(["-d", "120s"]); // bounded by -n instead
        }
        let handle = std::thread::spawn(move || {
            let done = command.output().expect("run beast-bench");
            let text = std::fs::read_to_string(out.path().join("load.json")).unwrap_or_else(|_| {
                panic!(
                    "beast-bench wrote no result: {}",
                    String::from_utf8_lossy(&done.stderr)
                )
            });
            serde_json::from_str(&text).expect("beast-bench JSON")
        });
        Load { handle }
    }

    /// Waits for the load to end; its result.
    pub fn finish(self) -> Value {
        self.handle.join().expect("load thread")
    }
}

/// `beast usage count` in `scratch` with `env`: the store's record count.
pub fn usage_count(scratch: &crate::Scratch, env: &[(&str, &str)], extra: &[&str]) -> u64 {
    let mut command = scratch.beast(&[&["usage", "count"][..], extra].concat());
    command.envs(env.iter().copied());
    let out = command.output().expect("run beast usage count");
    assert!(
        out.status.success(),
        "beast usage count: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    line["count"].as_u64().expect("a count")
}

/// Sends `payload` to `to` (IPv4) as a UDP datagram from source port 0, which no reply can
/// reach: a raw socket, so it needs CAP_NET_RAW (the test suite runs as root).
pub fn send_from_port_zero(to: SocketAddr, payload: &[u8]) {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP))
        .expect("a raw socket (CAP_NET_RAW) to send from port 0");
    let len = u16::try_from(8 + payload.len()).expect("a short datagram");
    let mut packet = Vec::with_capacity(8 + payload.len());
    packet.extend_from_slice(&0u16.to_be_bytes()); // source port 0
    packet.extend_from_slice(&to.port().to_be_bytes());
    packet.extend_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(&0u16.to_be_bytes()); // no checksum (allowed on IPv4)
    packet.extend_from_slice(payload);
    socket
        .send_to(&packet, &SockAddr::from(to))
        .expect("send the raw datagram");
}
