//! The operator's admin calls: `X-Admin-Key` required (401 and a counter otherwise), every call
//! logged without a secret, and each call doing what it says.

use std::time::Duration;

use beast_tests::Scratch;
use beast_tests::server::{Beast, wait_until};

const ADMIN: &str = "admin-secret-0123456789";

fn admin(beast: &Beast, method: &str, path: &str) -> beast_tests::server::Response {
    beast.request(method, path, &[("X-Admin-Key", ADMIN)])
}

beast_tests::on_both_backends! {
    fn admin_calls_need_the_admin_key(backend) {
        let beast = Beast::start_with(backend, &[], |c| {
            c.env("ADMIN_KEY", ADMIN);
        });
        for (method, path) in [
            ("POST", "/admin/reload-params"),
            ("POST", "/admin/system-mode?mode=performance"),
            ("GET", "/admin/feed-status"),
            ("POST", "/admin/bootstrap-key"),
        ] {
            let missing = beast.request(method, path, &[]);
            assert_eq!(missing.status, 401, "{path}");
            assert_eq!(missing.json()["error"], "unauthorized");
            let wrong = beast.request(method, path, &[("X-Admin-Key", "admin-secret-0123456780")]);
            assert_eq!(wrong.status, 401, "{path}");
        }
        assert_eq!(beast.metric("beast_admin_denied_total"), 8.0);
        assert_eq!(beast.metric("beast_admin_calls_total"), 0.0);
        // Without ADMIN_KEY configured, nothing opens the admin calls.
        let closed = Beast::start(backend, &[]);
        assert_eq!(
            closed
                .request("GET", "/admin/feed-status", &[("X-Admin-Key", "")])
                .status,
            401
        );
    }
}

beast_tests::on_both_backends! {
    fn a_flood_of_refused_admin_calls_is_counted_in_full_and_logged_briefly(backend) {
        let mut beast = Beast::start_with(backend, &[], |c| {
            c.env("ADMIN_KEY", ADMIN);
        });
        let started = std::time::Instant::now();
        let long = format!("/admin/{}", "x".repeat(1_500));
        let mut client = beast_tests::server::HttpClient::connect(beast.addr("tcp_lpo"));
        const FLOOD: usize = 2_000;
        for _ in 0..FLOOD / 100 {
            // A hundred pipelined at a time.
            let one = format!("GET {long} HTTP/1.1\r\nHost: t\r\nX-Admin-Key: wrong-admin-key-00000\r\n\r\n");
            client.send(one.repeat(100).as_bytes());
            for _ in 0..100 {
                assert_eq!(client.response().status, 401);
            }
        }
        let elapsed = started.elapsed();
        assert_eq!(beast.metric("beast_admin_denied_total"), FLOOD as f64);
        assert_eq!(beast.get("/price?asset=BTC").status, 200);
        assert!(beast.signal_and_wait(libc::SIGTERM).success());
        let log = beast.stderr_text();
        let lines: Vec<&str> = log.lines().filter(|l| l.contains("admin calls refused")).collect();
        // The first refusal is logged at once, then at most one line per 10 s.
        let allowed = 1 + (elapsed.as_secs() / 10) as usize;
        assert!(!lines.is_empty() && lines.len() <= allowed, "{} lines in {elapsed:?}:\n{}", lines.len(), lines.join("\n"));
        assert!(lines.iter().all(|l| l.len() < 400), "the call's name is cut: {}", lines[0]);
    }
}

beast_tests::on_both_backends! {
    fn bootstrap_then_invalidate_then_status(backend) {
        let beast = Beast::start_with(backend, &[], |c| {
            c.env("ADMIN_KEY", ADMIN);
        });
        let made = admin(&beast, "POST", "/admin/bootstrap-key?tier=pro");
        assert_eq!(made.status, 200, "{}", made.body_text());
        let key = made.json()["key"].as_str().unwrap().to_string();
        let path = format!("/price?asset=BTC&key={key}");
        assert!(
            wait_until(Duration::from_secs(1), || beast.get(&path).status == 200),
            "the bootstrap key is in force within a second"
        );
        let again = admin(&beast, "POST", "/admin/bootstrap-key");
        assert_eq!(again.status, 409, "only on an empty store");

        let status = admin(&beast, "GET", &format!("/admin/key-status?key={key}")).json();
        assert_eq!(status["active"], true);
        assert_eq!(status["tier"], "pro");
        assert_eq!(status["limit_per_s"], 1000);
        assert!(!status.to_string().contains(&key), "never echoes the key");

        let gone = admin(&beast, "POST", &format!("/admin/invalidate-key?key={key}"));
        assert_eq!(gone.status, 200, "{}", gone.body_text());
        assert_eq!(beast.get(&path).status, 401, "refused at once");
        assert_eq!(
            admin(&beast, "GET", &format!("/admin/key-status?key={key}")).json()["active"],
            false
        );
        // The store has it revoked: it stays refused after the next reload.
        assert_eq!(admin(&beast, "POST", "/admin/reload-params").status, 202);
        assert!(wait_until(Duration::from_secs(2), || beast
            .metric("beast_api_key_reloads_total")
            >= 3.0));
        assert_eq!(beast.get(&path).status, 401);
        let unknown = admin(
            &beast,
            "POST",
            "/admin/invalidate-key?key=bk_never_issued_00",
        );
        assert_eq!(unknown.status, 404);

        // Every call was logged, and no secret with it.
        let log = beast.stderr_text();
        assert!(log.contains("admin call"), "{log}");
        assert!(!log.contains(ADMIN) && !log.contains(&key), "{log}");
    }
}

beast_tests::on_both_backends! {
    fn system_mode_raises_the_demo_limit_and_persists(backend) {
        let home = Scratch::new();
        let key = home.create_key("demo");
        let data = home.path().join("data");
        let beast = Beast::start_with(
            backend,
            &["--beast-data-dir", data.to_str().unwrap()],
            |c| {
                c.env("ADMIN_KEY", ADMIN);
            },
        );
        let path = format!("/price?asset=BTC&key={key}");
        let served = |n| (0..n).filter(|_| beast.get(&path).status == 200).count();
        assert!(served(10) <= 4, "3 per second");
        // The side thread logs each admin command it carries out, at info.
        let commands = || beast.stderr_text().matches("admin command").count();
        let reloads = || beast.metric("beast_param_reloads_total");
        let before = reloads();
        assert_eq!(admin(&beast, "POST", "/admin/reload-params").status, 202);
        assert!(wait_until(Duration::from_secs(5), || reloads() > before));
        assert_eq!(commands(), 1);
        let mode = admin(&beast, "POST", "/admin/system-mode?mode=performance");
        assert_eq!(mode.json()["demo_limit_per_s"], 1000);
        assert_eq!(served(50), 50, "1 000 per second in performance mode");
        // The performance profile logs errors only (LOG_LEVEL), admin calls excepted.
        let before = reloads();
        assert_eq!(admin(&beast, "POST", "/admin/reload-params").status, 202);
        assert!(wait_until(Duration::from_secs(5), || reloads() > before));
        assert_eq!(commands(), 1, "info lines are off in performance mode");
        assert_eq!(
            beast.stderr_text().matches("admin call").count(),
            3,
            "admin calls are logged in both modes"
        );
        assert_eq!(
            admin(&beast, "POST", "/admin/system-mode?mode=fast").status,
            400
        );
        assert_eq!(
            admin(&beast, "GET", "/admin/system-mode?mode=normal").status,
            405
        );
        let feeds = admin(&beast, "GET", "/admin/feed-status").json();
        assert!(feeds["feeds"].is_array());
        drop(beast);
        // The mode is a stored parameter: a restarted node comes back in it.
        let again = Beast::start_with(
            backend,
            &["--beast-data-dir", data.to_str().unwrap()],
            |c| {
                c.env("ADMIN_KEY", ADMIN);
            },
        );
        let status = admin(&again, "GET", &format!("/admin/key-status?key={key}")).json();
        assert_eq!(status["limit_per_s"], 1000, "{status}");
    }
}

beast_tests::on_both_backends! {
    /// An admin revocation made while the store is down is kept out of every key set and stored
    /// once the store is back.
    fn a_revocation_during_a_store_outage_is_stored_when_it_returns(backend) {
        let mut pg = beast_tests::services::Postgres::start();
        let url = pg.url();
        let data = Scratch::new();
        let out = data
            .beast(&["keys", "create", "--tier", "pro"])
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let beast = Beast::start_with(
            backend,
            &["--beast-data-dir", data.path().to_str().unwrap()],
            |c| {
                c.env("ADMIN_KEY", ADMIN).env("DATABASE_URL", &url);
            },
        );
        let path = format!("/price?asset=BTC&key={key}");
        assert_eq!(beast.get(&path).status, 200);
        pg.stop();
        let gone = admin(&beast, "POST", &format!("/admin/invalidate-key?key={key}"));
        assert_eq!(gone.status, 200, "{}", gone.body_text());
        assert_eq!(beast.get(&path).status, 401);
        pg.resume();
        assert!(
            wait_until(Duration::from_secs(10), || pg.query(
                "SELECT count(*) FROM api_keys WHERE revoked_ms IS NOT NULL"
            ) == "1"),
            "stored once the store is back"
        );
        assert_eq!(beast.get(&path).status, 401, "and still refused");
    }
}
