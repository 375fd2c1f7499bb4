//! Helpers for the end-to-end tests: find the built `beast`, run it in a clean environment.

pub mod browser;
pub mod inproc;
mod rng;
pub mod server;
pub mod services;

pub use rng::Rng;

/// Runs one test body on each I/O backend, as a test of its own per backend:
/// `on_both_backends! { fn name(backend) { ... } }` makes `name::uring` and `name::epoll`,
/// with `backend` the name `Beast::start` takes.
#[macro_export]
macro_rules! on_both_backends {
    ($(#[doc = $doc:literal])* fn $name:ident($backend:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports, reason = "the body sees what the file imports")]
            use super::*;

            fn body($backend: &'static str) $body

            #[test]
            fn uring() {
                body("uring")
            }

            #[test]
            fn epoll() {
                body("epoll")
            }
        }
    };
}

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `beast` binary built alongside these tests (`target/<profile>/beast`).
///
/// The workspace test command builds every binary first; run `cargo build --bin beast` before
/// running this crate's tests alone.
pub fn beast_bin() -> PathBuf {
    workspace_bin("beast")
}

/// The `beast-bench` binary built alongside these tests.
pub fn bench_bin() -> PathBuf {
    workspace_bin("beast-bench")
}

fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build --bin {name}`",
        bin.display()
    );
    bin
}

/// A scratch directory for one test: the working directory of the processes it runs, so no
/// stray beast.toml or data directory is picked up. Removed on drop.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("beast-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name` in the scratch directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write scratch file");
        path
    }

    /// `beast` with `args`, run in this directory with an empty environment (plus `PATH`), so
    /// settings from the machine or the CI job cannot leak in.
    /// Creates an API key of `tier` in this directory's embedded store (`beast keys create`).
    pub fn create_key(&self, tier: &str) -> String {
        let out = self
            .beast(&["keys", "create", "--tier", tier])
            .output()
            .expect("run beast keys create");
        assert!(
            out.status.success(),
            "beast keys create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8 key")
            .trim()
            .to_string()
    }

    pub fn beast(&self, args: &[&str]) -> Command {
        let mut command = Command::new(beast_bin());
        command.args(args).current_dir(self.path()).env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// stdout and stderr as text, and the exit code.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` with `input` on its standard input; what it printed and how it exited.
pub fn run_with_input(command: &mut Command, input: &[u8]) -> Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

pub fn run(command: &mut Command) -> Ran {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run beast");
    Ran {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into(),
        stderr: String::from_utf8_lossy(&stderr).into(),
    }
}
