//! Headless Chromium for the tests that check what a browser makes of a page.

use std::path::Path;
use std::process::Command;

fn chromium() -> &'static str {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("Chromium is installed (scripts/test.sh installs it)")
}

fn run(url: &str, action: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--timeout=20000",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(action)
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM Chromium built from `url` (a `file://` or `http://` address).
pub fn dump_dom(url: &str) -> String {
    run(url, "--dump-dom")
}

/// Writes a screenshot of `url` to `png`.
pub fn screenshot(url: &str, png: &Path) {
    run(url, &format!("--screenshot={}", png.display()));
    let written = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    assert!(
        written > 1_000,
        "screenshot of {url} written to {}",
        png.display()
    );
}
