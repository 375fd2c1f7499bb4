//! `BEAST_LOG_FORMAT=json`: every line the node logs is one JSON object a log pipeline can
//! parse (time, level, event and its fields), and no secret appears in any of them: not the
//! admin key, not a wrong key presented for it, not a store's password.

use beast_tests::on_both_backends;
use beast_tests::server::Beast;

const ADMIN: &str = "admin-key-secret-0123456789abcdef";
const WRONG: &str = "wrong-admin-key-guess-000000";
const PASSWORD: &str = "valkey-password-hunter2";

on_both_backends! {
    fn logs_are_json_lines_without_secrets(backend) {
        let cache = format!("redis://:{PASSWORD}@127.0.0.1:1/0");
        let mut beast = Beast::start_with(backend, &["--cache-url", &cache], |c| {
            c.env("BEAST_LOG_FORMAT", "json").env("ADMIN_KEY", ADMIN);
        });
        // A refused admin call and an unreachable Valkey: both logged.
        let mut client = beast_tests::server::HttpClient::connect(beast.addr("tcp_lpo"));
        client.send(format!("GET /admin/feed-status HTTP/1.1\r\nX-Admin-Key: {WRONG}\r\n\r\n").as_bytes());
        assert_eq!(client.response().status, 401);
        assert!(beast.signal_and_wait(libc::SIGTERM).success());
        let log = beast.stderr_text();
        let mut events = Vec::new();
        for line in log.lines() {
            let entry: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(entry["timestamp"].is_string() && entry["level"].is_string(), "{line}");
            let message = entry["fields"]["message"].as_str().unwrap_or_else(|| panic!("no event: {line}"));
            events.push(message.to_string());
        }
        for wanted in ["admin calls refused", "Valkey unreachable", "stopped"] {
            assert!(events.iter().any(|e| e.contains(wanted)), "{wanted}: {events:?}");
        }
        for secret in [ADMIN, WRONG, PASSWORD] {
            assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        }
    }
}
