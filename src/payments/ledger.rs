//! The money ledger and payment sessions: queries as functions on a connection.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::schema::{payment_sessions, payment_webhooks, payments};

/// A payment session row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = payment_sessions)]
pub struct SessionRow {
    /// Id.
    pub id: i64,
    /// The booking it pays.
    pub booking_id: i64,
    /// Its event.
    pub event_id: i64,
    /// The buyer.
    pub user_id: i64,
    /// `manual` or `stripe`.
    pub provider: String,
    /// The provider's id (`cs_…`).
    pub external_id: Option<String>,
    /// Where the buyer pays.
    pub url: Option<String>,
    /// Amount asked.
    pub amount: i64,
    /// `open`, `captured` or `applied`.
    pub state: String,
    /// What the writer made of it.
    pub result: Option<String>,
}

/// A new session.
#[derive(Debug, Insertable)]
#[diesel(table_name = payment_sessions)]
pub struct NewSession<'a> {
    /// Booking.
    pub booking_id: i64,
    /// Event.
    pub event_id: i64,
    /// Buyer.
    pub user_id: i64,
    /// Provider.
    pub provider: &'a str,
    /// Amount.
    pub amount: i64,
    /// State (`captured` for a manual payment recorded by the host).
    pub state: &'a str,
}

/// Inserts a session.
pub async fn insert_session(
    conn: &mut AsyncPgConnection,
    new: &NewSession<'_>,
) -> QueryResult<SessionRow> {
    diesel::insert_into(payment_sessions::table)
        .values(new)
        .returning(SessionRow::as_returning())
        .get_result(conn)
        .await
}

/// The open Stripe session of a booking, if any (a buyer asking to pay twice gets the same
/// one; one without a provider id yet is made at the provider with its own idempotency key).
pub async fn open_session(
    conn: &mut AsyncPgConnection,
    booking_id: i64,
) -> QueryResult<Option<SessionRow>> {
    payment_sessions::table
        .filter(payment_sessions::booking_id.eq(booking_id))
        .filter(payment_sessions::state.eq("open"))
        .filter(payment_sessions::provider.eq("stripe"))
        .order(payment_sessions::id.desc())
        .select(SessionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Whether a booking has a payment captured or applied (it is paid or being paid).
pub async fn has_capture(conn: &mut AsyncPgConnection, booking_id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        payment_sessions::table
            .filter(payment_sessions::booking_id.eq(booking_id))
            .filter(payment_sessions::state.ne("open")),
    ))
    .get_result(conn)
    .await
}

/// Records the provider's id and URL of a session just created, unless one is recorded
/// already; returns the session as it is then (the first one recorded wins, so every buyer's
/// tab is sent to the same Checkout Session).
pub async fn set_external(
    conn: &mut AsyncPgConnection,
    id: i64,
    external_id: &str,
    url: &str,
) -> QueryResult<Option<SessionRow>> {
    diesel::update(
        payment_sessions::table
            .find(id)
            .filter(payment_sessions::external_id.is_null()),
    )
    .set((
        payment_sessions::external_id.eq(external_id),
        payment_sessions::url.eq(url),
    ))
    .execute(conn)
    .await?;
    session(conn, id).await
}

/// The session with this provider id, locked until the transaction ends.
pub async fn lock_by_external(
    conn: &mut AsyncPgConnection,
    external_id: &str,
) -> QueryResult<Option<SessionRow>> {
    payment_sessions::table
        .filter(payment_sessions::external_id.eq(external_id))
        .select(SessionRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// One session.
pub async fn session(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<SessionRow>> {
    payment_sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Marks a webhook event processed; `false` when it was already (a replay).
pub async fn first_delivery(
    conn: &mut AsyncPgConnection,
    provider: &str,
    event_id: &str,
) -> QueryResult<bool> {
    let n = diesel::insert_into(payment_webhooks::table)
        .values((
            payment_webhooks::provider.eq(provider),
            payment_webhooks::event_id.eq(event_id),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// A ledger entry.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Event.
    pub event_id: i64,
    /// Booking.
    pub booking_id: i64,
    /// Session.
    pub session_id: Option<i64>,
    /// `capture` or `refund`.
    pub kind: &'a str,
    /// Minor units, positive.
    pub amount: i64,
    /// `manual` or `stripe`.
    pub provider: &'a str,
    /// The provider's reference (`pi_…`, `re_…`, or ours for manual entries); unique per
    /// provider and kind, so writing an entry twice writes it once.
    pub reference: &'a str,
}

/// Appends an entry (once per provider reference); `true` when it is new.
pub async fn append(conn: &mut AsyncPgConnection, e: Entry<'_>) -> QueryResult<bool> {
    let n = diesel::insert_into(payments::table)
        .values((
            payments::event_id.eq(e.event_id),
            payments::booking_id.eq(e.booking_id),
            payments::session_id.eq(e.session_id),
            payments::kind.eq(e.kind),
            payments::amount.eq(e.amount),
            payments::provider.eq(e.provider),
            payments::reference.eq(e.reference),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Marks a session captured (from `open`) with `amount` taken; `false` when it was not open.
/// `mismatch`: the payment is not the one the session asked for (amount, currency, booking):
/// the writer refunds what was taken instead of confirming anything.
pub async fn mark_captured(
    conn: &mut AsyncPgConnection,
    id: i64,
    amount: i64,
    mismatch: bool,
) -> QueryResult<bool> {
    let n = diesel::update(
        payment_sessions::table
            .find(id)
            .filter(payment_sessions::state.eq("open")),
    )
    .set((
        payment_sessions::state.eq("captured"),
        payment_sessions::mismatch.eq(mismatch),
        payment_sessions::amount.eq(amount),
        payment_sessions::captured_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// The capture entry of a session (its provider reference: what a refund refers to).
pub async fn capture_of(
    conn: &mut AsyncPgConnection,
    session_id: i64,
) -> QueryResult<Option<(String, i64)>> {
    payments::table
        .filter(payments::session_id.eq(session_id))
        .filter(payments::kind.eq("capture"))
        .select((payments::reference, payments::amount))
        .first(conn)
        .await
        .optional()
}

/// Sessions applied to a booking whose money it keeps (confirmed or re-acquired): what a
/// cancellation refunds.
pub async fn kept_sessions(
    conn: &mut AsyncPgConnection,
    booking_id: i64,
) -> QueryResult<Vec<SessionRow>> {
    payment_sessions::table
        .filter(payment_sessions::booking_id.eq(booking_id))
        .filter(payment_sessions::result.eq_any(["confirmed", "reacquired"]))
        .select(SessionRow::as_select())
        .load(conn)
        .await
}

/// An event whose ledger does not match its bookings.
#[derive(Debug, Clone, QueryableByName, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MoneyDrift {
    /// The event.
    #[diesel(sql_type = BigInt)]
    pub event_id: i64,
    /// Captured − refunded, from the ledger.
    #[diesel(sql_type = BigInt)]
    pub net: i64,
    /// What the bookings say it should be.
    #[diesel(sql_type = BigInt)]
    pub expected: i64,
    /// `ledger`.
    #[diesel(sql_type = Text)]
    pub kind: String,
}

/// Events where captured − refunded (the ledger) differs from what the payment sessions and
/// bookings say the event keeps: the cost of each paid booking still confirmed or waiting for
/// its refund, each payment captured and not applied yet, and each payment the writer decided
/// to refund whose refund is not in the ledger yet.
pub async fn drift(conn: &mut AsyncPgConnection) -> QueryResult<Vec<MoneyDrift>> {
    diesel::sql_query(
        "WITH ledger AS ( \
            SELECT event_id, \
                   SUM(CASE WHEN kind = 'capture' THEN amount ELSE -amount END)::BIGINT AS net \
              FROM payments GROUP BY event_id), \
         expected AS ( \
            SELECT s.event_id, SUM(CASE \
                WHEN s.state = 'captured' THEN s.amount \
                WHEN s.result IN ('confirmed', 'reacquired') \
                     AND b.status IN ('confirmed', 'refund_pending') THEN b.cost \
                WHEN s.result = 'refunded' AND NOT EXISTS ( \
                     SELECT 1 FROM payments p WHERE p.session_id = s.id AND p.kind = 'refund') \
                     THEN s.amount \
                ELSE 0 END)::BIGINT AS money \
              FROM payment_sessions s JOIN bookings b ON b.id = s.booking_id \
             WHERE s.state <> 'open' GROUP BY s.event_id) \
         SELECT coalesce(l.event_id, x.event_id) AS event_id, coalesce(l.net, 0) AS net, \
                coalesce(x.money, 0) AS expected, 'ledger' AS kind \
           FROM ledger l FULL JOIN expected x ON x.event_id = l.event_id \
          WHERE coalesce(l.net, 0) <> coalesce(x.money, 0) \
          ORDER BY 1",
    )
    .load(conn)
    .await
}
