//! Every committed fuzz corpus (`fuzz/corpus/<target>/`) replayed through its target's body
//! (`beast_engine::fuzzing`), so an input that once broke a parser, or any seed, fails the test
//! command if it breaks it again; and every target has a corpus and a cargo-fuzz entry.
//! `BLESS=1` writes the seeds again (from the recorded sessions, the parsers' own test inputs
//! and the encoders); what a fuzzing campaign adds stays.

use std::path::{Path, PathBuf};

use beast_engine::fuzzing::TARGETS;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus(target: &str) -> PathBuf {
    root().join("fuzz/corpus").join(target)
}

#[test]
fn every_target_has_a_corpus_and_a_cargo_fuzz_entry() {
    if std::env::var_os("BLESS").is_some() {
        write_seeds();
    }
    let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
    for (name, _) in TARGETS {
        let files = std::fs::read_dir(corpus(name)).map_or(0, Iterator::count);
        assert!(
            files > 0,
            "fuzz/corpus/{name} has no seeds (BLESS=1 writes them)"
        );
        let entry = std::fs::read_to_string(root().join(format!("fuzz/fuzz_targets/{name}.rs")))
            .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{name}.rs: {e}"));
        assert!(
            entry.contains(&format!("fuzzing::{name}(")),
            "{name}.rs runs its body"
        );
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name} in fuzz/Cargo.toml"
        );
    }
    for dir in std::fs::read_dir(root().join("fuzz/corpus")).unwrap() {
        let dir = dir.unwrap().file_name();
        let dir = dir.to_string_lossy();
        assert!(
            TARGETS.iter().any(|(n, _)| *n == dir),
            "fuzz/corpus/{dir} is no target's"
        );
    }
}

#[test]
fn every_corpus_replays_without_a_failure() {
    let mut inputs = 0;
    for (name, body) in TARGETS {
        let Ok(files) = std::fs::read_dir(corpus(name)) else {
            continue;
        };
        for file in files {
            let path = file.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{name} fails on {}", path.display());
            inputs += 1;
        }
    }
    assert!(inputs >= TARGETS.len(), "{inputs} inputs replayed");
}

/// The seeds: real inputs of every kind each parser reads.
fn write_seeds() {
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut add = |target: &'static str, data: &[u8]| seeds.push((target, data.to_vec()));

    for head in [
        "GET /price?asset=BTC HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /price?asset=BTC&key=bk_0123456789abcdef HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
        "GET /prices?assets=BTC,ETH,SOL HTTP/1.1\r\nX-API-Key: bk_0123456789\r\n\r\n",
        "GET /price?asset=%42TC&key=a%20b%2 HTTP/1.0\r\n\r\n",
        "POST /admin/invalidate-key?key=bk_x HTTP/1.1\r\nX-Admin-Key: k\r\nContent-Length: 5\r\n\r\nhello",
        "GET /reports/ohlc?asset=BTC&interval=1m&format=csv HTTP/1.1\r\nAccept: text/csv\r\n\r\n",
        "GET /health HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /price?asset=BTC HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
        "BREW /pot HTTP/1.1\r\n\r\n",
    ] {
        add("http_head", head.as_bytes());
    }

    for text in [
        "BTC",
        "BTC ETH,SOL\tNOPE",
        "key=fuzz-stress-key-0001 BTC ETH SOL",
        "key=fuzz-demo-key-00001 BTC",
        "key=unknown-key-000 BTC",
        "snapshot BTC ETH",
        "ohlc BTC 1m 5",
        "sources BTC",
    ] {
        add("udp_answer", text.as_bytes());
        add("udp_answer", &beast_tests::server::padded(text, 512));
    }
    let mut v8 = [0u8; 2048];
    for (key, symbols, pad) in [
        (None, &[&b"BTC"[..]][..], 0),
        (None, &[&b"BTC"[..], b"ETH"][..], 200),
        (
            Some(&b"fuzz-stress-key-0001"[..]),
            &[&b"BTC"[..], b"SOL", b"1inch"][..],
            0,
        ),
        (Some(&b"fuzz-demo-key-00001"[..]), &[&b"ETH"[..]][..], 100),
    ] {
        let v8_len =
            beast_engine::protocol::udp::v8::encode_request(&mut v8, 7, key, symbols, pad).unwrap();
        add("udp_answer", &v8[..v8_len]);
    }

    let mut frame = Vec::new();
    let batch = beast_engine::usage::batch::Batch {
        boot: 1_764_000_000_000,
        first_seq: 10,
        records: 2,
        written_ms: 1_764_000_060_000,
        node: "node-a".into(),
        rollups: vec![beast_engine::usage::batch::Rollup {
            minute_ms: 1_764_000_000_000,
            key_id: 7,
            asset: "BTC".into(),
            protocol: beast_engine::usage::Protocol::Http,
            latency: 3,
            requests: 2,
            prices: 2,
        }],
        raw: Vec::new(),
    };
    batch.encode(&mut frame);
    add("journal_frame", &frame);
    add("journal_frame", &frame[..frame.len() / 2]);
    beast_engine::usage::batch::Batch::default().encode(&mut frame);
    add("journal_frame", &frame);

    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for block in readme.split("```toml").skip(1) {
        add(
            "config_file",
            block.split("```").next().unwrap_or_default().as_bytes(),
        );
    }
    add(
        "config_file",
        b"[server]\nreactors = 2\nbind = \"127.0.0.1\"\n[feeds]\nfeeds = \"sim\"\n",
    );

    for spec in [
        r#"{"target":"https://hooks.example.com/beast","assets":["BTC","ETH"],"every_s":5}"#,
        r#"{"target":"udp://203.0.113.7:9000","assets":["BTC"],"move_bps":25,"min_gap_ms":100,"format":"v8"}"#,
        r#"{"target":"http://10.0.0.1/x","assets":[],"unknown":1}"#,
    ] {
        add("subscription", spec.as_bytes());
    }

    for request in [
        "snapshot?assets=BTC,ETH",
        "ohlc?asset=BTC&interval=1m&limit=10&start=0&end=1764000000000",
        "sources?asset=BTC&venue=coinbase",
        "ohlc BTC 4h 8",
        "usage?start=0",
    ] {
        add("report_request", request.as_bytes());
    }

    add(
        "cached_price",
        br#"{"asset":"BTC","price":"97000.5","source":"coinbase-ws","ts":1764000000000,"node":"a"}"#,
    );
    add(
        "cached_price",
        br#"{"asset":"ETH","price":"1e400","source":"sim-okx-rest","ts":-1}"#,
    );
    add("seed_prices", beast_tests::server::SEED.as_bytes());

    for (venue, target) in [
        ("coinbase", "venue_coinbase"),
        ("gemini", "venue_gemini"),
        ("kraken", "venue_kraken"),
        ("gateio", "venue_gateio"),
        ("cryptocom", "venue_cryptocom"),
        ("okx", "venue_okx"),
    ] {
        let recorded =
            std::fs::read_to_string(root().join(format!("feeds/tests/data/samples/{venue}.jsonl")))
                .unwrap();
        let frames: Vec<&str> = recorded.lines().collect();
        // Thirty frames spread over the session (its start has the subscription answers).
        let step = (frames.len() / 30).max(1);
        for (i, frame) in frames.iter().enumerate() {
            if i < 5 || i % step == 0 {
                add(target, frame.as_bytes());
            }
            if i % (step * 6) == 0 {
                add("json", frame.as_bytes());
            }
        }
        // The REST bodies the parser's own tests use.
        let source =
            std::fs::read_to_string(root().join(format!("feeds/src/venues/{venue}/rest.rs")))
                .unwrap();
        for literal in source.split("r#\"").skip(1) {
            if let Some(body) = literal.split("\"#").next() {
                add(target, body.as_bytes());
            }
        }
    }

    for (target, _) in TARGETS {
        let dir = corpus(target);
        std::fs::create_dir_all(&dir).unwrap();
        for old in std::fs::read_dir(&dir).unwrap() {
            let old = old.unwrap().path();
            if old
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                std::fs::remove_file(old).unwrap();
            }
        }
    }
    let mut counts = std::collections::HashMap::new();
    for (target, data) in seeds {
        let n = counts.entry(target).or_insert(0);
        *n += 1;
        std::fs::write(corpus(target).join(format!("seed-{n:03}")), data).unwrap();
    }
}
