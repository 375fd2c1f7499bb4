//! The text request form: `BTC`, `BTC ETH`, `key=<api key> BTC`, answered with the HTTP JSON
//! (an object for one asset, an array for several).
//!
//! Tokens are separated by spaces, tabs, line breaks, commas or NUL bytes, so clients can pad a
//! request with any of them to make room for the reply. Any other byte outside printable
//! ASCII makes the datagram malformed: it is dropped, never answered.

use super::super::answer::{Answer, ErrorCode, write_answer, write_error};
use super::super::sink::{Fixed, Sink};
use crate::price::Freshness;
use crate::price::PriceTable;
use crate::usage::AssetList;

/// Most assets one text request may ask for.
pub(crate) const MAX_ASSETS: usize = 32;

/// A tokenised text request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TextRequest<'a> {
    pub key: Option<&'a [u8]>,
    pub assets: [&'a [u8]; MAX_ASSETS],
    pub count: usize,
    /// More assets than [`MAX_ASSETS`] were listed.
    pub too_many: bool,
}

/// Byte classes: what may appear in a text request.
const INVALID: u8 = 0;
const SEPARATOR: u8 = 1;
const TOKEN: u8 = 2;

#[allow(
    clippy::indexing_slicing,
    reason = "const evaluation: an out-of-range index fails the build"
)]
const CLASS: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        table[b] = TOKEN;
        b += 1;
    }
    table[b' ' as usize] = SEPARATOR;
    table[b'\t' as usize] = SEPARATOR;
    table[b'\r' as usize] = SEPARATOR;
    table[b'\n' as usize] = SEPARATOR;
    table[b',' as usize] = SEPARATOR;
    table[0] = SEPARATOR;
    table
};

/// Splits a datagram into its key and assets in one pass; `None` if it is not text or lists
/// no asset.
pub fn parse(datagram: &[u8]) -> Option<TextRequest<'_>> {
    let datagram = strip_padding(datagram);
    let mut request = TextRequest {
        key: None,
        assets: [&[]; MAX_ASSETS],
        count: 0,
        too_many: false,
    };
    let mut first = true;
    let mut start = None;
    for (i, &b) in datagram.iter().enumerate() {
        match CLASS.get(usize::from(b)).copied().unwrap_or(INVALID) {
            TOKEN => {
                if start.is_none() {
                    start = Some(i);
                }
            }
            SEPARATOR => {
                if let Some(s) = start.take() {
                    add_token(
                        &mut request,
                        datagram.get(s..i).unwrap_or_default(),
                        &mut first,
                    );
                }
            }
            _ => return None,
        }
    }
    if let Some(s) = start {
        add_token(
            &mut request,
            datagram.get(s..).unwrap_or_default(),
            &mut first,
        );
    }
    (request.count > 0 || request.too_many).then_some(request)
}

/// The datagram without its trailing padding, skipped eight bytes at a time where it is all
/// spaces or all NULs (what clients pad with): those bytes are separators, so nothing is lost
/// and nothing needs checking byte by byte.
fn strip_padding(datagram: &[u8]) -> &[u8] {
    let mut end = datagram.len();
    while end >= 8 {
        let word = datagram
            .get(end - 8..end)
            .and_then(|w| w.try_into().ok())
            .map_or(1, u64::from_ne_bytes);
        if word != u64::from_ne_bytes([b' '; 8]) && word != 0 {
            break;
        }
        end -= 8;
    }
    datagram.get(..end).unwrap_or_default()
}

fn add_token<'a>(request: &mut TextRequest<'a>, token: &'a [u8], first: &mut bool) {
    if std::mem::take(first)
        && let Some(key) = token.strip_prefix(b"key=")
    {
        request.key = Some(key);
        return;
    }
    match request.assets.get_mut(request.count) {
        Some(slot) => {
            *slot = token;
            request.count += 1;
        }
        None => request.too_many = true,
    }
}

/// Writes the JSON reply. `None` if `out` overflowed, otherwise whether every asset asked for
/// was answered with a price.
pub(crate) fn write_reply(
    request: &TextRequest<'_>,
    table: &PriceTable,
    fresh: Freshness,
    out: &mut Fixed<'_>,
    priced_assets: &mut AssetList,
) -> Option<bool> {
    if request.too_many {
        write_error(
            out,
            ErrorCode::TooManyAssets,
            b"at most 32 assets per request",
        );
        return (!out.overflowed()).then_some(false);
    }
    let assets = request.assets.get(..request.count).unwrap_or_default();
    let mut priced = true;
    let mut answer = |out: &mut Fixed<'_>, asset: &[u8]| {
        let answer = Answer::lookup(table, asset);
        if let Answer::Price { id, .. } = answer {
            priced_assets.push(id);
        }
        priced &= answer.is_price();
        write_answer(out, &answer, fresh);
    };
    if let [only] = assets {
        answer(out, only);
    } else {
        out.put(b"[");
        for (i, asset) in assets.iter().enumerate() {
            if i > 0 {
                out.put(b",");
            }
            answer(out, asset);
        }
        out.put(b"]");
    }
    (!out.overflowed()).then_some(priced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenises() {
        // (datagram, key, assets)
        let cases: &[(&[u8], Option<&[u8]>, &[&[u8]])] = &[
            (b"BTC", None, &[b"BTC"]),
            (b"BTC ETH", None, &[b"BTC", b"ETH"]),
            (b"  btc,eth\n", None, &[b"btc", b"eth"]),
            (b"key=abc BTC", Some(b"abc"), &[b"BTC"]),
            (b"BTC\0\0\0\0\0\0", None, &[b"BTC"]),
            (b"BTC key=abc", None, &[b"BTC", b"key=abc"]),
            (
                b"BTC ETH                                   ",
                None,
                &[b"BTC", b"ETH"],
            ),
            (b"BTC                \0\0\0\0\0\0\0\0", None, &[b"BTC"]),
            (b"BTCBTCBTCBTCBTCBT", None, &[b"BTCBTCBTCBTCBTCBT"]),
        ];
        for (datagram, key, assets) in cases {
            let request = parse(datagram).unwrap();
            assert_eq!(request.key, *key);
            assert_eq!(&request.assets[..request.count], *assets);
        }
        assert!(parse(b"").is_none());
        assert!(parse(b"   ,, ").is_none());
        assert!(parse(b"key=abc").is_none());
        assert!(parse(b"BTC\x01").is_none(), "control byte");
        assert!(
            parse(b"BTC \x01                       ").is_none(),
            "inside the padding"
        );
        assert!(parse(b"\xa7\xbe\x08").is_none(), "binary");
        let many = "A ".repeat(33);
        assert!(parse(many.as_bytes()).unwrap().too_many);
    }
}
