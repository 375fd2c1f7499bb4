//! Every decimal in the recorded exchange sessions parses and formats back byte for byte.
//! The corpus is extracted by `data/extract-price-corpus.py` from shared/exchanges/samples.

use beast_core::Decimal;

#[test]
fn recorded_prices_round_trip_exactly() {
    let corpus = include_str!("data/price-corpus.txt");
    let mut checked = 0usize;
    for line in corpus.lines() {
        let (venue, text) = line.split_once(' ').expect("venue and token");
        let value = Decimal::parse(text).unwrap_or_else(|e| panic!("{venue} {text}: {e}"));
        assert_eq!(value.format().as_str(), text, "{venue}");
        assert_eq!(
            Decimal::from_words(value.to_words()),
            Some(value),
            "{venue} {text}"
        );
        checked += 1;
    }
    assert!(checked > 50_000, "corpus shrank to {checked} tokens");
}
