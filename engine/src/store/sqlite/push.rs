//! Push subscriptions, their delivery log and replay requests in the embedded store.

use rusqlite::params;

use super::{SqliteStore, failed, write};
use crate::store::{DeliveryRow, Replay, StoreError, SubscriptionRow};

const BUMP: &str = "UPDATE store_versions SET version = version + 1 WHERE name = 'subscriptions'";

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

const COLUMNS: &str = "id, owner_key_id, target, assets, every_s, move_bps, min_gap_ms, format, secret, previous_secret, previous_until_ms, state, reason, created_ms, updated_ms, seq_floor";

fn subscription(r: &rusqlite::Row<'_>) -> rusqlite::Result<SubscriptionRow> {
    Ok(SubscriptionRow {
        id: u(r.get(0)?),
        owner: u(r.get(1)?),
        target: r.get(2)?,
        assets: r.get(3)?,
        every_s: r.get(4)?,
        move_bps: r.get(5)?,
        min_gap_ms: u(r.get(6)?),
        format: r.get(7)?,
        secret: r.get(8)?,
        previous_secret: r.get(9)?,
        previous_until_ms: u(r.get(10)?),
        state: r.get(11)?,
        reason: r.get(12)?,
        created_ms: u(r.get(13)?),
        updated_ms: u(r.get(14)?),
        seq_floor: u(r.get(15)?),
    })
}

fn delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        subscription_id: u(r.get(0)?),
        protocol: r.get(1)?,
        seq: u(r.get(2)?),
        seq_last: u(r.get(3)?),
        count: u(r.get(4)?),
        attempt: r.get(5)?,
        ts_ms: u(r.get(6)?),
        outcome: r.get(7)?,
        status: r.get(8)?,
        error: r.get(9)?,
        latency_ms: u(r.get(10)?),
        payload: r.get(11)?,
    })
}

impl SqliteStore {
    pub(crate) fn create_subscription(&mut self, row: &SubscriptionRow) -> Result<u64, StoreError> {
        let err = failed(&self.path);
        let tx = write(&mut self.conn).map_err(err)?;
        tx.execute(
            "INSERT INTO subscriptions (owner_key_id, target, assets, every_s, move_bps, min_gap_ms, format, secret, previous_secret, previous_until_ms, state, reason, created_ms, updated_ms, seq_floor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                i(row.owner), row.target, row.assets, row.every_s, row.move_bps, i(row.min_gap_ms),
                row.format, row.secret, row.previous_secret, i(row.previous_until_ms), row.state,
                row.reason, i(row.created_ms), i(row.updated_ms), i(row.seq_floor)
            ],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        tx.execute(BUMP, []).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(u(id))
    }

    pub(crate) fn subscriptions(
        &mut self,
        owner: Option<u64>,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        let err = failed(&self.path);
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM subscriptions WHERE (?1 IS NULL OR owner_key_id = ?1) ORDER BY id"
            ))
            .map_err(err)?;
        let rows = statement
            .query_map([owner.map(i)], subscription)
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    pub(crate) fn update_subscription(
        &mut self,
        row: &SubscriptionRow,
    ) -> Result<bool, StoreError> {
        let err = failed(&self.path);
        let tx = write(&mut self.conn).map_err(err)?;
        let changed = tx
            .execute(
                "UPDATE subscriptions SET target = ?2, assets = ?3, every_s = ?4, move_bps = ?5, min_gap_ms = ?6,
                    format = ?7, secret = ?8, previous_secret = ?9, previous_until_ms = ?10, state = ?11,
                    reason = ?12, updated_ms = ?13
                 WHERE id = ?1",
                params![
                    i(row.id), row.target, row.assets, row.every_s, row.move_bps, i(row.min_gap_ms),
                    row.format, row.secret, row.previous_secret, i(row.previous_until_ms), row.state,
                    row.reason, i(row.updated_ms)
                ],
            )
            .map_err(err)?;
        if changed > 0 {
            tx.execute(BUMP, []).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(changed > 0)
    }

    pub(crate) fn disable_subscription(
        &mut self,
        id: u64,
        reason: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let err = failed(&self.path);
        let tx = write(&mut self.conn).map_err(err)?;
        let changed = tx
            .execute(
                "UPDATE subscriptions SET state = 'disabled', reason = ?2, updated_ms = ?3
                 WHERE id = ?1 AND state = 'active'",
                params![i(id), reason, i(now_ms)],
            )
            .map_err(err)?;
        if changed > 0 {
            tx.execute(BUMP, []).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(changed > 0)
    }

    pub(crate) fn delete_subscription(&mut self, id: u64) -> Result<bool, StoreError> {
        let err = failed(&self.path);
        let tx = write(&mut self.conn).map_err(err)?;
        let changed = tx
            .execute("DELETE FROM subscriptions WHERE id = ?1", [i(id)])
            .map_err(err)?;
        if changed > 0 {
            tx.execute(BUMP, []).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(changed > 0)
    }

    pub(crate) fn reserve_seqs(&mut self, floors: &[(u64, u64)]) -> Result<(), StoreError> {
        let err = failed(&self.path);
        let tx = write(&mut self.conn).map_err(err)?;
        {
            let mut raise = tx
                .prepare_cached(
                    "UPDATE subscriptions SET seq_floor = MAX(seq_floor, ?2) WHERE id = ?1",
                )
                .map_err(err)?;
            for (id, floor) in floors {
                raise.execute(params![i(*id), i(*floor)]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    pub(crate) fn append_deliveries(&mut self, rows: &[DeliveryRow]) -> Result<(), StoreError> {
        let err = failed(&self.path);
        let tx = write(&mut self.conn).map_err(err)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO push_deliveries (subscription_id, protocol, seq, seq_last, count, attempt, ts_ms, outcome, status, error, latency_ms, payload)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(err)?;
            for r in rows {
                insert
                    .execute(params![
                        i(r.subscription_id),
                        r.protocol,
                        i(r.seq),
                        i(r.seq_last),
                        i(r.count),
                        r.attempt,
                        i(r.ts_ms),
                        r.outcome,
                        r.status,
                        r.error,
                        i(r.latency_ms),
                        r.payload
                    ])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    pub(crate) fn deliveries(
        &mut self,
        subscription_id: u64,
        since_ms: u64,
        limit: u64,
        gave_up_only: bool,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let err = failed(&self.path);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT subscription_id, protocol, seq, seq_last, count, attempt, ts_ms, outcome, status, error, latency_ms, payload
                 FROM push_deliveries
                 WHERE subscription_id = ?1 AND ts_ms >= ?2 AND (?4 = 0 OR (outcome = 'gave_up' AND payload IS NOT NULL))
                 ORDER BY id LIMIT ?3",
            )
            .map_err(err)?;
        let rows = statement
            .query_map(
                params![
                    i(subscription_id),
                    i(since_ms),
                    i(limit),
                    i64::from(gave_up_only)
                ],
                delivery,
            )
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    pub(crate) fn request_replay(
        &mut self,
        subscription_id: u64,
        since_ms: u64,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let err = failed(&self.path);
        let tx = write(&mut self.conn).map_err(err)?;
        tx.execute(
            "INSERT INTO push_replays (subscription_id, since_ms, requested_ms) VALUES (?1, ?2, ?3)",
            params![i(subscription_id), i(since_ms), i(now_ms)],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        tx.execute(BUMP, []).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(u(id))
    }

    pub(crate) fn pending_replays(&mut self) -> Result<Vec<Replay>, StoreError> {
        let err = failed(&self.path);
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, subscription_id, since_ms FROM push_replays WHERE done_ms IS NULL ORDER BY id",
            )
            .map_err(err)?;
        let rows = statement
            .query_map([], |r| {
                Ok(Replay {
                    id: u(r.get(0)?),
                    subscription_id: u(r.get(1)?),
                    since_ms: u(r.get(2)?),
                })
            })
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    pub(crate) fn finish_replay(&mut self, id: u64, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE push_replays SET done_ms = ?2 WHERE id = ?1",
                params![i(id), i(now_ms)],
            )
            .map(|_| ())
            .map_err(failed(&self.path))
    }

    pub(crate) fn delete_deliveries_before(
        &mut self,
        before_ms: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let err = failed(&self.path);
        let deleted = self
            .conn
            .execute(
                "DELETE FROM push_deliveries WHERE id IN
                    (SELECT id FROM push_deliveries WHERE ts_ms < ?1 LIMIT ?2)",
                params![i(before_ms), i(limit)],
            )
            .map_err(err)?;
        self.conn
            .execute(
                "DELETE FROM push_replays WHERE done_ms IS NOT NULL AND done_ms < ?1",
                [i(before_ms)],
            )
            .map_err(err)?;
        Ok(deleted as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subscription_id: u64, ts_ms: u64, outcome: &str) -> DeliveryRow {
        DeliveryRow {
            subscription_id,
            protocol: "https".into(),
            seq: ts_ms,
            seq_last: ts_ms,
            count: 1,
            attempt: 1,
            ts_ms,
            outcome: outcome.into(),
            status: Some(503),
            error: String::new(),
            latency_ms: 1,
            payload: (outcome == "gave_up").then(|| "{}".to_string()),
        }
    }

    #[test]
    fn the_log_keeps_what_retention_allows_and_replays_what_was_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(dir.path()).unwrap();
        let rows: Vec<DeliveryRow> = (0..25)
            .map(|i| row(7, 1_000 * i, if i % 5 == 0 { "gave_up" } else { "failed" }))
            .collect();
        store.append_deliveries(&rows).unwrap();
        assert_eq!(store.deliveries(7, 0, 100, false).unwrap(), rows);
        let replayable = store.deliveries(7, 10_000, 100, true).unwrap();
        assert_eq!(
            replayable.iter().map(|r| r.ts_ms).collect::<Vec<_>>(),
            [10_000, 15_000, 20_000]
        );
        // Retention in small batches: older than 12 s goes, 12 s and later stay.
        assert_eq!(store.delete_deliveries_before(12_000, 5).unwrap(), 5);
        assert_eq!(store.delete_deliveries_before(12_000, 5).unwrap(), 5);
        assert_eq!(store.delete_deliveries_before(12_000, 5).unwrap(), 2);
        assert_eq!(store.delete_deliveries_before(12_000, 5).unwrap(), 0);
        let left = store.deliveries(7, 0, 100, false).unwrap();
        assert_eq!(left.len(), 13);
        assert!(left.iter().all(|r| r.ts_ms >= 12_000));
        // A replay request is pending until finished.
        let id = store.request_replay(7, 0, 30_000).unwrap();
        assert_eq!(store.pending_replays().unwrap().len(), 1);
        store.finish_replay(id, 31_000).unwrap();
        assert!(store.pending_replays().unwrap().is_empty());
    }
}
