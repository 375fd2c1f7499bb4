//! The whole-table snapshot, rendered at most every [`REFRESH_MS`] per format on each reactor
//! thread and copied out to every request in between: the one report whose cost grows with the
//! table (every asset, every venue) then costs a copy, so a burst of snapshot requests cannot
//! hold a reactor's turn. The rows say when they were read (`at`).

use std::cell::RefCell;

use super::Format;
use crate::price::Freshness;
use crate::protocol::sink::Sink;

/// How old a rendered snapshot may be when it is served.
pub(crate) const REFRESH_MS: u64 = 100;

#[derive(Default)]
struct Rendered {
    /// When it was rendered (wall clock, ms); 0: never.
    at_ms: u64,
    body: Vec<u8>,
}

thread_local! {
    /// One per reactor (a reactor is a thread), one entry per format.
    static SNAPSHOTS: RefCell<[Rendered; 4]> = RefCell::default();
}

fn slot(format: Format) -> usize {
    match format {
        Format::Json => 0,
        Format::Csv => 1,
        Format::Html => 2,
        Format::Txt => 3,
    }
}

/// Writes the snapshot of every asset in `format` to `out`, rendering it with `render` when
/// the copy this thread holds is older than [`REFRESH_MS`] (or from a clock that went back).
pub(crate) fn snapshot(
    format: Format,
    fresh: Freshness,
    out: &mut impl Sink,
    render: impl FnOnce(&mut Vec<u8>, Freshness),
) {
    SNAPSHOTS.with_borrow_mut(|cache| {
        let Some(entry) = cache.get_mut(slot(format)) else {
            return;
        };
        let age = fresh.now_ms.wrapping_sub(entry.at_ms);
        if entry.at_ms == 0 || age >= REFRESH_MS {
            entry.body.clear();
            render(&mut entry.body, fresh);
            entry.at_ms = fresh.now_ms.max(1);
        }
        out.put_head(&entry.body);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh(now_ms: u64) -> Freshness {
        Freshness {
            now_ms,
            stale_after_ms: 9_000,
            simulated: false,
        }
    }

    #[test]
    fn rendered_once_per_refresh_and_format() {
        let mut renders = 0;
        let mut served = Vec::new();
        for (now, format) in [
            (1_000, Format::Json),
            (1_050, Format::Json),
            (1_050, Format::Csv),
            (1_099, Format::Json),
            (1_100, Format::Json),
            (900, Format::Json),
        ] {
            let mut out = Vec::new();
            snapshot(format, fresh(now), &mut out, |body, f| {
                renders += 1;
                body.extend_from_slice(format!("{format:?}@{}", f.now_ms).as_bytes());
            });
            served.push(String::from_utf8(out).unwrap());
        }
        assert_eq!(
            served,
            [
                "Json@1000",
                "Json@1000",
                "Csv@1050",
                "Json@1000",
                "Json@1100",
                "Json@900"
            ]
        );
        assert_eq!(renders, 4, "a clock that went back renders afresh");
    }
}
