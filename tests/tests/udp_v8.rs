//! UDP binary v8 requests on both backends (docs/PROTOCOL-UDP.md).

use beast_engine::protocol::udp::v8;
use beast_tests::server::{BACKENDS, Beast};

fn request(id: u32, key: Option<&[u8]>, symbols: &[&[u8]], pad_to: usize) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let len = v8::encode_request(&mut buf, id, key, symbols, pad_to).unwrap();
    buf[..len].to_vec()
}

#[test]
fn v8_requests_get_fixed_records() {
    for backend in BACKENDS {
        let beast = Beast::start(backend, &[]);
        let udp = beast.udp_client("udp_lpo");
        let symbols: [&[u8]; 5] = [b"btc", b"PEPE", b"SOL", b"NOPE", b"OLD"];
        let reply = udp.ask(&request(41, None, &symbols, v8::reply_len(5)));
        assert_eq!(reply.len(), v8::reply_len(5), "{backend}");
        let (header, records) = v8::parse_reply(&reply).unwrap();
        assert_eq!((header.status, header.request_id, header.count), (0, 41, 5));
        let records: Vec<v8::Record> = records.map(Result::unwrap).collect();
        assert_eq!(
            (records[0].status, records[0].mantissa, records[0].scale),
            (v8::RecordStatus::Ok, 9_712_345, 2)
        );
        assert_eq!(records[0].venue(), Some(beast_core::Venue::Coinbase));
        assert_eq!(records[0].flags & v8::RECORD_STALE, 0);
        assert_eq!((records[1].mantissa, records[1].scale), (1234, 8));
        assert_eq!(records[2].status, v8::RecordStatus::NoPrice);
        assert_eq!(records[3].status, v8::RecordStatus::UnknownAsset);
        assert_eq!(
            (
                records[4].status,
                records[4].flags & v8::RECORD_STALE,
                records[4].exchange_ms
            ),
            (v8::RecordStatus::Ok, v8::RECORD_STALE, 1000)
        );

        // Unpadded and keyless: a header saying "too small", no larger than the request.
        let small = request(42, None, &[b"BTC"], 0);
        let reply = udp.ask(&small);
        assert!(reply.len() <= small.len());
        assert_eq!(
            v8::parse_reply(&reply).unwrap().0.status,
            v8::ReplyStatus::TooSmall as u8
        );

        // Malformed: a header-only error (count 0 is not allowed).
        let mut bad = request(43, None, &[b"BTC"], v8::reply_len(1));
        bad[8] = 0;
        let reply = udp.ask(&bad);
        assert_eq!(reply.len(), v8::HEADER_LEN);
        let (header, _) = v8::parse_reply(&reply).unwrap();
        assert_eq!(
            (header.status, header.request_id),
            (v8::ReplyStatus::TooManySymbols as u8, 43)
        );
        bad[8] = 1;
        bad[3] = 0x80;
        assert_eq!(
            v8::parse_reply(&udp.ask(&bad)).unwrap().0.status,
            v8::ReplyStatus::Malformed as u8
        );
        assert!(beast.metric("beast_udp_requests_total{form=\"v8\"}") >= 4.0);
    }
}
