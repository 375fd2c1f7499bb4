//! One table, four formats: every report describes its columns and hands over its rows one at a
//! time; this writes them as JSON, CSV, an aligned text table or an HTML page. Rows live on the
//! stack of the report's loop, so rendering allocates nothing beyond the output's growth.

use beast_core::Decimal;

use super::Format;
use super::chart::Chart;
use crate::price::Freshness;
use crate::protocol::sink::Sink;

/// How a column's values are laid out in text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Column {
    pub name: &'static str,
    /// Text width (at least the name's).
    pub width: usize,
    pub align: Align,
}

pub(crate) const fn left(name: &'static str, width: usize) -> Column {
    Column {
        name,
        width,
        align: Align::Left,
    }
}

pub(crate) const fn right(name: &'static str, width: usize) -> Column {
    Column {
        name,
        width,
        align: Align::Right,
    }
}

/// One value. `None`s are JSON `null`, empty in CSV, `-` in text and HTML.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Cell<'a> {
    Text(&'a str),
    Price(Option<Decimal>),
    Int(Option<i64>),
    Flag(bool),
    /// No value of any kind (a text column with nothing to say).
    Missing,
}

impl Cell<'_> {
    pub fn uint(value: u64) -> Cell<'static> {
        Cell::Int(i64::try_from(value).ok())
    }
}

/// What a report gives the renderer.
pub(crate) trait Report {
    /// `snapshot`, `ohlc`, ...
    fn name(&self) -> &'static str;
    /// A line saying what the rows are (`ohlc BTC 1m served`).
    fn title(&self, out: &mut dyn Sink);
    /// Facts about the whole report, written as JSON members and above the text table.
    fn meta(&self, emit: &mut dyn FnMut(&'static str, Cell<'_>));
    fn columns(&self) -> &'static [Column];
    /// Calls `emit` once per row, in order; may be called more than once.
    fn rows(&self, emit: &mut dyn FnMut(&[Cell<'_>]));
    /// The chart the HTML page shows above the table.
    fn chart(&self) -> Chart;
}

/// `simulated: true` among a report's facts when its prices are made up.
pub(crate) fn provenance(fresh: Freshness, emit: &mut dyn FnMut(&'static str, Cell<'_>)) {
    if fresh.simulated {
        emit("simulated", Cell::Flag(true));
    }
}

pub(crate) fn render(report: &dyn Report, format: Format, out: &mut impl Sink) {
    match format {
        Format::Json => json(report, out),
        Format::Csv => csv(report, out),
        Format::Txt => txt(report, out),
        Format::Html => html(report, out),
    }
}

fn json(report: &dyn Report, out: &mut impl Sink) {
    out.put(b"{\"report\":\"");
    out.put(report.name().as_bytes());
    out.put(b"\"");
    report.meta(&mut |name, cell| {
        out.put(b",\"");
        out.put(name.as_bytes());
        out.put(b"\":");
        json_cell(out, cell);
    });
    out.put(b",\"rows\":[");
    let columns = report.columns();
    let mut first = true;
    report.rows(&mut |cells| {
        if !first {
            out.put(b",");
        }
        first = false;
        out.put(b"{");
        for (i, (column, cell)) in columns.iter().zip(cells).enumerate() {
            if i > 0 {
                out.put(b",");
            }
            out.put(b"\"");
            out.put(column.name.as_bytes());
            out.put(b"\":");
            json_cell(out, *cell);
        }
        out.put(b"}");
    });
    out.put(b"]}");
}

fn json_cell(out: &mut impl Sink, cell: Cell<'_>) {
    match cell {
        // Prices are strings, as everywhere in the API: exact decimals.
        Cell::Text(text) => {
            out.put(b"\"");
            json_escape(out, text);
            out.put(b"\"");
        }
        Cell::Price(Some(price)) => {
            out.put(b"\"");
            out.put(price.format().as_bytes());
            out.put(b"\"");
        }
        Cell::Int(Some(value)) => put_i64(out, value),
        Cell::Price(None) | Cell::Int(None) | Cell::Missing => out.put(b"null"),
        Cell::Flag(flag) => out.put(if flag { b"true" } else { b"false" }),
    }
}

fn json_escape(out: &mut impl Sink, text: &str) {
    for chunk in text.split_inclusive(['"', '\\']) {
        match chunk.strip_suffix(['"', '\\']) {
            Some(head) => {
                out.put(head.as_bytes());
                out.put(b"\\");
                out.put(chunk.get(head.len()..).unwrap_or_default().as_bytes());
            }
            None => out.put(chunk.as_bytes()),
        }
    }
}

fn csv(report: &dyn Report, out: &mut impl Sink) {
    let columns = report.columns();
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        out.put(column.name.as_bytes());
    }
    out.put(b"\r\n");
    report.rows(&mut |cells| {
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.put(b",");
            }
            match *cell {
                Cell::Text(text) if text.contains([',', '"', '\r', '\n']) => {
                    out.put(b"\"");
                    for part in text.split_inclusive('"') {
                        out.put(part.as_bytes());
                        if part.ends_with('"') {
                            out.put(b"\"");
                        }
                    }
                    out.put(b"\"");
                }
                Cell::Price(None) | Cell::Int(None) | Cell::Missing => {}
                other => plain_cell(out, other),
            }
        }
        out.put(b"\r\n");
    });
}

/// A value as text (CSV, text tables, HTML cells).
fn plain_cell(out: &mut impl Sink, cell: Cell<'_>) {
    match cell {
        Cell::Text(text) => out.put(text.as_bytes()),
        Cell::Price(Some(price)) => out.put(price.format().as_bytes()),
        Cell::Int(Some(value)) => put_i64(out, value),
        Cell::Price(None) | Cell::Int(None) | Cell::Missing => out.put(b"-"),
        Cell::Flag(flag) => out.put(if flag { b"true" } else { b"false" }),
    }
}

/// Counts the bytes a value takes as text, to pad it.
struct Measure(usize);

impl Sink for Measure {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

fn padded(out: &mut impl Sink, cell: Cell<'_>, column: &Column, last: bool) {
    let mut measure = Measure(0);
    plain_cell(&mut measure, cell);
    let width = column.width.max(column.name.len());
    let pad = width.saturating_sub(measure.0);
    if column.align == Align::Right {
        spaces(out, pad);
    }
    plain_cell(out, cell);
    if column.align == Align::Left && !last {
        spaces(out, pad);
    }
}

fn spaces(out: &mut impl Sink, mut n: usize) {
    const SPACES: &[u8; 32] = b"                                ";
    while n > 0 {
        let take = n.min(SPACES.len());
        out.put(SPACES.get(..take).unwrap_or_default());
        n -= take;
    }
}

fn txt(report: &dyn Report, out: &mut impl Sink) {
    report.title(out);
    report.meta(&mut |name, cell| {
        out.put(b"  ");
        out.put(name.as_bytes());
        out.put(b"=");
        plain_cell(out, cell);
    });
    out.put(b"\n");
    let columns = report.columns();
    let count = columns.len();
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.put(b"  ");
        }
        padded(out, Cell::Text(column.name), column, i + 1 == count);
    }
    out.put(b"\n");
    report.rows(&mut |cells| {
        for (i, (column, cell)) in columns.iter().zip(cells).enumerate() {
            if i > 0 {
                out.put(b"  ");
            }
            padded(out, *cell, column, i + 1 == count);
        }
        out.put(b"\n");
    });
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}table{border-collapse:collapse}\
th,td{padding:2px 8px;border-bottom:1px solid #ddd;white-space:nowrap}\
td.r{text-align:right;font-variant-numeric:tabular-nums}th{background:#f4f4f4}\
.meta{color:#555}svg{display:block;margin:1em 0;background:#fcfcfc;border:1px solid #eee}";

fn html(report: &dyn Report, out: &mut impl Sink) {
    out.put(b"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    report.title(&mut Escaped(out));
    out.put(b"</title><style>");
    out.put(STYLE.as_bytes());
    out.put(b"</style></head><body><h1>");
    report.title(&mut Escaped(out));
    out.put(b"</h1><p class=\"meta\">");
    let mut first = true;
    report.meta(&mut |name, cell| {
        if !first {
            out.put(b" &middot; ");
        }
        first = false;
        out.put(name.as_bytes());
        out.put(b": ");
        plain_cell(&mut Escaped(out), cell);
    });
    out.put(b"</p>");
    report.chart().write(report, out);
    out.put(b"<table><thead><tr>");
    let columns = report.columns();
    for column in columns {
        out.put(b"<th>");
        out.put(column.name.as_bytes());
        out.put(b"</th>");
    }
    out.put(b"</tr></thead><tbody>");
    report.rows(&mut |cells| {
        out.put(b"<tr>");
        for (column, cell) in columns.iter().zip(cells) {
            out.put(if column.align == Align::Right {
                &b"<td class=\"r\">"[..]
            } else {
                b"<td>"
            });
            plain_cell(&mut Escaped(out), *cell);
            out.put(b"</td>");
        }
        out.put(b"</tr>");
    });
    out.put(b"</tbody></table></body></html>\n");
}

/// Escapes what it is given for HTML text.
pub(crate) struct Escaped<'a, S: Sink + ?Sized>(pub &'a mut S);

impl<S: Sink + ?Sized> Sink for Escaped<'_, S> {
    fn put(&mut self, bytes: &[u8]) {
        let mut start = 0;
        for (i, byte) in bytes.iter().enumerate() {
            let entity: &[u8] = match byte {
                b'<' => b"&lt;",
                b'>' => b"&gt;",
                b'&' => b"&amp;",
                b'"' => b"&quot;",
                _ => continue,
            };
            self.0.put(bytes.get(start..i).unwrap_or_default());
            self.0.put(entity);
            start = i + 1;
        }
        self.0.put(bytes.get(start..).unwrap_or_default());
    }
}

pub(crate) fn put_i64(out: &mut (impl Sink + ?Sized), value: i64) {
    if value < 0 {
        out.put(b"-");
    }
    out.put_u64(value.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two;

    impl Report for Two {
        fn name(&self) -> &'static str {
            "two"
        }
        fn title(&self, out: &mut dyn Sink) {
            out.put(b"two <rows>");
        }
        fn meta(&self, emit: &mut dyn FnMut(&'static str, Cell<'_>)) {
            emit("asset", Cell::Text("BTC"));
        }
        fn columns(&self) -> &'static [Column] {
            const COLUMNS: [Column; 3] = [left("name", 6), right("price", 8), right("n", 3)];
            &COLUMNS
        }
        fn rows(&self, emit: &mut dyn FnMut(&[Cell<'_>])) {
            emit(&[
                Cell::Text("a,\"b\""),
                Cell::Price(Decimal::parse("1.50").ok()),
                Cell::Int(Some(-3)),
            ]);
            emit(&[Cell::Text("gap"), Cell::Price(None), Cell::Int(None)]);
        }
        fn chart(&self) -> Chart {
            Chart::Bars { label: 0, value: 2 }
        }
    }

    fn rendered(format: Format) -> String {
        let mut out = Vec::new();
        render(&Two, format, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_format_says_the_same() {
        let cases = [
            (
                Format::Json,
                r#"{"report":"two","asset":"BTC","rows":[{"name":"a,\"b\"","price":"1.50","n":-3},{"name":"gap","price":null,"n":null}]}"#,
            ),
            (
                Format::Csv,
                "name,price,n\r\n\"a,\"\"b\"\"\",1.50,-3\r\ngap,,\r\n",
            ),
            (
                Format::Txt,
                "two <rows>  asset=BTC\nname       price    n\na,\"b\"       1.50   -3\ngap            -    -\n",
            ),
        ];
        for (format, expected) in cases {
            assert_eq!(rendered(format), expected, "{format:?}");
        }
        let html = rendered(Format::Html);
        assert!(html.contains("<title>two &lt;rows&gt;</title>"), "{html}");
        assert!(
            html.contains("<td>a,&quot;b&quot;</td><td class=\"r\">1.50</td>"),
            "{html}"
        );
        assert!(!html.contains("http"), "no external resource: {html}");
    }
}
