//! `events` rows, the API view of an event, and the queries on them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};

use crate::db::schema::events;
use crate::db::views::waitlist;

/// An `events` row. It is also what the cache stores (it holds nothing secret).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize, Deserialize)]
#[diesel(table_name = events)]
pub struct Event {
    /// Id.
    pub id: i64,
    /// The user who hosts it.
    pub host_id: i64,
    /// Title.
    pub name: String,
    /// Description.
    pub description: String,
    /// Where.
    pub venue: String,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End (after the start).
    pub ends_at: DateTime<Utc>,
    /// Seats in total.
    pub capacity: i32,
    /// Seats held by confirmed bookings.
    pub reserved_seats: i32,
    /// Price per seat in minor units.
    pub price: i64,
    /// Per-user cap on confirmed + waitlisted seats.
    pub max_per_user: Option<i32>,
    /// Whether sold-out requests may join the waitlist.
    pub waitlist_open: bool,
    /// `active` or `cancelled`.
    pub status: String,
    /// When it was cancelled.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Write counter (cache ordering).
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When bookings open (`None`: at once). Requests asked before it are rejected
    /// `not_on_sale` by the writer.
    #[serde(default)]
    pub on_sale_at: Option<DateTime<Utc>>,
    /// Whether buyers go through the waiting room ([`crate::waiting_room`]): booking then needs
    /// an admission token.
    #[serde(default)]
    pub waiting_room: bool,
    /// `instant` (seats confirmed when decided) or `hold` (held for `hold_secs` while the buyer
    /// pays). Empty in entries cached by older versions: `instant`.
    #[serde(default)]
    pub checkout: String,
    /// How long a hold lasts.
    #[serde(default)]
    pub hold_secs: i32,
    /// `manual` or `stripe`.
    #[serde(default)]
    pub payment_provider: String,
    /// A paid booking cancelled by its buyer at least this many hours before the start is
    /// refunded in full; `None`: buyers cannot cancel paid bookings.
    #[serde(default)]
    pub refund_until_hours: Option<i32>,
}

/// Why an event does not take bookings right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Its host cancelled it.
    Cancelled,
    /// It has started (or ended).
    Started,
}

impl Event {
    /// Whether decisions hold seats for payment (`checkout = hold`).
    pub fn holds(&self) -> bool {
        self.checkout == "hold"
    }

    /// Seats still free.
    pub fn available_seats(&self) -> i32 {
        (self.capacity - self.reserved_seats).max(0)
    }

    /// Whether the event is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.status == "cancelled"
    }

    /// `Some(reason)` when bookings are not accepted at `now`.
    pub fn closed_at(&self, now: DateTime<Utc>) -> Option<Closed> {
        if self.is_cancelled() {
            Some(Closed::Cancelled)
        } else if self.starts_at <= now {
            Some(Closed::Started)
        } else {
            None
        }
    }

    /// The public status at `now`: `cancelled`, `ended`, `started`, `not_on_sale`, `sold_out`
    /// or `on_sale`
    /// (the same rule as [`PUBLIC_STATUS_SQL`]).
    pub fn status_at(&self, now: DateTime<Utc>) -> &'static str {
        if self.is_cancelled() {
            "cancelled"
        } else if self.ends_at <= now {
            "ended"
        } else if self.starts_at <= now {
            "started"
        } else if self.on_sale_at.is_some_and(|t| now < t) {
            "not_on_sale"
        } else if self.available_seats() == 0 {
            "sold_out"
        } else {
            "on_sale"
        }
    }

    /// The API view (seed field names).
    pub fn view(&self, now: DateTime<Utc>) -> EventView {
        EventView {
            id: self.id,
            name: self.name.clone(),
            description: self.description.clone(),
            host_id: self.host_id,
            venue: self.venue.clone(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            capacity: self.capacity,
            reserved_seats: self.reserved_seats,
            available_seats: self.available_seats(),
            price: self.price,
            max_per_user: self.max_per_user,
            waitlist_open: self.waitlist_open,
            on_sale_at: self.on_sale_at,
            waiting_room: self.waiting_room,
            checkout: if self.holds() { "hold" } else { "instant" },
            hold_seconds: self.holds().then_some(self.hold_secs),
            payment_provider: if self.payment_provider == "stripe" {
                "stripe"
            } else {
                "manual"
            },
            refund_until_hours: self.refund_until_hours,
            status: self.status_at(now),
            waitlist_length: None,
        }
    }
}

/// An event as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    /// Id.
    pub id: i64,
    /// Title.
    pub name: String,
    /// Description.
    pub description: String,
    /// Host user id.
    pub host_id: i64,
    /// Where.
    pub venue: String,
    /// Start (RFC 3339).
    pub starts_at: DateTime<Utc>,
    /// End (RFC 3339).
    pub ends_at: DateTime<Utc>,
    /// Seats in total.
    pub capacity: i32,
    /// Seats booked.
    pub reserved_seats: i32,
    /// Seats free.
    pub available_seats: i32,
    /// Price per seat in minor units.
    pub price: i64,
    /// Per-user seat cap, if any.
    pub max_per_user: Option<i32>,
    /// Whether the waitlist takes new entries.
    pub waitlist_open: bool,
    /// When bookings open (`null`: they are open).
    pub on_sale_at: Option<DateTime<Utc>>,
    /// Whether buyers queue in the waiting room and book with an admission token.
    pub waiting_room: bool,
    /// `instant` or `hold`.
    pub checkout: &'static str,
    /// How long a hold lasts (`hold` checkout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_seconds: Option<i32>,
    /// `manual` or `stripe` (what paying a hold means).
    pub payment_provider: &'static str,
    /// Buyers cancelling a paid booking at least this many hours before the start are refunded
    /// in full (`null`: buyers cannot cancel paid bookings).
    pub refund_until_hours: Option<i32>,
    /// `not_on_sale`, `on_sale`, `sold_out`, `started`, `ended` or `cancelled`.
    pub status: &'static str,
    /// Seats waited for (shown to the host and admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waitlist_length: Option<i64>,
}

/// A new event. `None` is written as NULL, not as the column's default (`refundUntilHours:
/// null` means no buyer refunds, not the default policy).
#[derive(Debug, Insertable)]
#[diesel(table_name = events, treat_none_as_default_value = false)]
pub struct NewEvent {
    /// Host.
    pub host_id: i64,
    /// Title.
    pub name: String,
    /// Description.
    pub description: String,
    /// Where.
    pub venue: String,
    /// Start.
    pub starts_at: DateTime<Utc>,
    /// End.
    pub ends_at: DateTime<Utc>,
    /// Seats.
    pub capacity: i32,
    /// Price per seat (minor units).
    pub price: i64,
    /// Per-user cap.
    pub max_per_user: Option<i32>,
    /// Waitlist open.
    pub waitlist_open: bool,
    /// When bookings open.
    pub on_sale_at: Option<DateTime<Utc>>,
    /// Waiting room on.
    pub waiting_room: bool,
    /// `instant` or `hold`.
    pub checkout: String,
    /// Hold length.
    pub hold_secs: i32,
    /// `manual` or `stripe`.
    pub payment_provider: String,
    /// Refund policy.
    pub refund_until_hours: Option<i32>,
}

/// Changed fields of an event (`None` = unchanged; `max_per_user: Some(None)` removes the cap).
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = events)]
pub struct EventChanges {
    /// Title.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Where.
    pub venue: Option<String>,
    /// Start.
    pub starts_at: Option<DateTime<Utc>>,
    /// End.
    pub ends_at: Option<DateTime<Utc>>,
    /// Seats.
    pub capacity: Option<i32>,
    /// Price.
    pub price: Option<i64>,
    /// Per-user cap.
    pub max_per_user: Option<Option<i32>>,
    /// Waitlist open.
    pub waitlist_open: Option<bool>,
    /// On-sale time; `Some(None)` removes it.
    pub on_sale_at: Option<Option<DateTime<Utc>>>,
    /// Waiting room on or off.
    pub waiting_room: Option<bool>,
    /// `instant` or `hold`.
    pub checkout: Option<String>,
    /// Hold length.
    pub hold_secs: Option<i32>,
    /// `manual` or `stripe`.
    pub payment_provider: Option<String>,
    /// Refund policy; `Some(None)`: no buyer refunds.
    pub refund_until_hours: Option<Option<i32>>,
}

impl NewEvent {
    /// Inserts the event.
    pub async fn insert(&self, conn: &mut AsyncPgConnection) -> QueryResult<Event> {
        diesel::insert_into(events::table)
            .values(self)
            .returning(Event::as_returning())
            .get_result(conn)
            .await
    }
}

/// Keyset position in the catalogue order `(starts_at, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueCursor {
    /// Start of the last event of the previous page.
    pub starts_at: DateTime<Utc>,
    /// Its id.
    pub id: i64,
}

/// Filters of a catalogue listing.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only events that have not started.
    pub upcoming: bool,
    /// Only this host's events.
    pub host_id: Option<i64>,
    /// Case-insensitive substring of the name.
    pub q: Option<String>,
    /// Include cancelled events (admin listing).
    pub include_cancelled: bool,
}

impl Event {
    /// The event, without locking.
    pub async fn find(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<Event>> {
        events::table
            .find(id)
            .select(Event::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// The event, locked `FOR UPDATE` until the transaction ends: serialises with the booking
    /// worker and other writers.
    pub async fn lock(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<Option<Event>> {
        events::table
            .find(id)
            .select(Event::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()
    }

    /// Applies `changes` and bumps the version.
    pub async fn update(
        conn: &mut AsyncPgConnection,
        id: i64,
        changes: &EventChanges,
    ) -> QueryResult<Event> {
        diesel::update(events::table.find(id))
            .set((changes, events::version.eq(events::version + 1)))
            .returning(Event::as_returning())
            .get_result(conn)
            .await
    }

    /// A page of the catalogue in `(starts_at, id)` order, after `cursor`.
    pub async fn list(
        conn: &mut AsyncPgConnection,
        filter: &ListFilter,
        cursor: Option<CatalogueCursor>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> QueryResult<Vec<Event>> {
        let mut query = events::table.select(Event::as_select()).into_boxed();
        if !filter.include_cancelled {
            query = query.filter(events::status.eq("active"));
        }
        if filter.upcoming {
            query = query.filter(events::starts_at.gt(now));
        }
        if let Some(host) = filter.host_id {
            query = query.filter(events::host_id.eq(host));
        }
        if let Some(q) = &filter.q {
            let pattern = format!(
                "%{}%",
                q.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            query = query.filter(crate::users::model::lower(events::name).like(pattern));
        }
        if let Some(c) = cursor {
            query = query.filter(
                events::starts_at
                    .gt(c.starts_at)
                    .or(events::starts_at.eq(c.starts_at).and(events::id.gt(c.id))),
            );
        }
        query
            .order((events::starts_at.asc(), events::id.asc()))
            .limit(limit)
            .load(conn)
            .await
    }

    /// Every event (reconciliation).
    pub async fn all(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Event>> {
        events::table
            .select(Event::as_select())
            .order(events::id.asc())
            .load(conn)
            .await
    }

    /// Seats waited for on this event.
    pub async fn waitlist_seats(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<i64> {
        let sum: Option<i64> = waitlist::table
            .filter(waitlist::event_id.eq(id))
            .select(diesel::dsl::sum(waitlist::seats))
            .first(conn)
            .await?;
        Ok(sum.unwrap_or(0))
    }
}

/// [`Event::status_at`] in SQL, for queries that list events under the alias `e` (analytics):
/// one vocabulary for an event's status everywhere.
pub const PUBLIC_STATUS_SQL: &str = "CASE WHEN e.status = 'cancelled' THEN 'cancelled' \
     WHEN e.ends_at <= now() THEN 'ended' WHEN e.starts_at <= now() THEN 'started' \
     WHEN e.on_sale_at > now() THEN 'not_on_sale' \
     WHEN e.reserved_seats >= e.capacity THEN 'sold_out' ELSE 'on_sale' END";
