//! Requests to send and the checks on their replies: every reply is validated (the asset
//! matches, the price parses as an exact decimal), so a server that answers fast but wrong
//! is caught.

use beast_core::Decimal;
use beast_engine::protocol::udp::v8;

/// What a request is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Form {
    /// UDP text: `BTC` (padded).
    UdpText,
    /// UDP binary v8.
    UdpV8,
    /// HTTP/1.1 `GET /price?asset=` (or `/prices?assets=` for several).
    Http,
}

/// Largest padded UDP text request.
const MAX_TEXT_PAD: usize = 1400;

/// Pre-encoded requests, rotated through: one per asset group of the mix.
pub struct Requests {
    pub form: Form,
    frames: Vec<Vec<u8>>,
    assets: Vec<Vec<String>>,
}

impl Requests {
    /// `assets` are rotated `per_request` at a time. UDP text requests are padded to `pad_to`
    /// bytes per asset and v8 requests to their reply's size, key or no key: the server never
    /// answers a datagram with a larger one unless its key's tier lifts the rule (not the demo
    /// or free tiers), and the generator does not know the tier.
    pub fn new(
        form: Form,
        assets: &[String],
        per_request: usize,
        key: Option<&str>,
        pad_to: usize,
        path: Option<&str>,
    ) -> Requests {
        if let (Form::Http, Some(path)) = (form, path) {
            let key_header = key
                .map(|k| format!("X-API-Key: {k}\r\n"))
                .unwrap_or_default();
            let frame = format!("GET {path} HTTP/1.1\r\nHost: beast-bench\r\n{key_header}\r\n");
            // No assets: the answer is not a price, any 200 with a body is good.
            return Requests {
                form,
                frames: vec![frame.into_bytes()],
                assets: vec![Vec::new()],
            };
        }
        let per_request = per_request.clamp(1, 32);
        let mut frames = Vec::new();
        let mut groups = Vec::new();
        let n = assets.len().max(1);
        for start in 0..n {
            let group: Vec<String> = (0..per_request)
                .filter_map(|i| assets.get((start + i) % n))
                .map(|a| a.to_ascii_uppercase())
                .collect();
            if group.is_empty() {
                continue;
            }
            let frame = match form {
                Form::UdpText => {
                    let mut text = key.map(|k| format!("key={k} ")).unwrap_or_default();
                    text.push_str(&group.join(" "));
                    let mut bytes = text.into_bytes();
                    let padded = (pad_to * group.len()).min(MAX_TEXT_PAD);
                    if bytes.len() < padded {
                        bytes.resize(padded, b' ');
                    }
                    bytes
                }
                Form::UdpV8 => {
                    let symbols: Vec<&[u8]> = group.iter().map(|s| s.as_bytes()).collect();
                    let pad = v8::reply_len(symbols.len());
                    let mut buf = vec![0u8; 2048];
                    let len =
                        v8::encode_request(&mut buf, 0, key.map(str::as_bytes), &symbols, pad)
                            .unwrap_or(0);
                    buf.truncate(len);
                    buf
                }
                Form::Http => {
                    let key_header = key
                        .map(|k| format!("X-API-Key: {k}\r\n"))
                        .unwrap_or_default();
                    let target = match group.as_slice() {
                        [one] => format!("/price?asset={one}"),
                        many => format!("/prices?assets={}", many.join(",")),
                    };
                    format!("GET {target} HTTP/1.1\r\nHost: beast-bench\r\n{key_header}\r\n")
                        .into_bytes()
                }
            };
            frames.push(frame);
            groups.push(group);
        }
        Requests {
            form,
            frames,
            assets: groups,
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Request `i` (rotating) and the assets it asks for.
    pub fn get(&self, i: usize) -> (&[u8], &[String]) {
        let n = self.frames.len().max(1);
        (
            self.frames.get(i % n).map_or(&[][..], Vec::as_slice),
            self.assets.get(i % n).map_or(&[][..], Vec::as_slice),
        )
    }
}

/// How a reply was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Not a well-formed answer at all.
    Malformed,
    /// Well formed, but for another asset, an error answer, or a price that does not parse.
    Mismatched,
    /// HTTP: a status other than 200.
    Status(u16),
    /// HTTP: 503 from the connection governor.
    Overloaded,
}

/// The string value of `"name":` at or after `from`, and where it ends. Answers are compact
/// JSON written by a server, so a byte scan is enough and keeps the check cheap next to the
/// server's own work.
fn string_field<'a>(body: &'a [u8], from: usize, name: &[u8]) -> Option<(&'a [u8], usize)> {
    let rest = body.get(from..)?;
    let at = rest.windows(name.len() + 3).position(|w| {
        w.first() == Some(&b'"')
            && w.get(1..=name.len()) == Some(name)
            && w.get(name.len() + 1..) == Some(b"\":")
    })?;
    let mut start = from + at + name.len() + 3;
    while body.get(start) == Some(&b' ') {
        start += 1;
    }
    if body.get(start) != Some(&b'"') {
        return None;
    }
    let value_start = start + 1;
    let len = body.get(value_start..)?.iter().position(|&b| b == b'"')?;
    Some((
        body.get(value_start..value_start + len)?,
        value_start + len + 1,
    ))
}

/// A JSON answer (UDP text, HTTP body) for `assets`: an object for one asset, an array of
/// objects in request order for several, each with the asset and a price that parses exactly.
pub fn check_json(body: &[u8], assets: &[String]) -> Verdict {
    let body = body.trim_ascii();
    let shape_ok = match assets.len() {
        1 => body.first() == Some(&b'{') && body.last() == Some(&b'}'),
        _ => body.first() == Some(&b'[') && body.last() == Some(&b']'),
    };
    if !shape_ok {
        let object = body.first() == Some(&b'{') && body.last() == Some(&b'}');
        return if object {
            Verdict::Mismatched
        } else {
            Verdict::Malformed
        };
    }
    let mut at = 0;
    for asset in assets {
        let Some((name, end)) = string_field(body, at, b"asset") else {
            return Verdict::Mismatched;
        };
        if !name.eq_ignore_ascii_case(asset.as_bytes()) {
            return Verdict::Mismatched;
        }
        let Some((price, end)) = string_field(body, end, b"price") else {
            return Verdict::Mismatched;
        };
        let parses = std::str::from_utf8(price).is_ok_and(|p| Decimal::parse(p).is_ok());
        if !parses {
            return Verdict::Mismatched;
        }
        at = end;
    }
    Verdict::Ok
}

/// A v8 reply to request `id` for `count` symbols.
pub fn check_v8(reply: &[u8], id: u32, count: usize) -> Verdict {
    let Ok((header, records)) = v8::parse_reply(reply) else {
        return Verdict::Malformed;
    };
    if header.request_id != id || header.status != 0 || header.count != count {
        return Verdict::Mismatched;
    }
    let mut all_priced = true;
    for record in records {
        match record {
            Ok(r) => all_priced &= r.status == v8::RecordStatus::Ok && r.mantissa > 0,
            Err(_) => return Verdict::Malformed,
        }
    }
    if all_priced {
        Verdict::Ok
    } else {
        Verdict::Mismatched
    }
}

/// The request id carried by a v8 request or reply.
pub fn v8_id(bytes: &[u8]) -> Option<u32> {
    bytes
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_checks() {
        let assets: Vec<String> = ["btc", "eth"].iter().map(|s| s.to_string()).collect();
        let text = Requests::new(Form::UdpText, &assets, 1, None, 128, None);
        assert_eq!(text.len(), 2);
        let (frame, expected) = text.get(3);
        assert_eq!((frame.len(), expected), (128, &["ETH".to_string()][..]));
        let http = Requests::new(Form::Http, &assets, 2, Some("k3y-abcdefgh"), 0, None);
        let report = Requests::new(Form::Http, &assets, 1, None, 0, Some("/reports/snapshot"));
        let (frame, expected) = report.get(5);
        assert!(frame.starts_with(b"GET /reports/snapshot HTTP/1.1\r\n"));
        assert!(expected.is_empty());
        let (frame, expected) = http.get(0);
        assert!(
            String::from_utf8_lossy(frame).starts_with("GET /prices?assets=BTC,ETH HTTP/1.1\r\n")
        );
        assert_eq!(expected.len(), 2);

        let btc = [String::from("BTC")];
        let cases: &[(&str, Verdict)] = &[
            (
                r#"{"asset":"BTC","price":"97123.45","source":"x","ts":1}"#,
                Verdict::Ok,
            ),
            (r#"{"asset":"ETH","price":"1"}"#, Verdict::Mismatched),
            (r#"{"asset":"BTC","price":"-1"}"#, Verdict::Mismatched),
            (r#"{"error":"no_price","message":"x"}"#, Verdict::Mismatched),
            ("not json", Verdict::Malformed),
        ];
        for (body, verdict) in cases {
            assert_eq!(check_json(body.as_bytes(), &btc), *verdict, "{body}");
        }
        let two = ["BTC".to_string(), "ETH".to_string()];
        assert_eq!(
            check_json(
                br#"[{"asset":"BTC","price":"1"},{"asset":"ETH","price":"2.5"}]"#,
                &two
            ),
            Verdict::Ok
        );
        assert_eq!(
            check_json(br#"[{"asset":"BTC","price":"1"}]"#, &two),
            Verdict::Mismatched
        );
    }
}
