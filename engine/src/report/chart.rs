//! Inline SVG for the HTML pages: candles for OHLC rows, signed bars for deviations. Drawn from
//! the report's own rows (one pass for the scale, one to draw), so the chart and the table
//! cannot disagree.

use beast_core::Decimal;

use super::render::{Cell, Report, put_i64};
use crate::protocol::sink::Sink;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 320.0;
const PAD: f64 = 24.0;

/// Which columns a chart is drawn from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Chart {
    /// Open, high, low and close columns.
    Candles([usize; 4]),
    /// A label column and a signed value column (basis points).
    Bars { label: usize, value: usize },
}

fn number(cell: Option<&Cell<'_>>) -> Option<f64> {
    match cell? {
        Cell::Price(Some(price)) => Some(price_f64(price)),
        #[allow(clippy::cast_precision_loss, reason = "a chart coordinate")]
        Cell::Int(Some(value)) => Some(*value as f64),
        _ => None,
    }
}

#[allow(clippy::cast_precision_loss, reason = "a chart coordinate")]
pub(super) fn price_f64(price: &Decimal) -> f64 {
    price.mantissa() as f64 / 10f64.powi(i32::from(price.scale()))
}

/// A coordinate with one decimal.
#[allow(
    clippy::cast_possible_truncation,
    reason = "coordinates are within the drawing"
)]
fn put_coord(out: &mut impl Sink, value: f64) {
    let tenths = (value * 10.0).round() as i64;
    put_i64(out, tenths / 10);
    out.put(b".");
    out.put_u64((tenths % 10).unsigned_abs());
}

impl Chart {
    pub fn write(self, report: &dyn Report, out: &mut impl Sink) {
        match self {
            Chart::Candles(columns) => candles(report, columns, out),
            Chart::Bars { label, value } => bars(report, label, value, out),
        }
    }
}

fn svg_open(out: &mut impl Sink, label: &str) {
    out.put(
        b"<svg width=\"960\" height=\"320\" viewBox=\"0 0 960 320\" role=\"img\" aria-label=\"",
    );
    out.put(label.as_bytes());
    out.put(b"\">");
}

fn candles(report: &dyn Report, [open, high, low, close]: [usize; 4], out: &mut impl Sink) {
    let (mut rows, mut min, mut max) = (0usize, f64::MAX, f64::MIN);
    report.rows(&mut |cells| {
        rows += 1;
        for index in [high, low] {
            if let Some(v) = number(cells.get(index)) {
                min = min.min(v);
                max = max.max(v);
            }
        }
    });
    svg_open(out, "candles");
    if rows > 0 && min <= max {
        #[allow(clippy::cast_precision_loss, reason = "a chart coordinate")]
        let step = (WIDTH - 2.0 * PAD) / rows as f64;
        let span = if max > min { max - min } else { 1.0 };
        let y = |v: f64| PAD + (max - v) / span * (HEIGHT - 2.0 * PAD);
        let mut index = 0usize;
        report.rows(&mut |cells| {
            #[allow(clippy::cast_precision_loss, reason = "a chart coordinate")]
            let x = PAD + (index as f64 + 0.5) * step;
            index += 1;
            let values = [open, high, low, close].map(|i| number(cells.get(i)));
            let [Some(o), Some(h), Some(l), Some(c)] = values else {
                return; // a gap stays a gap
            };
            let colour: &[u8] = if c >= o { b"#1a7f37" } else { b"#cf222e" };
            out.put(b"<line x1=\"");
            put_coord(out, x);
            out.put(b"\" x2=\"");
            put_coord(out, x);
            out.put(b"\" y1=\"");
            put_coord(out, y(h));
            out.put(b"\" y2=\"");
            put_coord(out, y(l));
            out.put(b"\" stroke=\"");
            out.put(colour);
            out.put(b"\"/><rect x=\"");
            put_coord(out, x - step * 0.35);
            out.put(b"\" width=\"");
            put_coord(out, (step * 0.7).max(0.5));
            out.put(b"\" y=\"");
            put_coord(out, y(o.max(c)));
            out.put(b"\" height=\"");
            put_coord(out, (y(o.min(c)) - y(o.max(c))).max(0.5));
            out.put(b"\" fill=\"");
            out.put(colour);
            out.put(b"\"/>");
        });
    }
    out.put(b"</svg>");
}

fn bars(report: &dyn Report, label: usize, value: usize, out: &mut impl Sink) {
    let (mut rows, mut reach) = (0usize, 1.0f64);
    report.rows(&mut |cells| {
        rows += 1;
        if let Some(v) = number(cells.get(value)) {
            reach = reach.max(v.abs());
        }
    });
    svg_open(out, "deviation in basis points");
    let zero = HEIGHT / 2.0;
    out.put(b"<line x1=\"24\" x2=\"936\" y1=\"160\" y2=\"160\" stroke=\"#888\"/>");
    if rows > 0 {
        #[allow(clippy::cast_precision_loss, reason = "a chart coordinate")]
        let step = (WIDTH - 2.0 * PAD) / rows as f64;
        let scale = (HEIGHT / 2.0 - 2.0 * PAD) / reach;
        let mut index = 0usize;
        report.rows(&mut |cells| {
            #[allow(clippy::cast_precision_loss, reason = "a chart coordinate")]
            let x = PAD + index as f64 * step;
            index += 1;
            if let Some(v) = number(cells.get(value)) {
                let top = if v >= 0.0 { zero - v * scale } else { zero };
                out.put(b"<rect x=\"");
                put_coord(out, x + step * 0.15);
                out.put(b"\" width=\"");
                put_coord(out, (step * 0.7).max(0.5));
                out.put(b"\" y=\"");
                put_coord(out, top);
                out.put(b"\" height=\"");
                put_coord(out, (v.abs() * scale).max(0.5));
                out.put(if v >= 0.0 {
                    &b"\" fill=\"#0969da\"/>"[..]
                } else {
                    b"\" fill=\"#bf8700\"/>"
                });
            }
            if let Some(Cell::Text(name)) = cells.get(label) {
                out.put(b"<text x=\"");
                put_coord(out, x + step * 0.5);
                out.put(b"\" y=\"314\" font-size=\"10\" text-anchor=\"middle\">");
                super::render::Escaped(out).put(name.as_bytes());
                out.put(b"</text>");
            }
        });
    }
    out.put(b"</svg>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_have_one_decimal() {
        let cases = [
            (0.0, "0.0"),
            (12.34, "12.3"),
            (12.36, "12.4"),
            (959.99, "960.0"),
        ];
        for (value, text) in cases {
            let mut out = Vec::new();
            put_coord(&mut out, value);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }
}
