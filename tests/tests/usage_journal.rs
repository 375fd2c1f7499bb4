//! The usage journal cannot take the node down: a node restarted on a 1 GB backlog answers every
//! price request from the moment it is ready and stops within its grace; a cursor emptied or
//! lost loses nothing and counts nothing twice; a journal at its cap gives up its oldest
//! segment (counted, logged once, `/health` degraded) and serving goes on.

use std::time::Duration;

use beast_engine::usage::Protocol;
use beast_engine::usage::batch::{Batch, RawRecord, Rollup};
use beast_tests::Scratch;
use beast_tests::server::{Beast, Load, wait_until};
use beast_tests::services::{Postgres, free_port};

const LIMIT: Duration = Duration::from_secs(60);

fn data_dir(data: &Scratch) -> String {
    data.path().join("data").to_str().unwrap().to_string()
}

fn serve(backend: &str, data: &Scratch, url: &str, extra: &[(&str, &str)]) -> Beast {
    let dir = data_dir(data);
    Beast::start_with(backend, &["--beast-data-dir", &dir], |c| {
        c.env("DATABASE_URL", url);
        for (name, value) in extra {
            c.env(name, value);
        }
    })
}

/// `segments` journal segments of 64 MiB of batches (1 000 raw records each), as a node whose
/// store was unreachable for a long while leaves them.
fn write_backlog(dir: &std::path::Path, segments: u64) {
    let usage = dir.join("usage");
    std::fs::create_dir_all(&usage).unwrap();
    let mut segment = Vec::with_capacity(65 << 20);
    let mut seq = 0;
    while segment.len() < 64 << 20 {
        let batch = Batch {
            boot: 0x0bac_1065,
            first_seq: seq,
            records: 1_000,
            written_ms: 1_764_000_000_000,
            node: "old".into(),
            rollups: vec![Rollup {
                minute_ms: 1_764_000_000_000,
                key_id: 0,
                asset: "BTC".into(),
                protocol: Protocol::Http,
                latency: 0,
                requests: 1_000,
                prices: 1_000,
            }],
            raw: (0..1_000)
                .map(|i| RawRecord {
                    seq: seq + i,
                    key_id: 0,
                    ts_ms: 1_764_000_000_000,
                    protocol: Protocol::Http,
                    latency: 0,
                    assets: "BTC,ETH,SOL,DOGE,XRP,LINK".into(),
                })
                .collect(),
        };
        batch.encode(&mut segment);
        seq += 1_000;
    }
    for n in 1..=segments {
        std::fs::write(usage.join(format!("usage-{n:010}.journal")), &segment).unwrap();
    }
}

beast_tests::on_both_backends! {
    fn a_restart_on_a_1_gb_backlog_answers_at_once_and_stops_within_its_grace(backend) {
        let data = Scratch::new();
        write_backlog(&data.path().join("data"), 16);
        let closed = format!("postgres://beast@127.0.0.1:{}/beast", free_port());
        let mut beast = serve(backend,
            &data,
            &closed,
            &[
                ("BEAST_JOURNAL_MAX_BYTES", "4294967296"),
                ("BEAST_SHUTDOWN_GRACE_MS", "1000"),
            ],
        );
        // From the moment it is ready: every request answered, none refused for want of metering.
        let result = Load::start(
            "http",
            beast.addr("tcp_lpo"),
            &["-n", "20000", "-r", "10000", "-c", "8"],
        )
        .finish();
        assert_eq!(result["ok"], 20_000, "{result}");
        assert_eq!(beast.metric("beast_usage_dropped_total"), 0.0);
        assert!(
            wait_until(LIMIT, || beast.metric("beast_usage_journaled_total")
                == 20_000.0),
            "the drain kept up beside the backlog"
        );
        assert!(
            beast.metric("beast_usage_sink_backlog_bytes{sink=\"postgres\"}") > f64::from(1u32 << 30),
            "the backlog is known without counting it"
        );
        assert!(
            beast
                .stderr_text()
                .contains("usage cursor rebuilt from the journal's oldest segment"),
            "a missing cursor is said"
        );
        let status = beast.signal_and_wait(libc::SIGTERM);
        assert!(status.success(), "{status:?}\n{}", beast.stderr_text());
    }
}

beast_tests::on_both_backends! {
    fn an_emptied_cursor_loses_nothing_and_counts_nothing_twice(backend) {
        let mut pg = Postgres::start();
        let data = Scratch::new();
        let cursor = data.path().join("data/usage/cursor-postgres");
        // Everything delivered, then the cursor emptied: the journal is delivered again from its
        // oldest segment, and the store's per-boot progress turns every repeat into a no-op.
        let beast = serve(backend, &data, &pg.url(), &[]);
        let first = Load::start("http", beast.addr("tcp_lpo"), &["-n", "20000", "-c", "8"]).finish();
        assert_eq!(first["ok"], 20_000);
        beast.wait_delivered("postgres");
        assert_eq!(pg.usage_requests(), 20_000);
        drop(beast); // SIGKILL
        std::fs::write(&cursor, "").unwrap();
        let again = serve(backend, &data, &pg.url(), &[]);
        assert!(
            wait_until(LIMIT, || again
                .metric("beast_usage_sink_duplicates_total{sink=\"postgres\"}")
                == 20_000.0),
            "{}",
            again.metrics()
        );
        assert_eq!(pg.usage_requests(), 20_000, "nothing counted twice");
        assert!(again.stderr_text().contains("Unreadable"));
        // Undelivered usage (the store down), then the cursor emptied: none of it is skipped.
        pg.stop();
        let second = Load::start("udp", again.addr("udp_lpo"), &["-n", "15000", "-c", "4"]).finish();
        assert_eq!(second["ok"], 15_000);
        assert!(wait_until(LIMIT, || again
            .metric("beast_usage_journaled_total")
            == 15_000.0));
        drop(again);
        std::fs::write(&cursor, "").unwrap();
        pg.resume();
        let third = serve(backend, &data, &pg.url(), &[]);
        third.wait_delivered("postgres");
        assert!(
            wait_until(LIMIT, || pg.usage_requests() == 35_000),
            "{} of 35 000",
            pg.usage_requests()
        );
    }
}

beast_tests::on_both_backends! {
    fn a_full_journal_gives_up_its_oldest_usage_and_says_so(backend) {
        let mut pg = Postgres::start();
        pg.stop();
        let data = Scratch::new();
        // A 1 MiB cap and raw records on, so a little load fills it.
        let beast = serve(backend,
            &data,
            &pg.url(),
            &[
                ("BEAST_JOURNAL_MAX_BYTES", "1048576"),
                ("BEAST_USAGE_RAW_RECORDS", "true"),
            ],
        );
        let result = Load::start(
            "udp",
            beast.addr("udp_lpo"),
            &["-n", "60000", "-c", "4", "-a", "BTC,ETH,PEPE"],
        )
        .finish();
        assert_eq!(result["ok"], 60_000, "serving goes on: {result}");
        assert_eq!(beast.metric("beast_usage_dropped_total"), 0.0);
        let answered = beast.metric("beast_usage_recorded_total");
        assert!(wait_until(LIMIT, || beast
            .metric("beast_usage_journaled_total")
            == answered));
        assert!(
            wait_until(LIMIT, || beast.metric(
                "beast_usage_sink_discarded_records_total{sink=\"postgres\"}"
            ) > 0.0),
            "{}",
            beast.metrics()
        );
        assert!(beast.metric("beast_usage_journal_discarded_bytes_total") > 0.0);
        assert!(beast.metric("beast_usage_journal_bytes") <= 1_048_576.0 + 200_000.0);
        let health = beast.health();
        assert_eq!(health["status"], "degraded", "{health}");
        assert!(
            health["degraded"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "usage_journal_near_cap"),
            "{health}"
        );
        assert_eq!(
            beast.stderr_text().matches("usage journal full").count(),
            1,
            "logged once"
        );
        // The store back: what was kept arrives, and with what was given up it is every answer.
        pg.resume();
        beast.wait_delivered("postgres");
        assert!(wait_until(LIMIT, || {
            let lost = beast.metric("beast_usage_sink_discarded_records_total{sink=\"postgres\"}");
            pg.usage_requests() as f64 + lost == answered
        }));
        assert_eq!(
            pg.query("SELECT COUNT(*) FROM usage_logs")
                .parse::<u64>()
                .unwrap(),
            pg.usage_requests(),
            "a raw record for each request kept"
        );
    }
}
