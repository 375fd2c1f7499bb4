#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| beast_engine::fuzzing::venue_coinbase(data));
