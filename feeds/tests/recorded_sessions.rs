//! Every frame of the recorded sessions through its venue's parser: nothing panics, nothing
//! well formed is called malformed, and the price channels yield exactly the prices they carry.

use beast_core::Venue;
use beast_feeds::{Frame, venues};

struct Tally {
    frames: usize,
    priced_frames: usize,
    prices: usize,
    skips: usize,
    errors: Vec<String>,
}

fn replay(venue: Venue, file: &str) -> Tally {
    let parser = venues::for_venue(venue, &[]);
    let mut tally = Tally {
        frames: 0,
        priced_frames: 0,
        prices: 0,
        skips: 0,
        errors: Vec::new(),
    };
    for line in file.lines() {
        tally.frames += 1;
        match parser.parse(line, 1, &mut |_| {}) {
            Ok(Frame::Prices(n)) => {
                tally.priced_frames += 1;
                tally.prices += n;
            }
            Ok(Frame::Skip(_)) => tally.skips += 1,
            Err(e) => tally
                .errors
                .push(format!("{e}: {}", &line[..line.len().min(120)])),
        }
    }
    tally
}

#[test]
fn recorded_sessions_parse() {
    // (venue, file, prices expected)
    let cases: [(Venue, &str, Option<usize>); 6] = [
        // 160 ticker frames, one ticker each
        (
            Venue::Coinbase,
            include_str!("data/samples/coinbase.jsonl"),
            Some(160),
        ),
        // v2 `trade` frames: counted by the CLI tests; here, some prices and no errors
        (
            Venue::Gemini,
            include_str!("data/samples/gemini.jsonl"),
            None,
        ),
        // v1: another protocol, skipped whole
        (
            Venue::Kraken,
            include_str!("data/samples/kraken.jsonl"),
            Some(0),
        ),
        (
            Venue::Gateio,
            include_str!("data/samples/gateio.jsonl"),
            Some(22),
        ),
        (
            Venue::Cryptocom,
            include_str!("data/samples/cryptocom.jsonl"),
            Some(1484),
        ),
        // 25 BTC-USDT ticker frames; futures and swaps are skipped
        (Venue::Okx, include_str!("data/samples/okx.jsonl"), Some(25)),
    ];
    for (venue, file, prices) in cases {
        let tally = replay(venue, file);
        assert!(tally.errors.is_empty(), "{venue}: {:?}", tally.errors);
        assert_eq!(
            tally.priced_frames + tally.skips,
            tally.frames,
            "{venue}: every frame classified"
        );
        match prices {
            Some(expected) => assert_eq!(tally.prices, expected, "{venue}"),
            None => assert!(tally.prices > 0, "{venue}"),
        }
    }
}
