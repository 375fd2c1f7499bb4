//! What each simulated venue says on the wire, in its current protocol (PROTOCOLS.md): replies
//! to what clients send, ticker frames, heartbeats, errors, and REST ticker bodies.

use beast_core::{Symbol, Venue};

use super::market::Market;
use super::sent::{Channel, SentLog};
use crate::json::{self, Value};

/// A message from a client, as the simulator understands it.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Subscribe to these assets' price channel; `id` is the request id to echo, raw JSON.
    Subscribe {
        id: String,
        assets: Vec<Symbol>,
    },
    /// Coinbase's `heartbeats` channel.
    SubscribeHeartbeats,
    /// An application ping; the reply to send.
    Ping(String),
    /// Crypto.com's `public/respond-heartbeat`.
    HeartbeatAnswer,
    Other,
}

/// Reads a client frame.
pub fn incoming(venue: Venue, text: &str) -> Incoming {
    if venue == Venue::Okx && text == "ping" {
        return Incoming::Ping("pong".into());
    }
    let Ok(Value::Object(msg)) = json::parse(text) else {
        return Incoming::Other;
    };
    let raw_id = msg.get("id").map_or_else(|| "1".to_string(), raw);
    let strings = |v: Option<Value<'_>>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let assets = |pairs: Vec<String>, cut: &dyn Fn(&str) -> Option<String>| -> Vec<Symbol> {
        pairs
            .iter()
            .filter_map(|p| cut(p))
            .filter_map(|b| Symbol::parse(b.as_bytes()).ok())
            .collect()
    };
    let method = msg.get("method").and_then(Value::as_str);
    match venue {
        Venue::Coinbase => match (
            msg.get("type").and_then(Value::as_str),
            msg.get("channel").and_then(Value::as_str),
        ) {
            (Some("subscribe"), Some("heartbeats")) => Incoming::SubscribeHeartbeats,
            (Some("subscribe"), Some("ticker")) => Incoming::Subscribe {
                id: raw_id,
                assets: assets(strings(msg.get("product_ids")), &|p| {
                    p.split('-').next().map(str::to_string)
                }),
            },
            _ => Incoming::Other,
        },
        Venue::Gemini => match method {
            Some("subscribe" | "SUBSCRIBE") => Incoming::Subscribe {
                assets: assets(strings(msg.get("params")), &|p| {
                    p.strip_suffix("@trade")
                        .and_then(|s| s.strip_suffix("usd"))
                        .map(str::to_uppercase)
                }),
                id: raw_id,
            },
            Some("ping") => Incoming::Ping(format!(r#"{{"id":{raw_id},"status":200}}"#)),
            _ => Incoming::Other,
        },
        Venue::Kraken => match method {
            Some("subscribe") => {
                let params = msg.get("params").and_then(Value::as_object);
                let symbols = strings(params.and_then(|p| p.get("symbol")));
                let id = msg.get("req_id").map_or_else(|| "0".to_string(), raw);
                Incoming::Subscribe {
                    id,
                    assets: assets(symbols, &|p| p.split('/').next().map(str::to_string)),
                }
            }
            Some("ping") => {
                let req = msg.get("req_id").map_or_else(|| "0".to_string(), raw);
                let now = rfc3339(super::now_ms());
                Incoming::Ping(format!(
                    r#"{{"method":"pong","req_id":{req},"time_in":"{now}","time_out":"{now}"}}"#
                ))
            }
            _ => Incoming::Other,
        },
        Venue::Gateio => match (
            msg.get("channel").and_then(Value::as_str),
            msg.get("event").and_then(Value::as_str),
        ) {
            (Some("spot.tickers"), Some("subscribe")) => Incoming::Subscribe {
                id: raw_id,
                assets: assets(strings(msg.get("payload")), &|p| {
                    p.split('_').next().map(str::to_string)
                }),
            },
            (Some("spot.ping"), _) => {
                let ms = super::now_ms();
                Incoming::Ping(format!(
                    r#"{{"time":{},"time_ms":{ms},"channel":"spot.pong","event":"","result":null}}"#,
                    ms / 1000
                ))
            }
            _ => Incoming::Other,
        },
        Venue::Cryptocom => match method {
            Some("subscribe") => {
                let params = msg.get("params").and_then(Value::as_object);
                let channels = strings(params.and_then(|p| p.get("channels")));
                Incoming::Subscribe {
                    id: raw_id,
                    assets: assets(channels, &|c| {
                        c.strip_prefix("ticker.")
                            .and_then(|p| p.split('_').next())
                            .map(str::to_string)
                    }),
                }
            }
            Some("public/respond-heartbeat") => Incoming::HeartbeatAnswer,
            _ => Incoming::Other,
        },
        Venue::Okx => match msg.get("op").and_then(Value::as_str) {
            Some("subscribe") => {
                let args = msg.get("args").and_then(Value::as_array);
                let insts: Vec<String> = args
                    .map(|a| {
                        a.iter()
                            .filter_map(|arg| {
                                arg.as_object()
                                    .and_then(|o| o.get("instId"))
                                    .and_then(Value::as_str)
                                    .map(str::to_string)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Incoming::Subscribe {
                    id: raw_id,
                    assets: assets(insts, &|p| p.split('-').next().map(str::to_string)),
                }
            }
            _ => Incoming::Other,
        },
    }
}

/// A JSON value's text as written.
fn raw(value: Value<'_>) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("\"{}\"", s.raw()),
        Value::Bool(b) => b.to_string(),
        _ => "null".into(),
    }
}

/// Frames sent as soon as a connection opens.
pub fn greeting(venue: Venue) -> Vec<String> {
    match venue {
        Venue::Kraken => vec![r#"{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":13834774380200032777,"system":"online","version":"2.0.10"}]}"#.into()],
        _ => Vec::new(),
    }
}

/// The acknowledgements of a subscription.
pub fn acks(
    venue: Venue,
    id: &str,
    assets: &[Symbol],
    heartbeats: bool,
    sequence: u64,
) -> Vec<String> {
    let now = super::now_ms();
    match venue {
        Venue::Coinbase => {
            let products: Vec<String> = assets.iter().map(|a| format!("\"{a}-USD\"")).collect();
            let hb = if heartbeats { r#""heartbeats":["heartbeats"],"# } else { "" };
            vec![format!(
                r#"{{"channel":"subscriptions","timestamp":"{}","sequence_num":{sequence},"events":[{{"subscriptions":{{{hb}"ticker":[{}]}}}}]}}"#,
                rfc3339(now),
                products.join(",")
            )]
        }
        Venue::Gemini => vec![format!(r#"{{"id":{id},"status":200}}"#)],
        Venue::Kraken => assets
            .iter()
            .map(|a| {
                format!(
                    r#"{{"method":"subscribe","result":{{"channel":"ticker","event_trigger":"trades","snapshot":true,"symbol":"{a}/USD"}},"success":true,"time_in":"{t}","time_out":"{t}","req_id":{id}}}"#,
                    t = rfc3339(now)
                )
            })
            .collect(),
        Venue::Gateio => {
            let pairs: Vec<String> = assets.iter().map(|a| format!("\"{a}_USDT\"")).collect();
            vec![format!(
                r#"{{"time":{},"time_ms":{now},"conn_id":"sim","trace_id":"sim","channel":"spot.tickers","event":"subscribe","payload":[{}],"result":{{"status":"success"}}}}"#,
                now / 1000,
                pairs.join(",")
            )]
        }
        // The first ticker frame of each channel carries the request id instead.
        Venue::Cryptocom => Vec::new(),
        Venue::Okx => assets.iter().map(|a| format!(r#"{{"id":{id},"event":"subscribe","arg":{{"channel":"tickers","instId":"{a}-USDT"}},"connId":"sim"}}"#)).collect(),
    }
}

/// Whether the venue pushes the current ticker right after a subscription.
pub fn sends_snapshot(venue: Venue) -> bool {
    !matches!(venue, Venue::Gemini | Venue::Gateio)
}

/// One price frame. `request_id` is Crypto.com's echo of the subscribe id on the first frame.
pub fn ticker(
    venue: Venue,
    asset: &Symbol,
    price: &str,
    now_ms: u64,
    sequence: u64,
    request_id: Option<&str>,
) -> String {
    match venue {
        Venue::Coinbase => format!(
            r#"{{"channel":"ticker","timestamp":"{}","sequence_num":{sequence},"events":[{{"type":"update","tickers":[{{"type":"ticker","product_id":"{asset}-USD","price":"{price}","volume_24_h":"1234.5678","low_24_h":"{price}","high_24_h":"{price}","price_percent_chg_24_h":"0.12","best_bid":"{price}","best_bid_quantity":"0.5","best_ask":"{price}","best_ask_quantity":"0.5"}}]}}]}}"#,
            rfc3339_nanos(now_ms)
        ),
        Venue::Gemini => format!(
            r#"{{"E":{}000000,"s":"{}usd","t":{},"p":"{price}","q":"0.01","m":false}}"#,
            now_ms,
            asset.as_str().to_ascii_lowercase(),
            1_000_000 + sequence
        ),
        Venue::Kraken => format!(
            r#"{{"channel":"ticker","type":"update","data":[{{"symbol":"{asset}/USD","bid":{price},"bid_qty":1.5,"ask":{price},"ask_qty":2.5,"last":{price},"volume":1234.5,"vwap":{price},"low":{price},"high":{price},"change":0.0,"change_pct":0.0,"timestamp":"{}"}}]}}"#,
            rfc3339(now_ms)
        ),
        Venue::Gateio => format!(
            r#"{{"time":{},"time_ms":{now_ms},"channel":"spot.tickers","event":"update","result":{{"currency_pair":"{asset}_USDT","last":"{price}","lowest_ask":"{price}","highest_bid":"{price}","change_percentage":"0.12","base_volume":"1234.5","quote_volume":"5678.9","high_24h":"{price}","low_24h":"{price}"}}}}"#,
            now_ms / 1000
        ),
        Venue::Cryptocom => format!(
            r#"{{"id":{},"method":"subscribe","code":0,"result":{{"instrument_name":"{asset}_USDT","subscription":"ticker.{asset}_USDT","channel":"ticker","data":[{{"i":"{asset}_USDT","h":"{price}","l":"{price}","a":"{price}","v":"1234.5","vv":"5678.9","c":"0.0012","b":"{price}","bs":"1.5","k":"{price}","ks":"2.5","oi":"0","t":{now_ms}}}]}}}}"#,
            request_id.unwrap_or("-1")
        ),
        Venue::Okx => format!(
            r#"{{"arg":{{"channel":"tickers","instId":"{asset}-USDT"}},"data":[{{"instType":"SPOT","instId":"{asset}-USDT","last":"{price}","lastSz":"1.5","askPx":"{price}","askSz":"2.5","bidPx":"{price}","bidSz":"3.5","open24h":"{price}","high24h":"{price}","low24h":"{price}","volCcy24h":"5678.9","vol24h":"1234.5","sodUtc0":"{price}","sodUtc8":"{price}","ts":"{now_ms}"}}]}}"#
        ),
    }
}

/// The venue's periodic heartbeat frame, if it sends one.
pub fn heartbeat(
    venue: Venue,
    now_ms: u64,
    sequence: u64,
    subscribed_heartbeats: bool,
) -> Option<String> {
    match venue {
        Venue::Coinbase if subscribed_heartbeats => Some(format!(
            r#"{{"channel":"heartbeats","timestamp":"{}","sequence_num":{sequence},"events":[{{"current_time":"sim","heartbeat_counter":{sequence}}}]}}"#,
            rfc3339_nanos(now_ms)
        )),
        Venue::Kraken => Some(r#"{"channel":"heartbeat"}"#.into()),
        Venue::Cryptocom => Some(format!(
            r#"{{"id":{now_ms},"method":"public/heartbeat","code":0}}"#
        )),
        _ => None,
    }
}

/// An exchange error frame (well formed, no price).
pub fn error_frame(venue: Venue) -> String {
    match venue {
        Venue::Coinbase => r#"{"type":"error","message":"failure to subscribe"}"#.into(),
        Venue::Gemini => r#"{"id":"9","status":400,"error":{"code":-1013,"msg":"Invalid stream name: nosuchusd@trade"}}"#.into(),
        Venue::Kraken => r#"{"method":"subscribe","success":false,"error":"Currency pair not supported FOO/USD","symbol":"FOO/USD","req_id":9}"#.into(),
        Venue::Gateio => r#"{"time":1,"time_ms":1,"channel":"spot.tickers","event":"subscribe","error":{"code":2,"message":"unknown currency pair: FOO_USDT"},"result":{"status":"fail"}}"#.into(),
        Venue::Cryptocom => r#"{"id":11,"method":"subscribe","code":40003,"channel":"ticker.FOO_USDT","message":"Unknown symbol"}"#.into(),
        Venue::Okx => r#"{"id":"9","event":"error","code":"60018","msg":"Doesn't exist","connId":"sim"}"#.into(),
    }
}

/// Garbage: broken JSON, and a price field of the wrong type.
pub fn garbage(venue: Venue, n: u64) -> String {
    match n % 3 {
        0 => "}{ not json at all".into(),
        1 => r#"{"channel":"ticker","events":[{"tickers":[{"product_id":"#.into(),
        // A real ticker frame whose price is a boolean.
        _ => match Symbol::parse(b"BTC") {
            Ok(btc) => ticker(venue, &btc, "9999.99", super::now_ms(), n, None)
                .replace("\"9999.99\"", "true")
                .replace("9999.99", "true"),
            Err(_) => "}{".into(),
        },
    }
}

/// A REST ticker response for `path` (below the venue's prefix) and `query`; each price it
/// quotes is entered in `sent`.
pub(crate) fn rest(
    venue: Venue,
    path: &str,
    query: &str,
    market: &Market,
    sent: &SentLog,
    now_ms: u64,
) -> Option<String> {
    let param = |name: &str| -> Vec<String> {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::to_string)
            .collect()
    };
    let symbols = |pairs: Vec<String>, sep: char| -> Vec<Symbol> {
        pairs
            .iter()
            .filter_map(|p| p.split(sep).next())
            .filter_map(|b| Symbol::parse(b.as_bytes()).ok())
            .collect()
    };
    let price = |asset: &Symbol| {
        let price = market.current(venue, asset);
        sent.record(venue, Channel::Rest, *asset, &price, now_ms);
        price
    };
    match (venue, path) {
        (Venue::Coinbase, "/market/products") => {
            let products: Vec<String> = symbols(param("product_ids"), '-')
                .iter()
                .map(|a| format!(r#"{{"product_id":"{a}-USD","price":"{}","base_currency_id":"{a}","quote_currency_id":"USD","status":"online"}}"#, price(a)))
                .collect();
            Some(format!(
                r#"{{"products":[{}],"num_products":{}}}"#,
                products.join(","),
                products.len()
            ))
        }
        (Venue::Gemini, "/v1/pricefeed") => {
            let items: Vec<String> = market
                .assets(venue)
                .iter()
                .map(|a| {
                    format!(
                        r#"{{"pair":"{a}USD","price":"{}","percentChange24h":"0.0012"}}"#,
                        price(a)
                    )
                })
                .collect();
            Some(format!("[{}]", items.join(",")))
        }
        (Venue::Kraken, "/Ticker") => {
            let items: Vec<String> = param("pair")
                .iter()
                .filter_map(|p| p.strip_suffix("USD"))
                .filter_map(|name| {
                    let (ours, key) = match name {
                        "XBT" => ("BTC", "XXBTZUSD".to_string()),
                        "XDG" => ("DOGE", "XXDGZUSD".to_string()),
                        "ETH" => ("ETH", "XETHZUSD".to_string()),
                        other => (other, format!("{other}USD")),
                    };
                    let asset = Symbol::parse(ours.as_bytes()).ok()?;
                    Some(format!(r#""{key}":{{"a":["{p}","1","1.000"],"b":["{p}","1","1.000"],"c":["{p}","0.5"],"o":"{p}"}}"#, p = price(&asset)))
                })
                .collect();
            Some(format!(
                r#"{{"error":[],"result":{{{}}}}}"#,
                items.join(",")
            ))
        }
        (Venue::Gateio, "/spot/tickers") => {
            let wanted = symbols(param("currency_pair"), '_');
            let assets = if wanted.is_empty() {
                market.assets(venue)
            } else {
                wanted
            };
            let items: Vec<String> = assets.iter().map(|a| format!(r#"{{"currency_pair":"{a}_USDT","last":"{p}","lowest_ask":"{p}","highest_bid":"{p}"}}"#, p = price(a))).collect();
            Some(format!("[{}]", items.join(",")))
        }
        (Venue::Cryptocom, "/public/get-tickers") => {
            let wanted = symbols(param("instrument_name"), '_');
            let assets = if wanted.is_empty() {
                market.assets(venue)
            } else {
                wanted
            };
            let items: Vec<String> = assets
                .iter()
                .map(|a| format!(r#"{{"i":"{a}_USDT","a":"{}","t":{now_ms}}}"#, price(a)))
                .collect();
            Some(format!(
                r#"{{"id":-1,"method":"public/get-tickers","code":0,"result":{{"data":[{}]}}}}"#,
                items.join(",")
            ))
        }
        (Venue::Okx, "/api/v5/market/ticker" | "/api/v5/market/tickers") => {
            let wanted = symbols(param("instId"), '-');
            let assets = if wanted.is_empty() {
                market.assets(venue)
            } else {
                wanted
            };
            let items: Vec<String> = assets
                .iter()
                .map(|a| {
                    format!(
                        r#"{{"instType":"SPOT","instId":"{a}-USDT","last":"{}","ts":"{now_ms}"}}"#,
                        price(a)
                    )
                })
                .collect();
            Some(format!(
                r#"{{"code":"0","msg":"","data":[{}]}}"#,
                items.join(",")
            ))
        }
        _ => None,
    }
}

/// Unix ms as RFC 3339 with microseconds (`2026-11-24T05:12:33.123000Z`).
pub fn rfc3339(ms: u64) -> String {
    with_sub_ms(ms, "000")
}

/// Unix ms as RFC 3339 with nanoseconds, as Coinbase writes it.
fn rfc3339_nanos(ms: u64) -> String {
    with_sub_ms(ms, "000000")
}

/// `…T12:00:00.123` + `digits` + `Z`: the venues write more digits than ms.
fn with_sub_ms(ms: u64, digits: &str) -> String {
    let text = beast_core::clock::rfc3339_ms(ms);
    format!("{}{digits}Z", text.strip_suffix('Z').unwrap_or(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Frame, Skip};
    use crate::venues;

    /// Everything the simulator sends parses with our own parsers as what it is meant to be.
    #[test]
    fn frames_parse_as_intended() {
        let btc = Symbol::parse(b"BTC").unwrap();
        for venue in Venue::ALL {
            let parser = venues::for_venue(venue, &[btc]);
            let mut got = Vec::new();
            let frame = ticker(venue, &btc, "97123.45", 1_795_497_153_123, 1, Some("1"));
            assert_eq!(
                parser.parse(&frame, 0, &mut |u| got.push(u)),
                Ok(Frame::Prices(1)),
                "{venue}: {frame}"
            );
            assert_eq!(
                (got[0].asset, got[0].price.to_string(), got[0].exchange_ms),
                (btc, "97123.45".into(), 1_795_497_153_123),
                "{venue}"
            );
            for ack in acks(venue, "1", &[btc], true, 1) {
                assert!(
                    matches!(
                        parser.parse(&ack, 0, &mut |_| {}),
                        Ok(Frame::Skip(Skip::Ack))
                    ),
                    "{venue}: {ack}"
                );
            }
            if let Some(hb) = heartbeat(venue, 1, 1, true) {
                assert!(
                    matches!(
                        parser.parse(&hb, 0, &mut |_| {}),
                        Ok(Frame::Skip(Skip::Heartbeat | Skip::HeartbeatRequest(_)))
                    ),
                    "{venue}: {hb}"
                );
            }
            assert_eq!(
                parser.parse(&error_frame(venue), 0, &mut |_| {}),
                Ok(Frame::Skip(Skip::ExchangeError)),
                "{venue}"
            );
            for n in 0..3 {
                assert!(
                    parser.parse(&garbage(venue, n), 0, &mut |_| {}).is_err(),
                    "{venue} garbage {n}"
                );
            }
            for frame in greeting(venue) {
                assert!(
                    matches!(parser.parse(&frame, 0, &mut |_| {}), Ok(Frame::Skip(_))),
                    "{venue}: {frame}"
                );
            }
        }
    }

    /// What our connectors send is understood.
    #[test]
    fn reads_our_own_requests() {
        let assets = [
            Symbol::parse(b"BTC").unwrap(),
            Symbol::parse(b"1INCH").unwrap(),
        ];
        for venue in Venue::ALL {
            let exchange = venues::for_venue(venue, &assets);
            let subscribed: Vec<Symbol> = exchange
                .subscribe(&assets)
                .iter()
                .filter_map(|f| match incoming(venue, f) {
                    Incoming::Subscribe { assets, .. } => Some(assets),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(subscribed, assets, "{venue}");
            if let Some(ping) = exchange.ping_frame(3) {
                assert!(
                    matches!(incoming(venue, &ping), Incoming::Ping(_)),
                    "{venue}: {ping}"
                );
            }
            if let Some(reply) = exchange.heartbeat_reply(5) {
                assert_eq!(incoming(venue, &reply), Incoming::HeartbeatAnswer);
            }
        }
    }

    #[test]
    fn rest_bodies_parse() {
        let market = Market::new(super::super::market::Source::Walk);
        let assets = [
            Symbol::parse(b"BTC").unwrap(),
            Symbol::parse(b"KSM").unwrap(),
        ];
        for venue in Venue::ALL {
            let exchange = venues::for_venue(venue, &assets);
            for a in &assets {
                market.tick(venue, a);
            }
            let url = exchange.rest_url("http://sim", &assets);
            let (path, query) = url
                .trim_start_matches("http://sim")
                .split_once('?')
                .unwrap_or((url.trim_start_matches("http://sim"), ""));
            let body = rest(venue, path, query, &market, &SentLog::default(), 5)
                .unwrap_or_else(|| panic!("{venue}: no route for {url}"));
            let mut got = Vec::new();
            assert_eq!(
                exchange.parse_rest(&body, 5, &mut |u| got.push(u.asset)),
                Ok(2),
                "{venue}: {body}"
            );
            got.sort();
            assert_eq!(got, [assets[0], assets[1]], "{venue}");
        }
    }

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(1_795_497_153_123), "2026-11-24T05:12:33.123000Z");
        assert_eq!(
            crate::time::rfc3339_ms(&rfc3339_nanos(1_795_497_153_123)),
            Some(1_795_497_153_123)
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
    }
}
