//! The outbox table as a delivery ledger: claim, mark sent, schedule a retry, dead-letter.
//!
//! The booking writer writes its notifications as one `outbox_batches` row per transaction;
//! the relay [`expand`]s them into rows of this ledger before handing them over.
//!
//! A row is `pending` until the SMTP server accepted it (`sent`) or it failed for good
//! (`failed`). Claiming sets `claimed_until`, so two deliveries of the same id (a Kafka replay, a
//! re-publish) never send twice at the same time, and a sent row is never claimed again.

use crate::notifications::kind::Notice;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::db::schema::outbox;

/// How long a claim holds before another delivery may try (a crashed sender's claim expires).
pub const CLAIM_SECS: i64 = 60;

/// An outbox row.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = outbox)]
#[serde(rename_all = "camelCase")]
pub struct OutboxRow {
    /// Id.
    pub id: i64,
    /// Notification kind (template).
    pub kind: String,
    /// Recipient user.
    pub user_id: Option<i64>,
    /// Event it is about.
    pub event_id: Option<i64>,
    /// Facts for the template.
    pub payload: serde_json::Value,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// Last failure.
    pub last_error: Option<String>,
    /// Written at.
    pub created_at: DateTime<Utc>,
    /// Last handed to the queue.
    pub published_at: Option<DateTime<Utc>>,
    /// Not to be tried before.
    pub next_attempt_at: DateTime<Utc>,
    /// Accepted by the SMTP server at.
    pub sent_at: Option<DateTime<Utc>>,
}

/// A notification to send, written in the transaction of the decision it reports.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewNotification {
    /// Its kind, as stored ([`Notice::as_str`], or the refund job's).
    pub kind: &'static str,
    /// Recipient.
    pub user_id: Option<i64>,
    /// The event it is about, if any.
    pub event_id: Option<i64>,
    /// Facts for the template.
    pub payload: serde_json::Value,
}

impl NewNotification {
    /// The email `kind` to `user` about `event`.
    pub fn new(kind: Notice, user: i64, event: Option<i64>, payload: serde_json::Value) -> Self {
        Self {
            kind: kind.as_str(),
            user_id: Some(user),
            event_id: event,
            payload,
        }
    }

    /// A refund job for the payment provider (its buyer `user`, the event `event`).
    pub fn refund_job(user: i64, event: i64, payload: serde_json::Value) -> Self {
        Self {
            kind: super::kind::REFUND,
            user_id: Some(user),
            event_id: Some(event),
            payload,
        }
    }
}

/// Writes `rows` (in the caller's transaction); call [`wake`](super::wake) after the commit.
pub async fn enqueue(conn: &mut AsyncPgConnection, rows: &[NewNotification]) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    diesel::insert_into(outbox::table)
        .values(rows)
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims due, pending rows for one delivery attempt each. Rows already sent or failed, not due
/// yet, claimed by another delivery, or unknown are left out.
pub async fn claim(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<Vec<OutboxRow>> {
    let now = Utc::now();
    diesel::update(
        outbox::table
            .filter(outbox::id.eq_any(ids))
            .filter(outbox::status.eq("pending"))
            .filter(outbox::next_attempt_at.le(now))
            .filter(
                outbox::claimed_until
                    .is_null()
                    .or(outbox::claimed_until.lt(now)),
            ),
    )
    .set((
        outbox::attempts.eq(outbox::attempts + 1),
        outbox::claimed_until.eq(now + chrono::Duration::seconds(CLAIM_SECS)),
    ))
    .returning(OutboxRow::as_returning())
    .get_results(conn)
    .await
}

/// The SMTP server accepted these.
pub async fn mark_sent(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::status.eq("sent"),
            outbox::sent_at.eq(Utc::now()),
            outbox::claimed_until.eq(None::<DateTime<Utc>>),
            outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// A transient failure: try again at `next`, through the relay.
pub async fn schedule_retry(
    conn: &mut AsyncPgConnection,
    id: i64,
    next: DateTime<Utc>,
    error: &str,
) -> QueryResult<()> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::next_attempt_at.eq(next),
            outbox::published_at.eq(None::<DateTime<Utc>>),
            outbox::claimed_until.eq(None::<DateTime<Utc>>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// Given up: the row is dead-lettered (listed by the admin API, retryable from there).
pub async fn mark_failed(conn: &mut AsyncPgConnection, id: i64, error: &str) -> QueryResult<()> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq("failed"),
            outbox::claimed_until.eq(None::<DateTime<Utc>>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)
        .await
        .map(drop)
}

/// `status = 'pending'` as a literal: the relay's indexes are partial on it, and a bound
/// parameter would let a generic prepared plan ignore them (and scan the whole outbox).
fn pending() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>("outbox.status = 'pending'")
}

/// Rows [`take_due`] marked published that the queue did not take: due again at once, not
/// after `notify.republish_after_secs`.
pub async fn unpublish(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<usize> {
    diesel::update(
        outbox::table
            .filter(outbox::id.eq_any(ids))
            .filter(pending()),
    )
    .set(outbox::published_at.eq(None::<DateTime<Utc>>))
    .execute(conn)
    .await
}

/// Pending rows due for (re-)publication: never published, or published before `stale`
/// without being sent (a lost queue message). Marks them published. Each half is one range
/// scan of a small partial index.
pub async fn take_due(
    conn: &mut AsyncPgConnection,
    stale: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<i64>> {
    let now = Utc::now();
    let mut ids: Vec<i64> = outbox::table
        .filter(pending())
        .filter(outbox::published_at.is_null())
        .filter(outbox::next_attempt_at.le(now))
        .order(outbox::id.asc())
        .limit(limit)
        .select(outbox::id)
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    let room = limit - ids.len() as i64;
    if room > 0 {
        let lost: Vec<i64> = outbox::table
            .filter(pending())
            .filter(outbox::published_at.lt(stale))
            .filter(outbox::next_attempt_at.le(now))
            .order(outbox::published_at.asc())
            .limit(room)
            .select(outbox::id)
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        ids.extend(lost);
    }
    if !ids.is_empty() {
        diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
            .set(outbox::published_at.eq(now))
            .execute(conn)
            .await?;
    }
    Ok(ids)
}

/// Most `outbox_batches` rows one [`expand`] takes.
const EXPAND_BATCHES: i64 = 4;

/// An outbox row written by [`expand`], published already: (id, recipient).
#[derive(Debug, QueryableByName)]
struct Expanded {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    user_id: Option<i64>,
}

/// Expands the oldest `outbox_batches` rows (the booking writer's notifications, one row per
/// transaction) into `outbox` rows, in order, and deletes them. The rows are written published
/// (the caller hands them over in the same round): one write each instead of an insert and an
/// update. What `outbox`'s foreign keys would do is done here: a notification whose user was
/// deleted is dropped, one whose event was deleted keeps no event. Returns how many batches
/// were taken and the (id, recipient) of the rows written; call it in a transaction. Only
/// batches up to `upto` ([`last_batch`] when a round began) are taken, so a round ends even
/// while the writer keeps committing.
pub async fn expand(
    conn: &mut AsyncPgConnection,
    upto: i64,
) -> QueryResult<(usize, Vec<(i64, Option<i64>)>)> {
    use crate::db::schema::outbox_batches;
    use diesel::sql_types::{Array, BigInt, Timestamptz};
    let batches: Vec<i64> = outbox_batches::table
        .filter(outbox_batches::id.le(upto))
        .order(outbox_batches::id.asc())
        .limit(EXPAND_BATCHES)
        .select(outbox_batches::id)
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    if batches.is_empty() {
        return Ok((0, Vec::new()));
    }
    let rows: Vec<Expanded> = diesel::sql_query(
        "WITH b AS (DELETE FROM outbox_batches WHERE id = ANY($1) \
             RETURNING id, created_at, kinds, user_ids, event_ids, payloads) \
         INSERT INTO outbox (kind, user_id, event_id, payload, created_at, published_at) \
         SELECT x.kind, x.user_id, e.id, x.payload::jsonb, b.created_at, $2 \
         FROM b CROSS JOIN LATERAL UNNEST(b.kinds, b.user_ids, b.event_ids, b.payloads) \
             WITH ORDINALITY AS x(kind, user_id, event_id, payload, n) \
         LEFT JOIN events e ON e.id = x.event_id \
         WHERE x.user_id IS NULL OR EXISTS (SELECT 1 FROM users u WHERE u.id = x.user_id) \
         ORDER BY b.id, x.n \
         RETURNING id, user_id",
    )
    .bind::<Array<BigInt>, _>(&batches)
    // Published by the application's clock, as `take_due` marks rows (the relay's "stale"
    // comparison reads that clock).
    .bind::<Timestamptz, _>(Utc::now())
    .load(conn)
    .await?;
    Ok((
        batches.len(),
        rows.into_iter().map(|r| (r.id, r.user_id)).collect(),
    ))
}

/// The newest batch the writer has committed (0: none waiting) — with `before`, the newest
/// committed before it: the snapshot of a relay with no writer beside it, which leaves the
/// fresher ones to the writer's relay.
pub async fn last_batch(
    conn: &mut AsyncPgConnection,
    before: Option<DateTime<Utc>>,
) -> QueryResult<i64> {
    use crate::db::schema::outbox_batches;
    let mut query = outbox_batches::table
        .select(diesel::dsl::max(outbox_batches::id))
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(outbox_batches::created_at.lt(before));
    }
    let last: Option<i64> = query.first(conn).await?;
    Ok(last.unwrap_or(0))
}

/// Rows of a status, newest first, after `before` (keyset on id).
pub async fn list(
    conn: &mut AsyncPgConnection,
    status: &str,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<OutboxRow>> {
    let mut q = outbox::table
        .filter(outbox::status.eq(status.to_owned()))
        .select(OutboxRow::as_select())
        .order(outbox::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(outbox::id.lt(b));
    }
    q.load(conn).await
}

/// Puts a failed row back in line (admin retry).
pub async fn retry(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<bool> {
    let n = diesel::update(outbox::table.find(id).filter(outbox::status.eq("failed")))
        .set((
            outbox::status.eq("pending"),
            outbox::attempts.eq(0),
            outbox::next_attempt_at.eq(Utc::now()),
            outbox::published_at.eq(None::<DateTime<Utc>>),
            outbox::claimed_until.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}
