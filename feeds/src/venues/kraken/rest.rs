//! REST fallback: `GET /Ticker?pair=XBTUSD,KSMUSD`, no time (receive time used).
//!
//! ```json
//! {"error":[],"result":{"XXBTZUSD":{"a":["97012.40000","1","1.000"],"b":["97012.30000","1","1.000"],"c":["97012.40000","0.00120000"],"v":["1","2"],"o":"96009.30000"},"KSMUSD":{"c":["31.27000","1.2"]}}}
//! ```
//!
//! Last price `c[0]`. Result keys are Kraken's internal names: legacy assets carry an `X`
//! prefix and a `Z` before a fiat quote (`XXBTZUSD`), BTC is `XBT` and DOGE is `XDG`.

use beast_core::Symbol;

use crate::exchange::{ParseError, Update, field};
use crate::json;

/// Kraken's own names for assets that differ from ours.
const RENAMED: [(&str, &str); 2] = [("BTC", "XBT"), ("DOGE", "XDG")];
/// Legacy four-letter names with their `X` prefix.
const LEGACY: [(&str, &str); 11] = [
    ("XXBT", "BTC"),
    ("XXDG", "DOGE"),
    ("XETH", "ETH"),
    ("XLTC", "LTC"),
    ("XXRP", "XRP"),
    ("XXLM", "XLM"),
    ("XETC", "ETC"),
    ("XZEC", "ZEC"),
    ("XXMR", "XMR"),
    ("XMLN", "MLN"),
    ("XREP", "REP"),
];

/// Kraken's REST name for one of our assets (`BTC` → `XBT`).
pub fn rest_name(asset: &Symbol) -> String {
    RENAMED
        .iter()
        .find(|(ours, _)| *ours == asset.as_str())
        .map_or_else(|| asset.to_string(), |(_, theirs)| (*theirs).to_string())
}

/// The base asset of a result key: `XXBTZUSD` → BTC, `KSMUSD` → KSM, `XBTUSD` → BTC.
fn base(key: &str) -> Option<Symbol> {
    let base = key
        .strip_suffix("ZUSD")
        .or_else(|| key.strip_suffix("USD"))?;
    let name = LEGACY
        .iter()
        .find(|(legacy, _)| *legacy == base)
        .map(|(_, ours)| *ours)
        .or_else(|| {
            RENAMED
                .iter()
                .find(|(_, theirs)| *theirs == base)
                .map(|(ours, _)| *ours)
        })
        .unwrap_or(base);
    Symbol::parse(name.as_bytes()).ok()
}

pub fn parse(
    body: &str,
    received_ms: u64,
    out: &mut dyn FnMut(Update),
) -> Result<usize, ParseError> {
    let root = json::parse(body)?
        .as_object()
        .ok_or(ParseError::WrongType("body"))?;
    let Some(result) = root.get("result").and_then(json::Value::as_object) else {
        // {"error":["EQuery:Unknown asset pair"],"result":{}} arrives with status 200.
        return if root.get("error").is_some() {
            Ok(0)
        } else {
            Err(ParseError::Missing("result"))
        };
    };
    let mut count = 0;
    for (key, ticker) in result.iter() {
        let Some(asset) = key.plain().and_then(base) else {
            continue;
        };
        let ticker = ticker.as_object().ok_or(ParseError::WrongType("result"))?;
        let last = field::array(&ticker, "c")?
            .get(0)
            .ok_or(ParseError::Missing("c"))?;
        let price = field::price(last, "c")?;
        out(Update {
            asset,
            price,
            exchange_ms: received_ms,
        });
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tickers_and_maps_names() {
        let body = r#"{"error":[],"result":{"XXBTZUSD":{"a":["97012.40000","1","1.000"],"c":["97012.40000","0.00120000"]},"KSMUSD":{"c":["31.27000","1.2"]},"XDGUSD":{"c":["0.32100","5"]}}}"#;
        let mut got = Vec::new();
        assert_eq!(
            parse(body, 3, &mut |u| got
                .push(format!("{} {}", u.asset, u.price))),
            Ok(3)
        );
        assert_eq!(got, ["BTC 97012.40000", "KSM 31.27000", "DOGE 0.32100"]);
        assert_eq!(
            parse(
                r#"{"error":["EQuery:Unknown asset pair"],"result":{}}"#,
                3,
                &mut |_| {}
            ),
            Ok(0)
        );
        assert_eq!(
            parse(r#"{"error":["EQuery:Unknown asset pair"]}"#, 3, &mut |_| {}),
            Ok(0)
        );
        assert_eq!(rest_name(&Symbol::parse(b"BTC").unwrap()), "XBT");
        assert_eq!(rest_name(&Symbol::parse(b"KSM").unwrap()), "KSM");
    }
}
