//! Candles of the price history in the embedded store.

use rusqlite::params;

use super::{SqliteStore, failed, write};
use crate::store::{CandleRow, StoreError};

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl SqliteStore {
    pub(crate) fn save_candles(&mut self, rows: &[CandleRow]) -> Result<(), StoreError> {
        let err = failed(&self.path);
        let tx = write(&mut self.conn).map_err(err)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO candles (asset, series, interval, open_ms, open, high, low, close, ticks, venues)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(err)?;
            for r in rows {
                insert
                    .execute(params![
                        r.asset,
                        r.series,
                        r.interval,
                        i(r.open_ms),
                        r.open,
                        r.high,
                        r.low,
                        r.close,
                        i(r.ticks),
                        r.venues,
                    ])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    pub(crate) fn load_candles(
        &mut self,
        since: &[(String, u64)],
    ) -> Result<Vec<CandleRow>, StoreError> {
        let err = failed(&self.path);
        let mut select = self
            .conn
            .prepare_cached(
                "SELECT asset, series, interval, open_ms, open, high, low, close, ticks, venues
                 FROM candles WHERE interval = ?1 AND open_ms >= ?2",
            )
            .map_err(err)?;
        let mut rows = Vec::new();
        for (interval, since_ms) in since {
            let found = select
                .query_map(params![interval, i(*since_ms)], |r| {
                    Ok(CandleRow {
                        asset: r.get(0)?,
                        series: r.get(1)?,
                        interval: r.get(2)?,
                        open_ms: u(r.get(3)?),
                        open: r.get(4)?,
                        high: r.get(5)?,
                        low: r.get(6)?,
                        close: r.get(7)?,
                        ticks: u(r.get(8)?),
                        venues: r.get(9)?,
                    })
                })
                .map_err(err)?;
            for row in found {
                rows.push(row.map_err(err)?);
            }
        }
        Ok(rows)
    }

    pub(crate) fn delete_candles_before(
        &mut self,
        before: &[(String, u64)],
    ) -> Result<u64, StoreError> {
        let err = failed(&self.path);
        let mut deleted = 0;
        for (interval, before_ms) in before {
            deleted += self
                .conn
                .execute(
                    "DELETE FROM candles WHERE interval = ?1 AND open_ms < ?2",
                    params![interval, i(*before_ms)],
                )
                .map_err(err)? as u64;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(interval: &str, open_ms: u64, close: &str) -> CandleRow {
        CandleRow {
            asset: "BTC".into(),
            series: "served".into(),
            interval: interval.into(),
            open_ms,
            open: "1".into(),
            high: "2".into(),
            low: "0.5".into(),
            close: close.into(),
            ticks: 3,
            venues: 1,
        }
    }

    #[test]
    fn candles_are_replaced_by_key_loaded_by_interval_and_expired() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        store
            .save_candles(&[
                row("1m", 60_000, "1.5"),
                row("1m", 120_000, "1.6"),
                row("1h", 0, "1"),
            ])
            .unwrap();
        // Written again once closed: replaced, not added.
        store.save_candles(&[row("1m", 120_000, "1.7")]).unwrap();
        let loaded = store
            .load_candles(&[("1m".into(), 100_000), ("1h".into(), 0)])
            .unwrap();
        assert_eq!(loaded, vec![row("1m", 120_000, "1.7"), row("1h", 0, "1")]);
        assert_eq!(
            store
                .delete_candles_before(&[("1m".into(), 120_000)])
                .unwrap(),
            1
        );
        assert_eq!(store.load_candles(&[("1m".into(), 0)]).unwrap().len(), 1);
    }
}
