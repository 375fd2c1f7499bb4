//! The server is never an amplifier: for every request form, a reply is no larger than its
//! request unless the request carries a valid API key.

use beast_engine::protocol::udp::v8;
use beast_tests::server::{BACKENDS, Beast, padded};

#[test]
fn no_reply_is_larger_than_its_request_without_a_key() {
    let scratch = beast_tests::Scratch::new();
    let key = scratch.create_key("stress");
    let keyed = format!("key={key} BTC ETH");
    let keyed_many = format!("key={key} BTC ETH PEPE SOL NOPE");
    let data_dir = scratch.path().join("data");
    let data_dir = data_dir.to_str().unwrap();
    let mut v8_buf = [0u8; 1024];
    let mut v8_request = |key: Option<&[u8]>, symbols: &[&[u8]], pad: usize| {
        let len = v8::encode_request(&mut v8_buf, 7, key, symbols, pad).unwrap();
        v8_buf[..len].to_vec()
    };
    // (request, carries a valid key)
    let mut cases: Vec<(Vec<u8>, bool)> = vec![
        (b"BTC".to_vec(), false),
        (b"BTC ETH PEPE".to_vec(), false),
        (b"NOPE".to_vec(), false),
        (b"BTC-USD".to_vec(), false),
        (b"SOL".to_vec(), false),
        (b"key=wrong-key-0 BTC".to_vec(), false),
        (padded("BTC", 60), false),
        (padded("BTC", 95), false),
        (padded("BTC ETH", 120), false),
        (padded("BTC", 300), false),
        (vec![b'A'; 33 * 2], false),
        (keyed.as_bytes().to_vec(), true),
        (keyed_many.as_bytes().to_vec(), true),
        (v8_request(None, &[b"BTC"], 0), false),
        (
            v8_request(None, &[b"BTC", b"ETH"], v8::reply_len(2) - 1),
            false,
        ),
        (v8_request(None, &[b"BTC", b"ETH"], v8::reply_len(2)), false),
        (v8_request(Some(b"wrong-key-0"), &[b"BTC"], 0), false),
        (
            v8_request(
                Some(key.as_bytes()),
                &[b"BTC", b"ETH", b"PEPE", b"SOL", b"NOPE", b"DOGE"],
                0,
            ),
            true,
        ),
        (v8_request(None, &[b"BTC"], 0)[..11].to_vec(), false),
        (vec![0xA7, 0xBE], false),
        (vec![0xA7, 0xBE, 8, 0, 1, 0, 0, 0, 32, 0, 0, 0], false),
    ];
    for i in 0..20u8 {
        cases.push((vec![i.wrapping_mul(37); usize::from(i) + 1], false));
    }
    for backend in BACKENDS {
        let beast = Beast::start(backend, &["--beast-data-dir", data_dir]);
        let udp = beast.udp_client("udp_lpo");
        for (request, keyed) in &cases {
            let replies = udp.ask_then_probe(request);
            assert!(
                replies.len() <= 1,
                "{backend}: one request, one reply at most"
            );
            if let Some(reply) = replies.first() {
                assert!(
                    *keyed || reply.len() <= request.len(),
                    "{backend}: {} byte reply to {} byte request {:?}",
                    reply.len(),
                    request.len(),
                    String::from_utf8_lossy(request)
                );
            }
            if *keyed {
                assert!(
                    replies.first().is_some_and(|r| r.len() > request.len()),
                    "{backend}: keyed requests get their (larger) answer"
                );
            }
        }
        assert!(
            beast.metric("beast_udp_dropped_total{reason=\"amplification\"}") >= 3.0,
            "{backend}"
        );
        assert!(
            beast.metric("beast_udp_dropped_total{reason=\"malformed\"}") >= 1.0,
            "{backend}"
        );
    }
}

beast_tests::on_both_backends! {
    /// A public key is no key: the demo tier gets the keyless size rule (32 assets asked for in
    /// 175 bytes once got 2 881). And refusals (invalid key, rate limited) are never larger
    /// than their request, however many.
    fn public_keys_and_refusals_never_amplify(backend) {
        let scratch = beast_tests::Scratch::new();
        let demo = scratch.create_key("demo");
        let paid = scratch.create_key("basic");
        let data_dir = scratch.path().join("data");
        let beast = Beast::start(backend, &["--beast-data-dir", data_dir.to_str().unwrap()]);
        let udp = beast.udp_client("udp_lpo");
        let many = format!("key={demo}{}", " BTC".repeat(32));
        let mut v8_buf = [0u8; 1024];
        let symbols: Vec<&[u8]> = vec![b"BTC"; 8];
        let len = v8::encode_request(&mut v8_buf, 9, Some(demo.as_bytes()), &symbols, 0).unwrap();
        let v8_demo = v8_buf[..len].to_vec();
        // Far past the demo tier's 3 a second: most of these are rate limited.
        for round in 0..40 {
            for request in [many.as_bytes(), &v8_demo[..]] {
                for reply in udp.ask_then_probe(request) {
                    assert!(
                        reply.len() <= request.len(),
                        "{backend} round {round}: {} bytes for {}",
                        reply.len(),
                        request.len()
                    );
                }
            }
        }
        assert!(beast.metric("beast_requests_denied_total{reason=\"rate_limited\"}") > 0.0);
        // A paid tier's key still lifts the rule.
        let keyed = format!("key={paid} BTC ETH");
        let reply = udp.ask(keyed.as_bytes());
        assert!(reply.len() > keyed.len(), "{backend}");
    }
}
