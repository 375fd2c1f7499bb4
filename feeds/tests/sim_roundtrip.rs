//! The feeds against the simulator, in one process: every venue subscribes and streams over
//! wss:// (trusting only the simulator's certificate) and ws://, reconnects after a drop, and
//! the REST fallback answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed set-up fails the test"
)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use beast_core::{Channel, Symbol, Venue};
use beast_feeds::client::{FeedEvent, FeedOptions, FeedSpec, Feeds, Trust};
use beast_feeds::sim::{SimConfig, Simulator};
use beast_feeds::venues;

const WAIT: Duration = Duration::from_secs(20);

fn assets() -> Vec<Symbol> {
    ["BTC", "ETH", "1INCH", "S"]
        .iter()
        .map(|s| Symbol::parse(s.as_bytes()).unwrap())
        .collect()
}

/// The feeds of every venue against `sim`, and the status of each (kept by its creator).
fn start(sim: &Simulator, tls: bool) -> (Feeds, Vec<Arc<beast_feeds::client::FeedStatus>>) {
    let specs: Vec<FeedSpec> = Venue::ALL
        .iter()
        .map(|venue| FeedSpec {
            exchange: Arc::from(venues::for_venue(*venue, &assets())),
            assets: assets(),
            endpoints: sim.endpoints(*venue, tls),
            trust: Trust::Only(sim.certificate.clone()),
            options: FeedOptions {
                backoff_base: Duration::from_millis(50),
                backoff_cap: Duration::from_millis(200),
                ..FeedOptions::default()
            },
            status: Arc::new(beast_feeds::client::FeedStatus::new(*venue)),
        })
        .collect();
    let statuses = specs.iter().map(|spec| Arc::clone(&spec.status)).collect();
    (
        Feeds::start(specs, std::thread::current()).expect("feeds start"),
        statuses,
    )
}

/// Drains prices until `done` says enough, bounded by WAIT.
fn collect(feeds: &mut Feeds, mut done: impl FnMut(&FeedEvent) -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        for ring in &mut feeds.rings {
            while let Ok(event) = ring.pop() {
                if done(&event) {
                    return true;
                }
            }
        }
        while let Ok(event) = feeds.rest_results.try_recv() {
            if done(&event) {
                return true;
            }
        }
        // Feed threads unpark this thread when prices arrive.
        std::thread::park_timeout(Duration::from_millis(50));
    }
    false
}

#[test]
fn every_venue_streams_over_tls_and_plain() {
    for tls in [true, false] {
        let sim = Simulator::start(SimConfig {
            rate: 200.0,
            ..SimConfig::default()
        })
        .unwrap();
        let (mut feeds, _) = start(&sim, tls);
        let mut seen = HashSet::new();
        let all = collect(&mut feeds, |e| {
            if e.channel == Channel::Stream {
                seen.insert((e.venue, e.asset));
            }
            seen.len() == Venue::COUNT * assets().len()
        });
        assert!(
            all,
            "tls={tls}: saw {} of {} (venue, asset) prices",
            seen.len(),
            Venue::COUNT * 4
        );
        feeds.stop();
    }
}

#[test]
fn a_dropped_venue_reconnects_and_rest_answers() {
    let sim = Simulator::start(SimConfig {
        rate: 200.0,
        ..SimConfig::default()
    })
    .unwrap();
    let (mut feeds, statuses) = start(&sim, true);
    assert!(collect(&mut feeds, |e| e.venue == Venue::Okx));
    let okx = statuses
        .iter()
        .find(|s| s.venue == Venue::Okx)
        .unwrap()
        .clone();
    let connects = okx.connects.load(std::sync::atomic::Ordering::Relaxed);
    sim.control(Venue::Okx).apply("drop");
    let reconnected = collect(&mut feeds, |_| {
        okx.connects.load(std::sync::atomic::Ordering::Relaxed) > connects
    });
    assert!(reconnected, "okx reconnected");
    assert!(
        collect(&mut feeds, |e| e.venue == Venue::Okx
            && e.channel == Channel::Stream),
        "okx streams again"
    );

    // REST: ask every venue's poller for BTC.
    for (_, requests) in &feeds.rest_requests {
        requests.try_send(vec![assets()[0]]).unwrap();
    }
    let mut rest = HashSet::new();
    assert!(
        collect(&mut feeds, |e| {
            if e.channel == Channel::Rest {
                rest.insert(e.venue);
            }
            rest.len() == Venue::COUNT
        }),
        "REST from every venue: {rest:?}"
    );
    feeds.stop();
}
