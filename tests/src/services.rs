//! The real stores the tests run against: a private PostgreSQL (the machine's own binaries, in a
//! scratch directory, so a test may stop and restart it), Redis (the machine's, on
//! `BEAST_TEST_REDIS_URL`, default `redis://127.0.0.1:6379/15`), and a private moto_server
//! for SQS. `scripts/test.sh` installs whatever is missing.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::Scratch;
use crate::server::wait_until;

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a command, panicking with its output when it fails.
fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// PostgreSQL's programs: the newest Debian cluster version installed.
fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test.sh installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join(name).exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL bin directory")
        .join(name)
}

/// As the `postgres` user when running as root (PostgreSQL refuses to run as root).
fn as_postgres(program: PathBuf) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn is_root() -> bool {
    std::env::var("USER").is_ok_and(|u| u == "root")
        || std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
        })
}

/// A PostgreSQL server of its own, on a free port, in a scratch directory.
pub struct Postgres {
    dir: Scratch,
    pub port: u16,
    running: bool,
    /// Server options added to the start command (TLS files).
    options: String,
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// A server that offers TLS with a certificate for 127.0.0.1 signed by a CA of its own,
    /// whose certificate (PEM) is `ca_file()`.
    pub fn start_tls() -> Postgres {
        Postgres::start_with(true)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("pg/ca.crt")
    }

    fn start_with(tls: bool) -> Postgres {
        let dir = Scratch::new();
        let data = dir.path().join("pg");
        std::fs::create_dir(&data).unwrap();
        if is_root() {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path()));
        }
        run(as_postgres(pg_bin("initdb"))
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "-D",
            ])
            .arg(&data));
        let mut options = String::new();
        if tls {
            // A CA of its own and a server certificate it signed, as RDS does.
            let (crt, key) = (data.join("server.crt"), data.join("server.key"));
            let (ca, ca_key, csr) = (data.join("ca.crt"), data.join("ca.key"), data.join("csr"));
            let ext = data.join("ext");
            std::fs::write(
                &ext,
                "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
            )
            .unwrap();
            let openssl = |args: &[&str], paths: &[(&str, &PathBuf)]| {
                let mut command = Command::new("openssl");
                command.args(args).stderr(Stdio::null());
                for (flag, path) in paths {
                    command.arg(flag).arg(path);
                }
                run(&mut command);
            };
            openssl(
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=beast test CA",
                ],
                &[("-keyout", &ca_key), ("-out", &ca)],
            );
            openssl(
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
                &[("-keyout", &key), ("-out", &csr)],
            );
            openssl(
                &["x509", "-req", "-days", "2", "-CAcreateserial"],
                &[
                    ("-in", &csr),
                    ("-CA", &ca),
                    ("-CAkey", &ca_key),
                    ("-extfile", &ext),
                    ("-out", &crt),
                ],
            );
            run(Command::new("chmod").arg("600").arg(&key));
            if is_root() {
                run(Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(&key)
                    .arg(&crt));
            }
            options = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                crt.display(),
                key.display()
            );
        }
        let mut pg = Postgres {
            dir,
            port: free_port(),
            running: false,
            options,
        };
        pg.resume();
        run(Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc"])
            .arg("CREATE DATABASE beast")
            .arg("-p")
            .arg(pg.port.to_string()));
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/beast", self.port)
    }

    /// Starts (again) and waits until it accepts connections.
    pub fn resume(&mut self) {
        let data = self.dir.path().join("pg");
        run(as_postgres(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(data.join("log"))
            .args(["-w", "-t", "30", "-o"])
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off{}",
                self.port,
                data.display(),
                self.options
            ))
            .arg("start")
            .stdout(Stdio::null()));
        self.running = true;
    }

    /// Stops at once (`-m fast`: open connections are cut, as in an outage).
    pub fn stop(&mut self) {
        let data = self.dir.path().join("pg");
        run(as_postgres(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null()));
        self.running = false;
    }

    /// Requests the usage rollups count.
    pub fn usage_requests(&self) -> u64 {
        self.query("SELECT COALESCE(SUM(requests), 0) FROM usage_rollups")
            .parse()
            .expect("a count")
    }

    /// One value from a query (psql, unaligned).
    pub fn query(&self, sql: &str) -> String {
        run(Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "beast", "-Atqc"])
            .arg(sql)
            .arg("-p")
            .arg(self.port.to_string()))
        .trim()
        .to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.dir.path().join("pg");
            let _ = as_postgres(pg_bin("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A Redis server of its own on a free port, which a test may stop and start again.
pub struct PrivateRedis {
    dir: Scratch,
    pub port: u16,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        let redis = PrivateRedis {
            dir: Scratch::new(),
            port: free_port(),
        };
        redis.resume();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts (again) on the same port and waits until it answers.
    pub fn resume(&self) {
        run(Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log")));
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(10), || Command::new("redis-cli")
                .args(["-p", &port.to_string(), "ping"])
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"PONG"))),
            "redis-server answers"
        );
    }

    pub fn stop(&self) {
        let _ = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "shutdown", "nosave"])
            .output();
    }

    pub fn cli(&self, args: &[&str]) -> String {
        run(Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args))
        .trim()
        .to_string()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Redis for the tests: `BEAST_TEST_REDIS_URL`, else the machine's on 6379, database 15.
pub fn redis_url() -> String {
    std::env::var("BEAST_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/15".into())
}

/// Runs `redis-cli` against [`redis_url`].
pub fn redis_cli(args: &[&str]) -> String {
    run(Command::new("redis-cli")
        .arg("-u")
        .arg(redis_url())
        .args(args))
    .trim()
    .to_string()
}

/// moto_server (SQS) of its own on a free port.
pub struct Moto {
    child: Child,
    pub port: u16,
    _dir: Scratch,
}

impl Moto {
    pub fn start() -> Moto {
        let dir = Scratch::new();
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("moto.log")).unwrap())
            .spawn()
            .expect("moto_server is installed (scripts/test.sh installs it)");
        let moto = Moto {
            child,
            port,
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(30), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "moto_server listens"
        );
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Pauses the server (SIGSTOP): calls hang and time out, as when SQS is unreachable.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: i32) {
        crate::server::kill(libc::pid_t::try_from(self.child.id()).unwrap(), signal);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `promtool check metrics` on `text` (Debian's prometheus package; scripts/test.sh installs
/// it): whether it passed, and what it said.
pub fn promtool(text: &str) -> (bool, String) {
    // promtool is Debian's prometheus package; scripts/test.sh installs it.
    let out = crate::run_with_input(
        Command::new("promtool").args(["check", "metrics"]),
        text.as_bytes(),
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// nginx in the foreground as a load balancer (its stream module: TCP and UDP, round robin)
/// in front of some nodes, on a port of its own for each.
pub struct Nginx {
    child: Child,
    dir: Scratch,
    pub tcp: std::net::SocketAddr,
    pub udp: std::net::SocketAddr,
}

impl Nginx {
    /// Balances `tcp` and `udp` (the nodes' addresses); returns once it accepts connections.
    pub fn start(tcp: &[std::net::SocketAddr], udp: &[std::net::SocketAddr]) -> Nginx {
        let dir = Scratch::new();
        let (tcp_port, udp_port) = (free_port(), free_udp_port());
        let servers = |nodes: &[std::net::SocketAddr]| -> String {
            nodes
                .iter()
                .map(|a| format!("    server {a} max_fails=1 fail_timeout=10s;\n"))
                .collect()
        };
        let path = dir.path().display();
        let config = format!(
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
pid {path}/nginx.pid;
error_log {path}/error.log warn;
events {{ worker_connections 4096; }}
stream {{
  upstream tcp_nodes {{
{}  }}
  upstream udp_nodes {{
{}  }}
  server {{
    listen 127.0.0.1:{tcp_port};
    proxy_pass tcp_nodes;
    proxy_connect_timeout 1s;
  }}
  server {{
    listen 127.0.0.1:{udp_port} udp;
    proxy_pass udp_nodes;
    proxy_responses 1;
    proxy_timeout 1s;
  }}
}}
",
            servers(tcp),
            servers(udp)
        );
        let conf = dir.write("nginx.conf", &config);
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (scripts/test.sh installs it with its stream module)");
        let tcp: std::net::SocketAddr = format!("127.0.0.1:{tcp_port}").parse().unwrap();
        let udp = format!("127.0.0.1:{udp_port}").parse().unwrap();
        let mut nginx = Nginx {
            child,
            dir,
            tcp,
            udp,
        };
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(tcp).is_ok()
        });
        if !up {
            let log = std::fs::read_to_string(nginx.dir.path().join("error.log"));
            let _ = nginx.child.kill();
            panic!("nginx did not start: {log:?}");
        }
        nginx
    }
}

impl Nginx {
    /// nginx's error log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM (not SIGKILL): the master takes its worker down with it.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            crate::server::kill(pid, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// A UDP port nothing is bound to right now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn call(
    client: &beast_engine::side::sink::sqs::SqsClient,
    target: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    serde_json::from_str(&client.call(target, &body.to_string()).unwrap()).unwrap()
}

/// Receives and deletes every message; the bodies.
pub fn drain(endpoint: &str, queue: &str) -> Vec<serde_json::Value> {
    let client = beast_engine::side::sink::sqs::SqsClient::with_credentials(
        endpoint,
        "us-east-1",
        "test",
        "test",
    );
    let mut bodies = Vec::new();
    let mut empty = 0;
    while empty < 3 {
        let got = call(
            &client,
            "AmazonSQS.ReceiveMessage",
            &serde_json::json!({ "QueueUrl": queue, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1 }),
        );
        let messages = got["Messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            empty += 1;
            continue;
        }
        empty = 0;
        let entries: Vec<serde_json::Value> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| serde_json::json!({ "Id": i.to_string(), "ReceiptHandle": m["ReceiptHandle"] }))
            .collect();
        call(
            &client,
            "AmazonSQS.DeleteMessageBatch",
            &serde_json::json!({ "QueueUrl": queue, "Entries": entries }),
        );
        bodies.extend(
            messages
                .iter()
                .map(|m| serde_json::from_str(m["Body"].as_str().unwrap()).unwrap()),
        );
    }
    bodies
}

pub fn create_queue(endpoint: &str, name: &str, fifo: bool) -> String {
    let client = beast_engine::side::sink::sqs::SqsClient::with_credentials(
        endpoint,
        "us-east-1",
        "test",
        "test",
    );
    let attributes = if fifo {
        serde_json::json!({ "FifoQueue": "true" })
    } else {
        serde_json::json!({})
    };
    let created = call(
        &client,
        "AmazonSQS.CreateQueue",
        &serde_json::json!({ "QueueName": name, "Attributes": attributes }),
    );
    created["QueueUrl"].as_str().unwrap().to_string()
}

/// Records in the distinct batches received, and the number of messages.
pub fn records(bodies: &[serde_json::Value]) -> (u64, usize) {
    let mut seen = std::collections::HashSet::new();
    let mut records = 0;
    for body in bodies {
        if seen.insert(body["batch_id"].as_str().unwrap().to_string()) {
            records += body["records"].as_u64().unwrap();
        }
    }
    (records, seen.len())
}

/// Every message left in `queue` (received and deleted): records in distinct batches, the
/// distinct batches, and the messages.
pub fn sqs_records(endpoint: &str, queue: &str) -> (u64, usize, usize) {
    let bodies = drain(endpoint, queue);
    let (records, batches) = records(&bodies);
    (records, batches, bodies.len())
}
