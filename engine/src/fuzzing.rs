//! The fuzz targets' bodies: one function per parser that reads outside input, each asserting
//! what must hold for any input (beyond not panicking). `fuzz/` (cargo-fuzz, outside the
//! workspace) runs them under libFuzzer; `tests/tests/fuzz_corpora.rs` replays every committed
//! corpus through the same functions, so a regression fails the test command.

use std::sync::{Arc, OnceLock};

use beast_core::{Decimal, Source, Symbol, Venue};

use crate::access::{Access, ApiKey, KeyEntry, KeySet, Tier};
use crate::price::{Aggregate, Freshness, PriceTable};
use crate::protocol::http::request::{self, Parsed};
use crate::protocol::udp::{self, Context, MAX_REPLY, Outcome};
use crate::usage::AssetList;
use crate::usage::batch::Batch;

/// Every target, by the name of its corpus folder and its file in `fuzz/fuzz_targets/`.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("http_head", http_head),
    ("udp_answer", udp_answer),
    ("journal_frame", journal_frame),
    ("config_file", config_file),
    ("subscription", subscription),
    ("report_request", report_request),
    ("cached_price", cached_price),
    ("seed_prices", seed_prices),
    ("json", json),
    ("venue_coinbase", venue_coinbase),
    ("venue_gemini", venue_gemini),
    ("venue_kraken", venue_kraken),
    ("venue_gateio", venue_gateio),
    ("venue_cryptocom", venue_cryptocom),
    ("venue_okx", venue_okx),
];

/// An HTTP request head, and the query parameters a route reads from it: a complete head lies
/// within the input, and a decoded parameter is never longer than its encoding.
pub fn http_head(data: &[u8]) {
    if let Parsed::Complete(head) = request::parse(data) {
        assert!(head.head_len <= data.len());
        let mut decoded = [0u8; 256];
        for name in [&b"asset"[..], b"assets", b"key", b"interval", b"format"] {
            if let Some(value) = request::query_param(head.query, name)
                && let Some(text) = request::percent_decode(value, &mut decoded)
            {
                assert!(text.len() <= value.len());
            }
        }
    }
}

/// The keys [`udp_answer`] knows: one that lifts the reply limit, one that does not.
const STRESS_KEY: &[u8] = b"fuzz-stress-key-0001";
const DEMO_KEY: &[u8] = b"fuzz-demo-key-00001";

fn table_and_access() -> &'static (Arc<PriceTable>, Access) {
    static STATE: OnceLock<(Arc<PriceTable>, Access)> = OnceLock::new();
    STATE.get_or_init(|| {
        let (table, mut writer) = PriceTable::new(16);
        for (asset, price) in [("BTC", "97123.45"), ("ETH", "3456.7"), ("SOL", "0.000123")] {
            let Ok(symbol) = Symbol::parse(asset.as_bytes()) else {
                continue;
            };
            let (Ok(id), Ok(price)) = (writer.add_asset(&symbol), Decimal::parse(price)) else {
                continue;
            };
            writer.publish_aggregate(
                id,
                &Aggregate {
                    price,
                    source: Source::stream(Venue::Coinbase),
                    exchange_ms: 1_000,
                    received_ms: 1_000,
                    sources: 1,
                    spread_bps: 0,
                },
            );
        }
        let access = Access::new(false, 4);
        let entry = |key: &[u8], id, tier, slot| {
            ApiKey::hash_presented(key).map(|hash| (hash, KeyEntry { id, tier, slot }))
        };
        access.publish(KeySet::new(
            [
                entry(STRESS_KEY, 1, Tier::Stress, 0),
                entry(DEMO_KEY, 2, Tier::Demo, 1),
            ]
            .into_iter()
            .flatten(),
        ));
        (table, access)
    })
}

/// A datagram at the price port and at the report port (text, v8, report words): a reply is
/// never larger than [`MAX_REPLY`], and never larger than the datagram unless its key lifts
/// the limit (no key, a public key, a refusal: no amplification).
pub fn udp_answer(data: &[u8]) {
    let (table, access) = table_and_access();
    for reports in [false, true] {
        let ctx = Context {
            table,
            access,
            fresh: Freshness {
                now_ms: 1_010,
                stale_after_ms: 9_000,
                simulated: false,
            },
            reports,
        };
        let mut out = [0u8; MAX_REPLY];
        let mut assets = AssetList::default();
        if let Outcome::Reply { len, key_id, .. } = udp::answer(data, ctx, &mut out, &mut assets) {
            assert!(len <= MAX_REPLY);
            if key_id != 1 {
                assert!(
                    len <= data.len(),
                    "{len}-byte reply to {} bytes",
                    data.len()
                );
            }
        }
    }
}

/// The journal's frame reader: a frame it takes lies within the bytes, and the batch it
/// decodes encodes back to a frame that decodes to the same batch.
pub fn journal_frame(data: &[u8]) {
    if let Some((batch, used)) = Batch::decode(data) {
        assert!(used <= data.len());
        let mut again = Vec::new();
        batch.encode(&mut again);
        let decoded = Batch::decode(&again).map(|(b, _)| b);
        assert_eq!(decoded.as_ref(), Some(&batch));
    }
}

/// `beast.toml`.
pub fn config_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::file::FileValues::parse(std::path::Path::new("beast.toml"), text);
    }
}

/// A subscription request's body, and its checks.
pub fn subscription(data: &[u8]) {
    if let Ok(spec) = serde_json::from_slice::<crate::push::subscription::Spec>(data) {
        let _ = spec.check();
    }
}

/// A report request (`ohlc?asset=BTC&interval=1m`) against a small table.
pub fn report_request(data: &[u8]) {
    let (table, _) = table_and_access();
    let (name, query) = match memchr::memchr(b'?', data) {
        Some(at) => (
            data.get(..at).unwrap_or_default(),
            data.get(at + 1..).unwrap_or_default(),
        ),
        None => (data, &b""[..]),
    };
    let param = |n: &[u8]| request::query_param(query, n);
    let params = crate::report::Params {
        asset: param(b"asset"),
        assets: param(b"assets"),
        interval: param(b"interval"),
        venue: param(b"venue"),
        start: param(b"start"),
        end: param(b"end"),
        limit: param(b"limit"),
    };
    let _ = crate::report::request(name, &params, table);
    let words: Vec<&[u8]> = data
        .split(|b| *b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let _ = crate::report::request_from_words(&words, table);
}

/// A cached price from Valkey (shared, so untrusted).
pub fn cached_price(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::side::cache::parse_cached(text);
    }
}

/// A `--prices` seed file.
pub fn seed_prices(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::pricing::seed::parse(text, 1_000);
    }
}

/// The feeds' JSON reader.
pub fn json(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = beast_feeds::json::parse(text);
    }
}

/// A venue's stream frame and REST body parsers, on the same bytes.
fn venue(venue: Venue, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let assets: Vec<Symbol> = ["BTC", "ETH", "SOL", "USDT"]
        .iter()
        .filter_map(|a| Symbol::parse(a.as_bytes()).ok())
        .collect();
    let exchange = beast_feeds::venues::for_venue(venue, &assets);
    let mut updates = 0usize;
    let _ = exchange.parse(text, 1_000, &mut |_| updates += 1);
    let _ = exchange.parse_rest(text, 1_000, &mut |_| updates += 1);
    // Every update comes from the input: a frame cannot describe more prices than it has bytes.
    assert!(updates <= text.len());
}

pub fn venue_coinbase(data: &[u8]) {
    venue(Venue::Coinbase, data);
}

pub fn venue_gemini(data: &[u8]) {
    venue(Venue::Gemini, data);
}

pub fn venue_kraken(data: &[u8]) {
    venue(Venue::Kraken, data);
}

pub fn venue_gateio(data: &[u8]) {
    venue(Venue::Gateio, data);
}

pub fn venue_cryptocom(data: &[u8]) {
    venue(Venue::Cryptocom, data);
}

pub fn venue_okx(data: &[u8]) {
    venue(Venue::Okx, data);
}
