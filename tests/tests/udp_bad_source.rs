//! A datagram from source port 0 (which no reply can reach) is dropped and counted, never
//! answered or metered, and does not cost the datagrams around it their replies: one such
//! datagram in every batch once made epoll's `sendmmsg` stop at its reply and lose the rest.

use beast_tests::on_both_backends;
use beast_tests::server::{Beast, padded, send_from_port_zero};

on_both_backends! {
    fn port_zero_datagrams_cost_no_one_their_replies(backend) {
        let beast = Beast::start(backend, &[]);
        let udp = beast.udp_client("udp_lpo");
        let to = beast.addr("udp_lpo");
        let request = padded("BTC", 128);
        // 50 rounds: four requests, a port-0 datagram, then wait for the four replies.
        for round in 0..50 {
            for _ in 0..4 {
                udp.send(&request);
            }
            send_from_port_zero(to, &request);
            for _ in 0..4 {
                let reply = udp.recv();
                assert!(reply.starts_with(b"{\"asset\":\"BTC\""), "{backend} round {round}");
            }
        }
        assert_eq!(beast.metric("beast_udp_dropped_total{reason=\"bad_source\"}"), 50.0);
        assert_eq!(beast.metric("beast_udp_replies_total"), 200.0, "{backend}");
        assert_eq!(beast.metric("beast_udp_dropped_total{reason=\"send_error\"}"), 0.0);
        assert_eq!(
            beast.metric("beast_usage_recorded_total"),
            200.0,
            "{backend}: only answers that went out are metered"
        );
    }
}
