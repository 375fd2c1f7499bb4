//! Usage to a real PostgreSQL: its own server, stopped and restarted mid-load, and `beast` itself
//! stopped with SIGTERM and killed with SIGKILL. Afterwards the rollups count exactly one
//! request per answer with prices: none lost, none twice, in a few rows whatever the rate.

use std::time::Duration;

use beast_tests::Scratch;
use beast_tests::server::{Beast, Load, usage_count, wait_until};
use beast_tests::services::Postgres;

const LIMIT: Duration = Duration::from_secs(60);

/// `beast serve` on `pg` with its data (journal, cursors) in `data`.
fn serve(backend: &str, data: &Scratch, pg: &Postgres) -> Beast {
    let url = pg.url();
    Beast::start_with(
        backend,
        &["--beast-data-dir", data.path().to_str().unwrap()],
        |command| {
            command.env("DATABASE_URL", &url);
        },
    )
}

beast_tests::on_both_backends! {
    fn a_postgres_outage_mid_load_loses_and_doubles_nothing(backend) {
        let mut pg = Postgres::start();
        let data = Scratch::new();
        let beast = serve(backend, &data, &pg);
        // 50 000 requests at 10 000/s: the outage falls in the middle.
        let load = Load::start(
            "http",
            beast.addr("tcp_lpo"),
            &["-n", "50000", "-r", "10000", "-c", "8", "-a", "BTC,ETH"],
        );
        assert!(wait_until(LIMIT, || beast
            .metric("beast_usage_sink_delivered_total{sink=\"postgres\"}")
            > 0.0));
        pg.stop();
        assert!(
            wait_until(LIMIT, || beast
                .metric("beast_usage_sink_errors_total{sink=\"postgres\"}")
                > 0.0),
            "the outage is seen"
        );
        assert!(
            wait_until(LIMIT, || beast
                .metric("beast_usage_sink_backlog_bytes{sink=\"postgres\"}")
                > 0.0),
            "usage waits in the journal"
        );
        assert_eq!(beast.metric("beast_usage_sink_up{sink=\"postgres\"}"), 0.0);
        pg.resume();
        let result = load.finish();
        assert_eq!(result["ok"], 50_000, "{result}");
        beast.wait_delivered("postgres");
        assert_eq!(beast.metric("beast_usage_recorded_total"), 50_000.0);
        assert_eq!(beast.metric("beast_usage_dropped_total"), 0.0);
        assert_eq!(pg.usage_requests(), 50_000);
        assert_eq!(
            pg.query("SELECT SUM(requests) || ' ' || SUM(prices) FROM usage_rollups WHERE protocol = 'http' AND key_id = 0 AND asset IN ('BTC', 'ETH') AND node <> ''"),
            "50000 50000",
            "the rollups say what was asked, how and by whom"
        );
        let rows: u64 = pg
            .query("SELECT COUNT(*) FROM usage_rollups")
            .parse()
            .unwrap();
        assert!(
            rows <= 2 * 9 * 3,
            "at most one row per asset, latency bucket and minute: {rows}"
        );
        assert_eq!(
            pg.query("SELECT COUNT(*) FROM usage_logs"),
            "0",
            "raw records are off"
        );
        let env = [("DATABASE_URL", pg.url())];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(usage_count(&data, &env, &[]), 50_000);
    }
}

beast_tests::on_both_backends! {
    fn sigterm_mid_load_then_restart_counts_every_answer_once(backend) {
        let pg = Postgres::start();
        let data = Scratch::new();
        let mut beast = serve(backend, &data, &pg);
        let load = Load::start(
            "http",
            beast.addr("tcp_lpo"),
            &["-n", "40000", "-r", "10000", "-c", "8"],
        );
        assert!(wait_until(LIMIT, || beast
            .metric("beast_usage_sink_delivered_total{sink=\"postgres\"}")
            > 5000.0));
        let status = beast.signal_and_wait(libc::SIGTERM);
        assert!(status.success(), "{status:?}");
        let result = load.finish();
        let answered = result["ok"].as_u64().unwrap();
        assert!(
            (5000..40_000).contains(&answered),
            "stopped mid-load: {result}"
        );
        // Whatever the grace period did not deliver waits in the journal for the next start.
        let again = serve(backend, &data, &pg);
        again.wait_delivered("postgres");
        assert_eq!(pg.usage_requests(), answered);
    }
}

beast_tests::on_both_backends! {
    fn kill_9_after_the_journal_write_replays_on_restart(backend) {
        let mut pg = Postgres::start();
        pg.stop();
        let data = Scratch::new();
        let beast = serve(backend, &data, &pg);
        let result = Load::start(
            "http",
            beast.addr("tcp_lpo"),
            &["-n", "20000", "-c", "8", "-w", "4"],
        )
        .finish();
        assert_eq!(
            result["ok"], 20_000,
            "prices are served with the store down"
        );
        assert!(
            wait_until(LIMIT, || beast.metric("beast_usage_journaled_total")
                == 20_000.0),
            "all journaled"
        );
        assert_eq!(
            beast.metric("beast_usage_sink_delivered_total{sink=\"postgres\"}"),
            0.0
        );
        drop(beast); // SIGKILL
        pg.resume();
        let again = serve(backend, &data, &pg);
        again.wait_delivered("postgres");
        assert_eq!(pg.usage_requests(), 20_000);
        assert_eq!(
            again.metric("beast_usage_sink_replayed_total{sink=\"postgres\"}"),
            20_000.0
        );
    }
}

beast_tests::on_both_backends! {
    fn keys_live_in_postgres_and_migrations_run_once(backend) {
        let pg = Postgres::start();
        let data = Scratch::new();
        let env = [("DATABASE_URL", pg.url())];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let out = data
            .beast(&["keys", "create", "--tier", "pro", "--name", "pg"])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert_eq!(pg.query("SELECT tier FROM api_keys"), "pro");
        assert!(
            !pg.query("SELECT key_hash FROM api_keys").contains(&key),
            "only the hash is stored"
        );
        let beast = serve(backend, &data, &pg);
        let priced = beast.get(&format!("/price?asset=BTC&key={key}"));
        assert_eq!(priced.status, 200);
        assert_eq!(
            beast.get("/price?asset=BTC&key=bk_not_a_key_at_all").status,
            401
        );
        assert!(wait_until(LIMIT, || pg.usage_requests() == 1));
        assert_eq!(
            pg.query("SELECT key_id FROM usage_rollups"),
            pg.query("SELECT id FROM api_keys")
        );
        assert_eq!(usage_count(&data, &env, &["--key", &key]), 1);
        assert_eq!(
            pg.query("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"),
            "1,2,3,4"
        );
    }
}

beast_tests::on_both_backends! {
    /// Killed mid-load, a node loses only what it had answered but not yet journaled (the last
    /// drain interval, 5 ms), and counts nothing twice when it replays at the next start.
    fn kill_9_mid_load_doubles_nothing_and_loses_at_most_the_last_drain(backend) {
        let pg = Postgres::start();
        let data = Scratch::new();
        let beast = serve(backend, &data, &pg);
        let load = Load::start(
            "http",
            beast.addr("tcp_lpo"),
            &["-n", "40000", "-r", "10000", "-c", "8"],
        );
        assert!(wait_until(LIMIT, || beast
            .metric("beast_usage_sink_delivered_total{sink=\"postgres\"}")
            > 5000.0));
        drop(beast); // SIGKILL mid-load
        let answered = load.finish()["ok"].as_u64().unwrap();
        let again = serve(backend, &data, &pg);
        again.wait_delivered("postgres");
        let stored = pg.usage_requests();
        assert!(
            stored <= answered,
            "{stored} stored for {answered} answered"
        );
        // 10 000/s over one 5 ms drain is 50 answers; allow ten drains' worth for a slow machine.
        assert!(
            answered - stored <= 500,
            "{stored} stored for {answered} answered"
        );
    }
}

beast_tests::on_both_backends! {
    /// Aurora-style TLS: `sslmode=verify-full&sslrootcert=` as libpq takes them. The certificate and
    /// host are verified; with the wrong roots the store is refused, and nothing is sent in clear.
    fn tls_to_postgres_is_verified_against_sslrootcert(backend) {
        let pg = Postgres::start_tls();
        let data = Scratch::new();
        let url = format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            pg.url(),
            pg.ca_file().display()
        );
        let out = data
            .beast(&["keys", "create", "--tier", "free"])
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let beast = Beast::start_with(
            backend,
            &["--beast-data-dir", data.path().to_str().unwrap()],
            |c| {
                c.env("DATABASE_URL", &url);
            },
        );
        assert_eq!(beast.get("/price?asset=BTC").status, 200);
        assert!(wait_until(LIMIT, || pg.usage_requests() == 1));
        assert_eq!(
            pg.query(
                "SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
                 WHERE datname = 'beast' AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
                 AND client_addr IS NOT NULL AND application_name = ''"
            ),
            "t",
            "beast's connections use TLS"
        );
        // The Mozilla roots do not include this CA: refused, exit 1.
        let refused = data
            .beast(&["keys", "list"])
            .env("DATABASE_URL", format!("{}?sslmode=require", pg.url()))
            .output()
            .unwrap();
        assert_eq!(refused.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("certificate"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
    }
}

beast_tests::on_both_backends! {
    /// Retention: rows older than `USAGE_RETENTION_DAYS` go, in statements of a bounded size, and
    /// nothing newer is touched.
    fn retention_deletes_only_old_usage(backend) {
        let pg = Postgres::start();
        let data = Scratch::new();
        let beast = serve(backend, &data, &pg);
        assert_eq!(beast.get("/price?asset=BTC").status, 200);
        assert!(wait_until(LIMIT, || pg.usage_requests() == 1));
        drop(beast);
        // 12 000 rollup rows, a raw record and a boot's progress from 40 days ago.
        pg.query(
            "INSERT INTO usage_rollups
                SELECT (extract(epoch from now() - interval '40 days') * 1000)::bigint / 60000 * 60000 - i * 60000,
                       7, 'ETH', 'http', 'lt100us', 'old-node', 3, 3
                FROM generate_series(0, 11999) AS i",
        );
        pg.query(
            "INSERT INTO usage_logs (record_id, key_id, assets, protocol, latency_bucket, node, ts_ms)
             VALUES ('00000000000000aa-0000000000000000', 7, 'ETH', 'http', 'lt100us', 'old-node', 1000)",
        );
        pg.query("INSERT INTO usage_progress VALUES ('00000000000000aa', 'old-node', 1, 1000)");
        let beast = Beast::start_with(
            backend,
            &["--beast-data-dir", data.path().to_str().unwrap()],
            |c| {
                c.env("DATABASE_URL", pg.url())
                    .env("USAGE_RETENTION_DAYS", "30");
            },
        );
        assert!(
            wait_until(LIMIT, || beast.metric("beast_usage_retention_runs_total")
                >= 1.0),
            "{}",
            beast.metrics()
        );
        assert_eq!(
            beast.metric("beast_usage_retention_deleted_rows_total"),
            12_002.0
        );
        assert_eq!(pg.usage_requests(), 1, "this month's usage is kept");
        assert_eq!(
            pg.query("SELECT COUNT(*) FROM usage_rollups WHERE node = 'old-node'"),
            "0"
        );
        assert_eq!(pg.query("SELECT COUNT(*) FROM usage_logs"), "0");
        assert_eq!(
            pg.query("SELECT COUNT(*) FROM usage_progress WHERE node = 'old-node'"),
            "0"
        );
        assert_eq!(
            pg.query("SELECT COUNT(*) FROM usage_progress"),
            "1",
            "the recent boot's"
        );
    }
}
