//! Candles of the price history in PostgreSQL.

use super::{PgStore, timed};
use crate::store::{CandleRow, StoreError};

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl PgStore {
    pub(crate) async fn save_candles(&mut self, rows: &[CandleRow]) -> Result<(), StoreError> {
        let tx = timed(self.client.transaction()).await?;
        let upsert = timed(tx.prepare(
            "INSERT INTO candles (asset, series, interval, open_ms, open, high, low, close, ticks, venues)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (asset, series, interval, open_ms) DO UPDATE SET
                open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
                close = EXCLUDED.close, ticks = EXCLUDED.ticks, venues = EXCLUDED.venues",
        ))
        .await?;
        for r in rows {
            timed(tx.execute(
                &upsert,
                &[
                    &r.asset,
                    &r.series,
                    &r.interval,
                    &i(r.open_ms),
                    &r.open,
                    &r.high,
                    &r.low,
                    &r.close,
                    &i(r.ticks),
                    &i32::from(r.venues),
                ],
            ))
            .await?;
        }
        timed(tx.commit()).await
    }

    pub(crate) async fn load_candles(
        &mut self,
        since: &[(String, u64)],
    ) -> Result<Vec<CandleRow>, StoreError> {
        let mut rows = Vec::new();
        for (interval, since_ms) in since {
            let found = timed(self.client.query(
                "SELECT asset, series, interval, open_ms, open, high, low, close, ticks, venues
                 FROM candles WHERE interval = $1 AND open_ms >= $2",
                &[interval, &i(*since_ms)],
            ))
            .await?;
            for r in found {
                rows.push(CandleRow {
                    asset: r.get(0),
                    series: r.get(1),
                    interval: r.get(2),
                    open_ms: u(r.get(3)),
                    open: r.get(4),
                    high: r.get(5),
                    low: r.get(6),
                    close: r.get(7),
                    ticks: u(r.get(8)),
                    venues: u8::try_from(r.get::<_, i32>(9)).unwrap_or(0),
                });
            }
        }
        Ok(rows)
    }

    pub(crate) async fn delete_candles_before(
        &mut self,
        before: &[(String, u64)],
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        for (interval, before_ms) in before {
            deleted += timed(self.client.execute(
                "DELETE FROM candles WHERE interval = $1 AND open_ms < $2",
                &[interval, &i(*before_ms)],
            ))
            .await?;
        }
        Ok(deleted)
    }
}
