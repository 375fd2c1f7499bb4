//! Usage to SQS (moto_server): SendMessageBatch signed with SigV4, one message per journal batch
//! (its rollups, and raw records when they are on). SQS unresponsive mid-load (the server
//! paused, so calls time out), then back: every record arrives. A standard queue is
//! at-least-once (a call that timed out may still have landed; consumers deduplicate by
//! `batch_id`); on a FIFO queue the batch id is the deduplication id, and a `beast` killed and
//! restarted re-sends its last batches without any arriving twice. Raw records carry the same
//! record ids in SQS and in PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use beast_engine::side::sink::sqs::CONCURRENT_CALLS;
use beast_tests::server::{Beast, Load, wait_until};
use beast_tests::services::{Moto, Postgres, create_queue, drain, records};

const LIMIT: Duration = Duration::from_secs(60);

fn serve(backend: &str, queue: &str, data: &str) -> Beast {
    serve_with(backend, queue, data, |_| {})
}

fn serve_with(
    backend: &str,
    queue: &str,
    data: &str,
    adjust: impl FnOnce(&mut std::process::Command),
) -> Beast {
    Beast::start_with(backend, &["--beast-data-dir", data], |c| {
        c.env("SQS_USAGE_LOG_QUEUE_URL", queue)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        adjust(c);
    })
}

fn wait_delivered(beast: &Beast, records: f64) {
    assert!(
        wait_until(LIMIT, || beast
            .metric("beast_usage_sink_backlog_bytes{sink=\"sqs\"}")
            == 0.0
            && beast.metric("beast_usage_journaled_total") == records),
        "{}\n{}",
        beast.metrics(),
        beast.stderr_text()
    );
}

beast_tests::on_both_backends! {
    fn sqs_unresponsive_mid_load_then_back_delivers_every_record(backend) {
        let moto = Moto::start();
        let queue = create_queue(&moto.endpoint(), "usage", false);
        let data = beast_tests::Scratch::new();
        let beast = serve(backend, &queue, data.path().to_str().unwrap());
        let load = Load::start(
            "http",
            beast.addr("tcp_lpo"),
            &["-n", "500", "-r", "250", "-c", "4"],
        );
        assert!(wait_until(LIMIT, || beast
            .metric("beast_usage_sink_delivered_total{sink=\"sqs\"}")
            > 0.0));
        moto.pause();
        assert!(
            wait_until(LIMIT, || beast
                .metric("beast_usage_sink_errors_total{sink=\"sqs\"}")
                > 0.0),
            "calls time out"
        );
        assert!(beast.metric("beast_usage_sink_backlog_bytes{sink=\"sqs\"}") > 0.0);
        moto.resume();
        assert_eq!(load.finish()["ok"], 500);
        wait_delivered(&beast, 500.0);
        let bodies = drain(&moto.endpoint(), &queue);
        let (received, batches) = records(&bodies);
        assert_eq!(received, 500, "every record arrived");
        // Repeats come only from the calls cut off by the outage.
        assert!(
            bodies.len() - batches <= 10 * CONCURRENT_CALLS * 2,
            "{}",
            bodies.len()
        );
        assert!(bodies.iter().all(|b| {
            let rollups = b["rollups"].as_array().unwrap();
            b["raw"].as_array().unwrap().is_empty()
                && rollups
                    .iter()
                    .map(|r| r["requests"].as_u64().unwrap())
                    .sum::<u64>()
                    == b["records"].as_u64().unwrap()
                && rollups
                    .iter()
                    .all(|r| r["protocol"] == "http" && r["asset"] == "BTC" && r["key_id"] == 0)
        }));
        // The embedded store got the same records alongside.
        assert_eq!(
            beast.metric("beast_usage_sink_delivered_total{sink=\"sqlite\"}"),
            500.0
        );
    }
}

beast_tests::on_both_backends! {
    fn a_fifo_queue_gets_every_record_exactly_once_across_kill_9(backend) {
        let moto = Moto::start();
        let queue = create_queue(&moto.endpoint(), "usage.fifo", true);
        let data = beast_tests::Scratch::new();
        let dir = data.path().to_str().unwrap();
        let beast = serve(backend, &queue, dir);
        let first = Load::start("http", beast.addr("tcp_lpo"), &["-n", "150", "-c", "2"]).finish();
        assert_eq!(first["ok"], 150);
        assert!(wait_until(LIMIT, || beast
            .metric("beast_usage_sink_delivered_total{sink=\"sqs\"}")
            > 0.0));
        drop(beast); // SIGKILL: the saved cursor may lag what was sent
        let again = serve(backend, &queue, dir);
        let second = Load::start(
            "udp",
            again.addr("udp_lpo"),
            &["-n", "50", "-c", "1", "-w", "1"],
        )
        .finish();
        assert_eq!(second["ok"], 50);
        wait_delivered(&again, 50.0);
        let bodies = drain(&moto.endpoint(), &queue);
        let (received, batches) = records(&bodies);
        assert_eq!((received, batches), (200, bodies.len()), "each batch once");
    }
}

beast_tests::on_both_backends! {
    /// With raw records on, every answer's record reaches both PostgreSQL and SQS under one id.
    fn raw_records_join_across_postgres_and_sqs(backend) {
        let moto = Moto::start();
        let queue = create_queue(&moto.endpoint(), "audit", false);
        let pg = Postgres::start();
        let data = beast_tests::Scratch::new();
        let beast = serve_with(backend, &queue, data.path().to_str().unwrap(), |c| {
            c.env("DATABASE_URL", pg.url())
                .env("BEAST_USAGE_RAW_RECORDS", "true");
        });
        let result = Load::start(
            "udp",
            beast.addr("udp_lpo"),
            &["-n", "300", "-c", "2", "-a", "BTC,ETH"],
        )
        .finish();
        assert_eq!(result["ok"], 300);
        wait_delivered(&beast, 300.0);
        assert!(wait_until(LIMIT, || beast
            .metric("beast_usage_sink_backlog_bytes{sink=\"postgres\"}")
            == 0.0));
        let bodies = drain(&moto.endpoint(), &queue);
        let from_sqs: HashSet<String> = bodies
            .iter()
            .flat_map(|b| b["raw"].as_array().unwrap().clone())
            .map(|r| r["record_id"].as_str().unwrap().to_string())
            .collect();
        let from_pg: HashSet<String> = pg
            .query("SELECT string_agg(record_id, ' ') FROM usage_logs")
            .split(' ')
            .map(str::to_string)
            .collect();
        assert_eq!(from_sqs.len(), 300);
        assert_eq!(from_sqs, from_pg, "the same ids, no conversion");
        assert_eq!(
            pg.query("SELECT SUM(requests) FROM usage_rollups"),
            "300",
            "and the rollups beside them"
        );
    }
}
