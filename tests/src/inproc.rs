//! The engine run inside the test process (reactors, price thread, side thread on the embedded
//! store), for tests that must reach into it: count allocations on the reactor threads, move
//! the wall clock, hold a reactor in a turn.

use std::sync::Arc;
use std::time::Duration;

use beast_engine::access::{Access, ApiKey, Tier};
use beast_engine::config::Config;
use beast_engine::config::setting::IoChoice;
use beast_engine::price::PriceTable;
use beast_engine::pricing::{PriceThread, PriceThreadOptions, seed};
use beast_engine::reactor::Ports;
use beast_engine::server::{ServeOptions, Server, Wiring};
use beast_engine::side::{self, Side, SideInputs, SideOptions};
use beast_engine::store::NewKey;
use beast_engine::store::sqlite::SqliteStore;

use crate::server::{SEED, WAIT};

pub struct InProcess {
    pub server: Server,
    pub prices: PriceThread,
    pub side: Side,
    /// Stress-tier keys created in the store before start.
    pub keys: Vec<String>,
    _data: tempfile::TempDir,
}

impl InProcess {
    /// Two reactors on `io`, every port on 127.0.0.1:0, [`SEED`] prices, metering into the
    /// embedded store, `keys` stress-tier keys; `adjust` may change the serving options.
    pub fn start(io: IoChoice, keys: usize, adjust: impl FnOnce(&mut ServeOptions)) -> InProcess {
        let data = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(data.path()).unwrap();
        let keys: Vec<ApiKey> = (0..keys).map(|_| ApiKey::generate().unwrap()).collect();
        for key in &keys {
            store
                .create_key(&NewKey {
                    hash: key.hash(),
                    prefix: &key.prefix(),
                    name: "in-process",
                    tier: Tier::Stress,
                    now_ms: 0,
                })
                .unwrap();
        }
        drop(store);
        let (table, writer) = PriceTable::new(256);
        let seeds = seed::parse(SEED, beast_core::clock::wall_ms()).expect("seed");
        let prices = PriceThread::start(
            writer,
            PriceThreadOptions {
                prewarm: Vec::new(),
                seeds,
                demo_walk: false,
                stale_after_ms: 9_000,
                primary: None,
                rest_every: Duration::from_secs(1),
                feeds: Vec::new(),
            },
        )
        .expect("price thread");
        let mut options = ServeOptions::from_config(&Config::default());
        options.bind = [127, 0, 0, 1].into();
        options.ports = Ports::any_free();
        options.reactors = 2;
        options.io = io;
        adjust(&mut options);
        let access = Arc::new(Access::new(true, 16));
        let (meters, rings) = beast_engine::usage::rings(options.reactors);
        let (side, link) = side::start(
            SideOptions {
                node: "in-process".into(),
                data_dir: data.path().to_path_buf(),
                database_url: None,
                cache_url: None,
                sqs_queue_url: None,
                aws_region: "us-east-1".into(),
                metering: true,
                raw_records: false,
                journal_fsync: Duration::from_secs(1),
                journal_segment_bytes: 64 << 20,
                journal_max_bytes: 1 << 30,
                retention_days: 93,
                keys_poll: Duration::from_millis(50),
                shutdown_grace: Duration::from_secs(5),
                cache_prices_every: Duration::from_secs(30),
                cache_stats_every: Duration::from_secs(3),
                stale_after_ms: 9_000,
                core: None,
                subscriptions: side::SubscriptionPolicy::default(),
            },
            SideInputs {
                access: Arc::clone(&access),
                table: Arc::clone(&table),
                rings,
                feeds: Vec::new(),
            },
        )
        .expect("side thread");
        assert!(side.wait_ready(WAIT), "the store was read");
        assert_eq!(access.keys().len(), keys.len(), "the keys were published");
        let server = Server::start(
            options,
            table,
            Wiring {
                access,
                link,
                meters,
            },
        )
        .expect("start engine");
        InProcess {
            server,
            prices,
            side,
            keys: keys.iter().map(|k| k.as_str().to_string()).collect(),
            _data: data,
        }
    }

    /// Stops everything; the reactors' errors, if any.
    pub fn stop(self) -> Vec<std::io::Error> {
        let errors = self.server.stop();
        self.side.stop();
        self.prices.stop();
        errors
    }
}
