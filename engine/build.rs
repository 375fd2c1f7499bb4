//! Records the git commit and build target for `beast version`.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        // A build without the repository (a container build) is told its commit.
        .or_else(|| {
            std::env::var("BEAST_GIT_COMMIT")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rerun-if-env-changed=BEAST_GIT_COMMIT");
    println!("cargo:rustc-env=BEAST_GIT_COMMIT={commit}");
    println!(
        "cargo:rustc-env=BEAST_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
    println!(
        "cargo:rustc-env=BEAST_PROFILE={}",
        std::env::var("PROFILE").unwrap_or_default()
    );
    // Rebuild when HEAD moves (a checkout or a commit on the current branch).
    for path in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        println!("cargo:rerun-if-changed={path}");
    }
}
