//! REST fallback: `GET /market/products?product_ids=BTC-USD&product_ids=ETH-USD`.
//!
//! ```json
//! {"products":[{"product_id":"BTC-USD","price":"97012.34","price_percentage_change_24h":"1.03","volume_24h":"8123.4","base_currency_id":"BTC","quote_currency_id":"USD","status":"online"}],"num_products":1}
//! ```
//!
//! No exchange time: the receive time stands in.

use crate::exchange::{ParseError, Update, field};
use crate::json::{self, Value};

pub fn parse(
    body: &str,
    received_ms: u64,
    out: &mut dyn FnMut(Update),
) -> Result<usize, ParseError> {
    let root = json::parse(body)?
        .as_object()
        .ok_or(ParseError::WrongType("body"))?;
    let mut count = 0;
    for product in field::array(&root, "products")?.iter() {
        let product = product
            .as_object()
            .ok_or(ParseError::WrongType("products"))?;
        // A product that has never traded has an empty price.
        if product.get("price").and_then(Value::as_str) == Some("") {
            continue;
        }
        let asset = field::base(field::string(&product, "product_id")?, '-', "product_id")?;
        let price = field::price(field::required(&product, "price")?, "price")?;
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
    fn reads_products() {
        let body = r#"{"products":[{"product_id":"BTC-USD","price":"97012.34","status":"online"},{"product_id":"NEW-USD","price":""},{"product_id":"ETH-USD","price":"3512.50"}],"num_products":3}"#;
        let mut got = Vec::new();
        assert_eq!(
            parse(body, 5, &mut |u| got
                .push(format!("{} {} {}", u.asset, u.price, u.exchange_ms))),
            Ok(2)
        );
        assert_eq!(got, ["BTC 97012.34 5", "ETH 3512.50 5"]);
        assert!(parse(r#"{"error":"NOT_FOUND"}"#, 5, &mut |_| {}).is_err());
    }
}
