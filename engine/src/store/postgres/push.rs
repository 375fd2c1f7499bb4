//! Push subscriptions, their delivery log and replay requests in PostgreSQL.

use super::{PgStore, timed};
use crate::store::{DeliveryRow, Replay, StoreError, SubscriptionRow};

const BUMP: &str = "UPDATE store_versions SET version = version + 1 WHERE name = 'subscriptions'";

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn small(v: Option<i64>) -> Option<u32> {
    v.and_then(|v| u32::try_from(v).ok())
}

const COLUMNS: &str = "id, owner_key_id, target, assets, every_s, move_bps, min_gap_ms, format, secret, previous_secret, previous_until_ms, state, reason, created_ms, updated_ms, seq_floor";

fn subscription(r: &tokio_postgres::Row) -> SubscriptionRow {
    SubscriptionRow {
        id: u(r.get(0)),
        owner: u(r.get(1)),
        target: r.get(2),
        assets: r.get(3),
        every_s: small(r.get(4)),
        move_bps: small(r.get(5)),
        min_gap_ms: u(r.get(6)),
        format: r.get(7),
        secret: r.get(8),
        previous_secret: r.get(9),
        previous_until_ms: u(r.get(10)),
        state: r.get(11),
        reason: r.get(12),
        created_ms: u(r.get(13)),
        updated_ms: u(r.get(14)),
        seq_floor: u(r.get(15)),
    }
}

impl PgStore {
    pub(crate) async fn create_subscription(
        &mut self,
        row: &SubscriptionRow,
    ) -> Result<u64, StoreError> {
        let tx = timed(self.client.transaction()).await?;
        let created = timed(tx.query_one(
            "INSERT INTO subscriptions (owner_key_id, target, assets, every_s, move_bps, min_gap_ms, format, secret, previous_secret, previous_until_ms, state, reason, created_ms, updated_ms, seq_floor)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
            &[
                &i(row.owner), &row.target, &row.assets, &row.every_s.map(i64::from),
                &row.move_bps.map(i64::from), &i(row.min_gap_ms), &row.format, &row.secret,
                &row.previous_secret, &i(row.previous_until_ms), &row.state, &row.reason,
                &i(row.created_ms), &i(row.updated_ms), &i(row.seq_floor),
            ],
        ))
        .await?;
        timed(tx.execute(BUMP, &[])).await?;
        timed(tx.commit()).await?;
        Ok(u(created.get(0)))
    }

    pub(crate) async fn subscriptions(
        &mut self,
        owner: Option<u64>,
    ) -> Result<Vec<SubscriptionRow>, StoreError> {
        let rows = timed(self.client.query(
            &format!(
                "SELECT {COLUMNS} FROM subscriptions WHERE ($1::BIGINT IS NULL OR owner_key_id = $1) ORDER BY id"
            ),
            &[&owner.map(i)],
        ))
        .await?;
        Ok(rows.iter().map(subscription).collect())
    }

    pub(crate) async fn update_subscription(
        &mut self,
        row: &SubscriptionRow,
    ) -> Result<bool, StoreError> {
        let tx = timed(self.client.transaction()).await?;
        let changed = timed(tx.execute(
            "UPDATE subscriptions SET target = $2, assets = $3, every_s = $4, move_bps = $5, min_gap_ms = $6,
                format = $7, secret = $8, previous_secret = $9, previous_until_ms = $10, state = $11,
                reason = $12, updated_ms = $13
             WHERE id = $1",
            &[
                &i(row.id), &row.target, &row.assets, &row.every_s.map(i64::from),
                &row.move_bps.map(i64::from), &i(row.min_gap_ms), &row.format, &row.secret,
                &row.previous_secret, &i(row.previous_until_ms), &row.state, &row.reason,
                &i(row.updated_ms),
            ],
        ))
        .await?;
        if changed > 0 {
            timed(tx.execute(BUMP, &[])).await?;
        }
        timed(tx.commit()).await?;
        Ok(changed > 0)
    }

    pub(crate) async fn disable_subscription(
        &mut self,
        id: u64,
        reason: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let tx = timed(self.client.transaction()).await?;
        let changed = timed(tx.execute(
            "UPDATE subscriptions SET state = 'disabled', reason = $2, updated_ms = $3
             WHERE id = $1 AND state = 'active'",
            &[&i(id), &reason, &i(now_ms)],
        ))
        .await?;
        if changed > 0 {
            timed(tx.execute(BUMP, &[])).await?;
        }
        timed(tx.commit()).await?;
        Ok(changed > 0)
    }

    pub(crate) async fn delete_subscription(&mut self, id: u64) -> Result<bool, StoreError> {
        let tx = timed(self.client.transaction()).await?;
        let changed =
            timed(tx.execute("DELETE FROM subscriptions WHERE id = $1", &[&i(id)])).await?;
        if changed > 0 {
            timed(tx.execute(BUMP, &[])).await?;
        }
        timed(tx.commit()).await?;
        Ok(changed > 0)
    }

    pub(crate) async fn reserve_seqs(&mut self, floors: &[(u64, u64)]) -> Result<(), StoreError> {
        let (ids, values): (Vec<i64>, Vec<i64>) =
            floors.iter().map(|(id, floor)| (i(*id), i(*floor))).unzip();
        timed(self.client.execute(
            "UPDATE subscriptions AS s SET seq_floor = GREATEST(s.seq_floor, f.floor)
             FROM unnest($1::BIGINT[], $2::BIGINT[]) AS f(id, floor) WHERE s.id = f.id",
            &[&ids, &values],
        ))
        .await?;
        Ok(())
    }

    pub(crate) async fn append_deliveries(
        &mut self,
        rows: &[DeliveryRow],
    ) -> Result<(), StoreError> {
        let tx = timed(self.client.transaction()).await?;
        let insert = timed(tx.prepare(
            "INSERT INTO push_deliveries (subscription_id, protocol, seq, seq_last, count, attempt, ts_ms, outcome, status, error, latency_ms, payload)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        ))
        .await?;
        for r in rows {
            timed(tx.execute(
                &insert,
                &[
                    &i(r.subscription_id),
                    &r.protocol,
                    &i(r.seq),
                    &i(r.seq_last),
                    &i(r.count),
                    &i64::from(r.attempt),
                    &i(r.ts_ms),
                    &r.outcome,
                    &r.status.map(i64::from),
                    &r.error,
                    &i(r.latency_ms),
                    &r.payload,
                ],
            ))
            .await?;
        }
        timed(tx.commit()).await
    }

    pub(crate) async fn deliveries(
        &mut self,
        subscription_id: u64,
        since_ms: u64,
        limit: u64,
        gave_up_only: bool,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = timed(self.client.query(
            "SELECT subscription_id, protocol, seq, seq_last, count, attempt, ts_ms, outcome, status, error, latency_ms, payload
             FROM push_deliveries
             WHERE subscription_id = $1 AND ts_ms >= $2 AND (NOT $4 OR (outcome = 'gave_up' AND payload IS NOT NULL))
             ORDER BY id LIMIT $3",
            &[&i(subscription_id), &i(since_ms), &i(limit), &gave_up_only],
        ))
        .await?;
        Ok(rows
            .iter()
            .map(|r| DeliveryRow {
                subscription_id: u(r.get(0)),
                protocol: r.get(1),
                seq: u(r.get(2)),
                seq_last: u(r.get(3)),
                count: u(r.get(4)),
                attempt: small(r.get(5)).unwrap_or(0),
                ts_ms: u(r.get(6)),
                outcome: r.get(7),
                status: r
                    .get::<_, Option<i64>>(8)
                    .and_then(|s| u16::try_from(s).ok()),
                error: r.get(9),
                latency_ms: u(r.get(10)),
                payload: r.get(11),
            })
            .collect())
    }

    pub(crate) async fn request_replay(
        &mut self,
        subscription_id: u64,
        since_ms: u64,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let tx = timed(self.client.transaction()).await?;
        let row = timed(tx.query_one(
            "INSERT INTO push_replays (subscription_id, since_ms, requested_ms) VALUES ($1, $2, $3) RETURNING id",
            &[&i(subscription_id), &i(since_ms), &i(now_ms)],
        ))
        .await?;
        timed(tx.execute(BUMP, &[])).await?;
        timed(tx.commit()).await?;
        Ok(u(row.get(0)))
    }

    pub(crate) async fn pending_replays(&mut self) -> Result<Vec<Replay>, StoreError> {
        let rows = timed(self.client.query(
            "SELECT id, subscription_id, since_ms FROM push_replays WHERE done_ms IS NULL ORDER BY id",
            &[],
        ))
        .await?;
        Ok(rows
            .iter()
            .map(|r| Replay {
                id: u(r.get(0)),
                subscription_id: u(r.get(1)),
                since_ms: u(r.get(2)),
            })
            .collect())
    }

    pub(crate) async fn finish_replay(&mut self, id: u64, now_ms: u64) -> Result<(), StoreError> {
        timed(self.client.execute(
            "UPDATE push_replays SET done_ms = $2 WHERE id = $1",
            &[&i(id), &i(now_ms)],
        ))
        .await?;
        Ok(())
    }

    pub(crate) async fn delete_deliveries_before(
        &mut self,
        before_ms: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let deleted = timed(self.client.execute(
            "DELETE FROM push_deliveries WHERE id IN
                (SELECT id FROM push_deliveries WHERE ts_ms < $1 LIMIT $2)",
            &[&i(before_ms), &i(limit)],
        ))
        .await?;
        timed(self.client.execute(
            "DELETE FROM push_replays WHERE done_ms IS NOT NULL AND done_ms < $1",
            &[&i(before_ms)],
        ))
        .await?;
        Ok(deleted)
    }
}
