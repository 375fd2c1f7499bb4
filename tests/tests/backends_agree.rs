//! Both backends give the same answers, byte for byte, and count the same: one stream of
//! requests (UDP text and v8, valid and not, HTTP pipelined with errors and a close) fed to an
//! io_uring node and an epoll node seeded alike. Prices carry one fixed time long past, so
//! both nodes print the same times and the same-width ages; only the ages' digits depend on
//! when the answer is given, and they are masked before comparing (a price dated in the future
//! would be restamped at arrival, so it cannot pin the age to 0).

use std::collections::BTreeMap;
use std::io::Read as _;

use beast_engine::protocol::udp::v8;
use beast_tests::Scratch;
use beast_tests::server::{Beast, HttpClient, padded};

const PRICES: &str = r#"{"asset":"BTC","price":"97123.45","source":"coinbase-ws","ts":1000000000000}
{"asset":"ETH","price":"3512.50","source":"kraken-ws","ts":1000000000000}
{"asset":"PEPE","price":"0.00001234","source":"okx-ws","ts":1000000000000}
"#;

fn datagrams() -> Vec<Vec<u8>> {
    let mut v8_buf = [0u8; 1024];
    let mut v8 = |id, symbols: &[&[u8]], pad| {
        let len = v8::encode_request(&mut v8_buf, id, None, symbols, pad).unwrap();
        v8_buf[..len].to_vec()
    };
    vec![
        padded("BTC", 128),
        padded("btc eth pepe", 400),
        padded("NOPE", 128),
        padded("SOL", 128),
        padded("BTC-USD", 128),
        b"BTC".to_vec(),
        b"\x01\x02garbage".to_vec(),
        padded(&" X".repeat(40), 200),
        v8(1, &[b"BTC", b"ETH", b"NOPE"], v8::reply_len(3)),
        v8(2, &[b"PEPE"], 0),
        v8(3, &[b"BTC"], v8::reply_len(1))[..11].to_vec(),
    ]
}

const HTTP: &str = "GET /price?asset=BTC HTTP/1.1\r\nHost: a\r\n\r\n\
GET /prices?assets=BTC,ETH,NOPE,PEPE HTTP/1.1\r\nHost: a\r\n\r\n\
GET /assets HTTP/1.1\r\nHost: a\r\n\r\n\
HEAD /price?asset=ETH HTTP/1.1\r\nHost: a\r\n\r\n\
GET /price?asset=SOL HTTP/1.1\r\nHost: a\r\n\r\n\
GET /price?asset=b@d HTTP/1.1\r\nHost: a\r\n\r\n\
GET /nope HTTP/1.1\r\nHost: a\r\n\r\n\
POST /price HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody\
GET /price?asset=PEPE HTTP/1.0\r\n\r\n";

/// Every reply, in order: the UDP ones (an empty entry for a datagram not answered), then
/// the bytes of the HTTP connection until the server closed it.
fn answers(beast: &Beast) -> Vec<Vec<u8>> {
    let udp = beast.udp_client("udp_lpo");
    let mut out = Vec::new();
    for datagram in datagrams() {
        let replies = udp.ask_then_probe(&datagram);
        assert!(replies.len() <= 1);
        out.push(replies.into_iter().next().unwrap_or_default());
    }
    let mut client = HttpClient::connect(beast.addr("tcp_lpo"));
    client.send(HTTP.as_bytes());
    let mut http = Vec::new();
    client.stream().read_to_end(&mut http).unwrap();
    out.push(http);
    out
}

/// The counters a stream of requests moves, by series.
fn counters(beast: &Beast) -> BTreeMap<String, String> {
    beast
        .metrics()
        .lines()
        .filter(|l| {
            [
                "beast_http_responses_total",
                "beast_http_errors_total",
                "beast_udp_requests_total",
                "beast_udp_replies_total",
                "beast_udp_dropped_total",
                "beast_usage_recorded_total",
                "beast_requests_denied_total",
            ]
            .iter()
            .any(|family| l.starts_with(family))
        })
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_string(), value.to_string()))
        .collect()
}

/// The answer with its ages' digits masked: in JSON every `"age_ms":` value, in a v8 reply
/// each record's age field. Nothing else changes (ages of a 2001 price have the same width for
/// decades, so lengths and `Content-Length` still compare).
fn without_ages(answer: &[u8]) -> Vec<u8> {
    let mut out = answer.to_vec();
    let (header, record) = (v8::reply_len(0), v8::reply_len(1) - v8::reply_len(0));
    if v8::parse_reply(answer).is_ok() {
        let mut at = header;
        while at + record <= out.len() {
            out[at + 4..at + 8].fill(0);
            at += record;
        }
        return out;
    }
    let key = b"\"age_ms\":";
    let mut i = 0;
    while i + key.len() <= out.len() {
        if &out[i..i + key.len()] == key {
            i += key.len();
            while i < out.len() && out[i].is_ascii_digit() {
                out[i] = b'#';
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn both_backends_answer_and_count_alike() {
    let scratch = Scratch::new();
    let prices = scratch.write("prices.jsonl", PRICES);
    let seeded = ["--feeds", "off", "--prices", prices.to_str().unwrap()];
    let uring = Beast::start("uring", &seeded);
    let epoll = Beast::start("epoll", &seeded);
    let (a, b) = (answers(&uring), answers(&epoll));
    assert_eq!(a.len(), b.len());
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(&without_ages(a)),
            String::from_utf8_lossy(&without_ages(b)),
            "answer {i} differs"
        );
    }
    assert!(
        a.iter().filter(|r| !r.is_empty()).count() >= 9,
        "most were answered"
    );
    // The probes are datagrams too: both nodes saw as many.
    assert_eq!(counters(&uring), counters(&epoll));
}
