//! The booking writer's SQL: one dedicated PostgreSQL connection per transaction in flight,
//! its statements prepared once, and a whole decision written in one pipelined round trip.
//!
//! A [`Writes`] value is everything one batch changes. [`Conn::commit`] sends `BEGIN`, the bulk
//! inserts (`INSERT … SELECT FROM UNNEST(arrays)`: one statement text whatever the batch size),
//! `engine_advance` (the version check that makes a decision on stale state fail with 40001),
//! the waitlist service and `COMMIT` without waiting in between; PostgreSQL runs them in order.
//! The heavy inserts come before `engine_advance`, the first statement that waits for the
//! previous transaction of the same event, so they overlap with its commit.

use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{Client, NoTls, Statement};
use uuid::Uuid;

use crate::bookings::domain::BookingStatus;

/// A new `booking_requests` row with its outcome.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: Uuid,
    pub user_id: i64,
    pub event_id: i64,
    pub seats: i32,
    pub allow_partial: bool,
    pub join_waitlist: bool,
    pub idempotency_key: Option<String>,
    pub status: &'static str,
    pub seats_confirmed: i32,
    pub seats_waitlisted: i32,
    pub reject_reason: Option<&'static str>,
    pub cost: i64,
    pub requested_at: DateTime<Utc>,
    pub ticket_type_id: Option<i64>,
    /// The price per seat a waiting request was quoted (`Some` when `seats_waitlisted > 0`:
    /// the row is then also a waitlist entry, placed at the end of its event's queue).
    pub price_quoted: Option<i64>,
    /// The waiting-room admission (rank) the request used (it took seats or a place).
    pub admission_rank: Option<i64>,
}

/// A new `bookings` row (its id taken from the sequence beforehand).
#[derive(Debug, Clone)]
pub struct BookingRow {
    pub id: i64,
    pub request_id: Uuid,
    pub user_id: i64,
    pub event_id: i64,
    pub seats: i32,
    pub cost: i64,
    /// `Confirmed` or `Held`.
    pub status: BookingStatus,
    /// When a hold runs out.
    pub expires_at: Option<DateTime<Utc>>,
    pub ticket_type_id: Option<i64>,
}

/// A waitlist entry that got seats (its request row's seats move from waiting to confirmed;
/// at 0 waiting it is off the waitlist).
#[derive(Debug, Clone)]
pub struct ServedRow {
    pub request_id: Uuid,
    pub confirmed: i32,
    pub cost: i64,
}

/// A notification, written in the decision's transaction (invariant 5): the one outbox value
/// every writer of notifications uses. The writer stores a transaction's notifications as one
/// `outbox_batches` row, which the relay expands ([`crate::notifications::outbox::expand`]).
pub use crate::notifications::outbox::NewNotification as OutboxRow;

/// An event moved forward by one decision.
#[derive(Debug, Clone, Copy)]
pub struct Advance {
    pub event_id: i64,
    /// Seats confirmed by the decision.
    pub delta: i32,
    /// The version the decision was made against.
    pub expected_version: i64,
}

/// A booking moved from one state to another by the writer (a hold expiring, a payment
/// confirming it): the row must still be in `from`, or the transaction fails.
#[derive(Debug, Clone, Copy)]
pub struct Transition {
    pub booking_id: i64,
    pub from: BookingStatus,
    pub to: BookingStatus,
}

/// Everything one batch writes.
#[derive(Debug, Default)]
pub struct Writes {
    pub requests: Vec<RequestRow>,
    pub bookings: Vec<BookingRow>,
    pub served: Vec<ServedRow>,
    pub outbox: Vec<OutboxRow>,
    pub advance: Vec<Advance>,
    /// Seats taken (or given back, negative) per ticket type.
    pub types: Vec<(i64, i32)>,
    pub transitions: Vec<Transition>,
    /// Captured payments applied: (payment session, `confirmed` | `reacquired` | `refunded`).
    pub payments: Vec<(i64, &'static str)>,
}

impl Writes {
    /// Adds `seats` to a ticket type's count (one entry per type: an UPDATE … FROM applies one
    /// source row per target row).
    pub fn type_seats(&mut self, ticket_type: i64, seats: i32) {
        match self.types.iter_mut().find(|(t, _)| *t == ticket_type) {
            Some((_, n)) => *n += seats,
            None => self.types.push((ticket_type, seats)),
        }
    }
}

/// Why a commit failed, as far as the writer needs to know.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// An event moved under the writer (or two transactions deadlocked): rolled back, decide
    /// again on fresh state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The data itself was refused (a constraint, a value out of range): rolled back; retrying
    /// the same batch fails the same way.
    #[error("refused by the database: {0}")]
    Refused(tokio_postgres::Error),
    /// The connection failed: the outcome is unknown (the commit may have happened).
    #[error("connection: {0}")]
    Lost(String),
}

impl CommitError {
    fn of(e: tokio_postgres::Error) -> Self {
        // tokio-postgres's Display says only "db error"; the server's words are in the source.
        let describe = |e: &tokio_postgres::Error| match e.as_db_error() {
            Some(d) => format!("{}: {}", d.code().code(), d.message()),
            None => e.to_string(),
        };
        match e.code() {
            Some(c)
                if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED =>
            {
                Self::Conflict(describe(&e))
            }
            Some(c) if c.code().starts_with("22") || c.code().starts_with("23") => Self::Refused(e),
            _ => Self::Lost(describe(&e)),
        }
    }

    /// The most telling of several errors of one pipelined transaction: the first one that is
    /// not "current transaction is aborted".
    fn first(errors: Vec<tokio_postgres::Error>) -> Option<Self> {
        let aborted =
            |e: &tokio_postgres::Error| e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION);
        let mut errors = errors.into_iter();
        let first = errors.next()?;
        if !aborted(&first) {
            return Some(Self::of(first));
        }
        Some(Self::of(errors.find(|e| !aborted(e)).unwrap_or(first)))
    }
}

/// The prepared statements of one connection.
struct Statements {
    requests: Statement,
    bookings: Statement,
    outbox: Statement,
    advance: Statement,
    serve_requests: Statement,
    types: Statement,
    transition: Statement,
    payments: Statement,
}

/// One dedicated writer connection.
pub struct Conn {
    client: Client,
    stmts: Statements,
}

// A waiting request (`seats_waitlisted > 0`) is its event's waitlist entry: it takes the next
// place of the queue. WITH ORDINALITY … ORDER BY keeps arrival order in the places (a volatile
// function in the select list runs after the sort).
const INSERT_REQUESTS: &str = "INSERT INTO booking_requests (id, user_id, event_id, seats, \
    allow_partial, join_waitlist, idempotency_key, status, seats_confirmed, seats_waitlisted, \
    reject_reason, cost, requested_at, ticket_type_id, price_quoted, admission_rank, waitlist_seq) \
    SELECT i, u, e, s, p, j, k, st, c, w, rr, co, ra, t, q, ar, \
           CASE WHEN w > 0 THEN nextval('booking_requests_waitlist_seq') END \
    FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::int4[], $5::bool[], $6::bool[], \
    $7::text[], $8::text[], $9::int4[], $10::int4[], $11::text[], $12::int8[], $13::timestamptz[], \
    $14::int8[], $15::int8[], $16::int8[]) \
    WITH ORDINALITY AS x(i, u, e, s, p, j, k, st, c, w, rr, co, ra, t, q, ar, n) \
    ORDER BY n";
const INSERT_BOOKINGS: &str = "INSERT INTO bookings (id, request_id, user_id, event_id, seats, cost, \
    status, expires_at, ticket_type_id) OVERRIDING SYSTEM VALUE \
    SELECT * FROM UNNEST($1::int8[], $2::uuid[], $3::int8[], $4::int8[], $5::int4[], $6::int8[], \
    $7::text[], $8::timestamptz[], $9::int8[])";
// After engine_advance (the event rows first: every writer's lock order).
const TYPES: &str = "UPDATE ticket_types t SET sold = t.sold + d.n \
    FROM UNNEST($1::int8[], $2::int4[]) AS d(id, n) WHERE t.id = d.id";
const TRANSITION: &str = "SELECT engine_transition($1::int8[], $2::text[], $3::text[])";
const PAYMENTS: &str = "SELECT engine_apply_payments($1::int8[], $2::text[])";
// The batch's notifications as one row (the relay expands it into `outbox` rows): one heap
// row and one index entry per transaction instead of per notification. The payloads go in as
// `json` (checked, not rebuilt); the relay makes them jsonb when it expands the batch.
const INSERT_OUTBOX: &str = "INSERT INTO outbox_batches (kinds, user_ids, event_ids, payloads) \
    VALUES ($1::text[], $2::int8[], $3::int8[], $4::json[])";
const ADVANCE: &str = "SELECT engine_advance($1::int8[], $2::int4[], $3::int8[])";
const SERVE_REQUESTS: &str = "UPDATE booking_requests r SET \
    seats_confirmed = r.seats_confirmed + s.c, seats_waitlisted = r.seats_waitlisted - s.c, \
    cost = r.cost + s.cost, \
    status = CASE WHEN r.seats_confirmed + s.c >= r.seats THEN 'confirmed' ELSE 'partial' END \
    FROM UNNEST($1::uuid[], $2::int4[], $3::int8[]) AS s(id, c, cost) WHERE r.id = s.id";

impl Conn {
    /// Opens a connection (the `connection_url` of the role) and prepares every statement.
    pub async fn open(url: &str) -> Result<Self, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "booking writer connection closed");
            }
        });
        let stmts = Statements {
            requests: client.prepare(INSERT_REQUESTS).await?,
            bookings: client.prepare(INSERT_BOOKINGS).await?,
            outbox: client.prepare(INSERT_OUTBOX).await?,
            advance: client.prepare(ADVANCE).await?,
            serve_requests: client.prepare(SERVE_REQUESTS).await?,
            types: client.prepare(TYPES).await?,
            transition: client.prepare(TRANSITION).await?,
            payments: client.prepare(PAYMENTS).await?,
        };
        Ok(Self { client, stmts })
    }

    /// Whether the connection is gone (open a new one).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Writes one batch in one transaction, every statement pipelined. `Ok` means committed.
    ///
    /// Transactions of one writer are chained: `after` resolves once the previous transaction
    /// in flight has moved its events (it then holds their rows until it commits), and
    /// `advanced` is fired once this one has. The inserts go out at once; `engine_advance` only
    /// after the predecessor's, so it queues behind the predecessor's row locks instead of
    /// overtaking it and finding the events one version short.
    pub async fn commit(
        &self,
        w: &Writes,
        after: Option<tokio::sync::oneshot::Receiver<()>>,
        advanced: tokio::sync::oneshot::Sender<()>,
    ) -> Result<(), CommitError> {
        use futures_util::future::{BoxFuture, FutureExt, join, join_all};
        type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;
        let (c, s) = (&self.client, &self.stmts);
        let rq = RequestArrays::of(&w.requests);
        let b = &w.bookings;
        let bk = (
            b.iter().map(|r| r.id).collect::<Vec<_>>(),
            b.iter().map(|r| r.request_id).collect::<Vec<_>>(),
            b.iter().map(|r| r.user_id).collect::<Vec<_>>(),
            b.iter().map(|r| r.event_id).collect::<Vec<_>>(),
            b.iter().map(|r| r.seats).collect::<Vec<_>>(),
            b.iter().map(|r| r.cost).collect::<Vec<_>>(),
            b.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(),
            b.iter().map(|r| r.expires_at).collect::<Vec<_>>(),
            b.iter().map(|r| r.ticket_type_id).collect::<Vec<_>>(),
        );
        let o = &w.outbox;
        let ob = (
            o.iter().map(|r| r.kind).collect::<Vec<_>>(),
            o.iter().map(|r| r.user_id).collect::<Vec<_>>(),
            o.iter().map(|r| r.event_id).collect::<Vec<_>>(),
            o.iter().map(|r| Json(&r.payload)).collect::<Vec<_>>(),
        );
        let a = &w.advance;
        let ad = (
            a.iter().map(|r| r.event_id).collect::<Vec<_>>(),
            a.iter().map(|r| r.delta).collect::<Vec<_>>(),
            a.iter().map(|r| r.expected_version).collect::<Vec<_>>(),
        );
        let ty = (
            w.types.iter().map(|t| t.0).collect::<Vec<_>>(),
            w.types.iter().map(|t| t.1).collect::<Vec<_>>(),
        );
        let tr = (
            w.transitions
                .iter()
                .map(|t| t.booking_id)
                .collect::<Vec<_>>(),
            w.transitions
                .iter()
                .map(|t| t.from.as_str())
                .collect::<Vec<_>>(),
            w.transitions
                .iter()
                .map(|t| t.to.as_str())
                .collect::<Vec<_>>(),
        );
        let pa = (
            w.payments.iter().map(|p| p.0).collect::<Vec<_>>(),
            w.payments.iter().map(|p| p.1).collect::<Vec<_>>(),
        );
        let sv = &w.served;
        let se = (
            sv.iter().map(|r| r.request_id).collect::<Vec<_>>(),
            sv.iter().map(|r| r.confirmed).collect::<Vec<_>>(),
            sv.iter().map(|r| r.cost).collect::<Vec<_>>(),
        );
        let p_requests: Params<'_> = vec![
            &rq.id,
            &rq.user_id,
            &rq.event_id,
            &rq.seats,
            &rq.allow_partial,
            &rq.join_waitlist,
            &rq.idempotency_key,
            &rq.status,
            &rq.seats_confirmed,
            &rq.seats_waitlisted,
            &rq.reject_reason,
            &rq.cost,
            &rq.requested_at,
            &rq.ticket_type_id,
            &rq.price_quoted,
            &rq.admission_rank,
        ];
        let p_bookings: Params<'_> = vec![
            &bk.0, &bk.1, &bk.2, &bk.3, &bk.4, &bk.5, &bk.6, &bk.7, &bk.8,
        ];
        let p_types: Params<'_> = vec![&ty.0, &ty.1];
        let p_transition: Params<'_> = vec![&tr.0, &tr.1, &tr.2];
        let p_payments: Params<'_> = vec![&pa.0, &pa.1];
        let p_outbox: Params<'_> = vec![&ob.0, &ob.1, &ob.2, &ob.3];
        let p_advance: Params<'_> = vec![&ad.0, &ad.1, &ad.2];
        let p_serve: Params<'_> = vec![&se.0, &se.1, &se.2];

        // Queued in this order; sent in this order when first polled (join_all polls in order).
        let mut steps: Vec<BoxFuture<'_, Result<(), tokio_postgres::Error>>> =
            vec![c.batch_execute("BEGIN").boxed()];
        macro_rules! run {
            ($stmt:expr, $params:expr) => {
                steps.push(c.execute($stmt, $params).map(|r| r.map(drop)).boxed())
            };
        }
        if !w.requests.is_empty() {
            run!(&s.requests, &p_requests);
        }
        if !b.is_empty() {
            run!(&s.bookings, &p_bookings);
        }
        if !o.is_empty() {
            run!(&s.outbox, &p_outbox);
        }
        let head = join_all(steps);
        let tail = async {
            if let Some(after) = after {
                // Err: the predecessor ended without moving its events (it failed); this
                // transaction's version check then fails too, as it must.
                let _ = after.await;
            }
            let mut steps: Vec<BoxFuture<'_, Result<(), tokio_postgres::Error>>> = Vec::new();
            // Takes the event rows: waits for the predecessor's commit.
            steps.push(
                c.execute(&s.advance, &p_advance)
                    .map(|r| {
                        let _ = advanced.send(());
                        r.map(drop)
                    })
                    .boxed(),
            );
            // Then the types, the bookings and payments it moves, the waiting requests: the
            // lock order of every writer (event row first).
            if !w.types.is_empty() {
                steps.push(c.execute(&s.types, &p_types).map(|r| r.map(drop)).boxed());
            }
            if !w.transitions.is_empty() {
                steps.push(
                    c.execute(&s.transition, &p_transition)
                        .map(|r| r.map(drop))
                        .boxed(),
                );
            }
            if !w.payments.is_empty() {
                steps.push(
                    c.execute(&s.payments, &p_payments)
                        .map(|r| r.map(drop))
                        .boxed(),
                );
            }
            if !sv.is_empty() {
                steps.push(
                    c.execute(&s.serve_requests, &p_serve)
                        .map(|r| r.map(drop))
                        .boxed(),
                );
            }
            // In an aborted transaction PostgreSQL answers COMMIT with ROLLBACK: every step's
            // own result says whether it committed.
            steps.push(c.batch_execute("COMMIT").boxed());
            join_all(steps).await
        };
        let (head, tail) = join(head, tail).await;
        let errors: Vec<_> = head
            .into_iter()
            .chain(tail)
            .filter_map(Result::err)
            .collect();
        match CommitError::first(errors) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

/// `booking_requests` columns as arrays.
struct RequestArrays<'a> {
    id: Vec<Uuid>,
    user_id: Vec<i64>,
    event_id: Vec<i64>,
    seats: Vec<i32>,
    allow_partial: Vec<bool>,
    join_waitlist: Vec<bool>,
    idempotency_key: Vec<Option<&'a str>>,
    status: Vec<&'static str>,
    seats_confirmed: Vec<i32>,
    seats_waitlisted: Vec<i32>,
    reject_reason: Vec<Option<&'static str>>,
    cost: Vec<i64>,
    requested_at: Vec<DateTime<Utc>>,
    ticket_type_id: Vec<Option<i64>>,
    price_quoted: Vec<Option<i64>>,
    admission_rank: Vec<Option<i64>>,
}

impl<'a> RequestArrays<'a> {
    fn of(rows: &'a [RequestRow]) -> Self {
        Self {
            id: rows.iter().map(|r| r.id).collect(),
            user_id: rows.iter().map(|r| r.user_id).collect(),
            event_id: rows.iter().map(|r| r.event_id).collect(),
            seats: rows.iter().map(|r| r.seats).collect(),
            allow_partial: rows.iter().map(|r| r.allow_partial).collect(),
            join_waitlist: rows.iter().map(|r| r.join_waitlist).collect(),
            idempotency_key: rows.iter().map(|r| r.idempotency_key.as_deref()).collect(),
            status: rows.iter().map(|r| r.status).collect(),
            seats_confirmed: rows.iter().map(|r| r.seats_confirmed).collect(),
            seats_waitlisted: rows.iter().map(|r| r.seats_waitlisted).collect(),
            reject_reason: rows.iter().map(|r| r.reject_reason).collect(),
            cost: rows.iter().map(|r| r.cost).collect(),
            requested_at: rows.iter().map(|r| r.requested_at).collect(),
            ticket_type_id: rows.iter().map(|r| r.ticket_type_id).collect(),
            price_quoted: rows.iter().map(|r| r.price_quoted).collect(),
            admission_rank: rows.iter().map(|r| r.admission_rank).collect(),
        }
    }
}
