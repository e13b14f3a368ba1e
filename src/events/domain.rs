//! Event input: the request bodies and their validation (every problem reported at once, each
//! naming its field). Types do half the work: `capacity: i64` makes `"10"`, `2.5` and
//! `"false"`-for-a-boolean a 400 naming the field before these rules run.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

use crate::error::{ApiError, FieldError};
use crate::events::model::{EventChanges, NewEvent};

/// Largest price per seat, in minor units (one billion in major units).
pub const MAX_PRICE: i64 = 100_000_000_000;

/// Deserialises a field that may be absent (`None`), `null` (`Some(None)`) or a value (with
/// `#[serde(default, deserialize_with = "nullable")]`; also used by [`crate::tickets`]).
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /api/events/create` (and admin create, which adds `hostId`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateEventBody {
    /// Title.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Start, RFC 3339.
    pub starts_at: Option<String>,
    /// End, RFC 3339.
    pub ends_at: Option<String>,
    /// Where.
    pub venue: Option<String>,
    /// Seats.
    pub capacity: Option<i64>,
    /// Price per seat in minor units.
    pub price: Option<i64>,
    /// Per-user seat cap.
    pub max_per_user: Option<i64>,
    /// Whether the waitlist is open (default true).
    pub waitlist_open: Option<bool>,
    /// When bookings open, RFC 3339 (before `startsAt`); absent: at once.
    pub on_sale_at: Option<String>,
    /// Buyers queue in the waiting room (default false).
    pub waiting_room: Option<bool>,
    /// `instant` (default) or `hold`.
    pub checkout: Option<String>,
    /// How long a hold lasts, in seconds (default `checkout.hold_default_secs`).
    pub hold_seconds: Option<i64>,
    /// `manual` (default) or `stripe`.
    pub payment_provider: Option<String>,
    /// Buyers cancelling a paid booking at least this many hours before the start are refunded
    /// in full (default 0); `null`: buyers cannot cancel paid bookings.
    #[serde(default, deserialize_with = "nullable")]
    pub refund_until_hours: Option<Option<i64>>,
    /// Host (admin create only).
    pub host_id: Option<i64>,
}

/// `POST /api/events/update` and admin `PATCH`: `id` plus any fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateEventBody {
    /// The event.
    pub id: Option<i64>,
    /// Title.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Start.
    pub starts_at: Option<String>,
    /// End.
    pub ends_at: Option<String>,
    /// Where.
    pub venue: Option<String>,
    /// Seats.
    pub capacity: Option<i64>,
    /// Price.
    pub price: Option<i64>,
    /// Per-user cap; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub max_per_user: Option<Option<i64>>,
    /// Waitlist open.
    pub waitlist_open: Option<bool>,
    /// When bookings open; `null` opens them now.
    #[serde(default, deserialize_with = "nullable")]
    pub on_sale_at: Option<Option<String>>,
    /// Waiting room on or off.
    pub waiting_room: Option<bool>,
    /// `instant` or `hold`.
    pub checkout: Option<String>,
    /// Hold length in seconds.
    pub hold_seconds: Option<i64>,
    /// `manual` or `stripe`.
    pub payment_provider: Option<String>,
    /// Refund policy; `null`: buyers cannot cancel paid bookings.
    #[serde(default, deserialize_with = "nullable")]
    pub refund_until_hours: Option<Option<i64>>,
}

/// `POST /api/events/delete`, admin `DELETE`: `{ id }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdBody {
    /// The event.
    pub id: Option<i64>,
}

/// Limits that come from configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest capacity of one event.
    pub max_capacity: i64,
    /// Shortest and longest hold, and the default (`[checkout]`).
    pub hold_secs: (i64, i64, i64),
}

/// Longest refund window (a year).
const MAX_REFUND_HOURS: i64 = 24 * 366;

/// Field checks that collect every problem of a body (shared with [`crate::tickets`]).
#[derive(Debug, Default)]
pub struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    /// Records a problem with `field`.
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Free text of at most `max` characters.
    pub fn text(
        &mut self,
        field: &str,
        raw: Option<&str>,
        max: usize,
        required: bool,
    ) -> Option<String> {
        let Some(raw) = raw else {
            if required {
                self.fail(field, "is required");
            }
            return None;
        };
        let s = raw.trim();
        if s.is_empty() {
            self.fail(field, "must not be empty");
            return None;
        }
        if s.chars().count() > max {
            self.fail(field, format!("must be at most {max} characters"));
            return None;
        }
        if s.contains('\0') {
            self.fail(field, "must not contain NUL characters");
            return None;
        }
        Some(s.to_owned())
    }

    /// A single line of text (a name, a venue): as [`Self::text`], without control characters
    /// (CR, LF, tab…), Unicode line or paragraph separators or bidirectional overrides — these
    /// go into email subjects and lines the platform sends in its own name.
    pub fn line(
        &mut self,
        field: &str,
        raw: Option<&str>,
        max: usize,
        required: bool,
    ) -> Option<String> {
        let s = self.text(field, raw, max, required)?;
        let forbidden = |c: char| {
            c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        };
        if s.chars().any(forbidden) {
            self.fail(
                field,
                "must be a single line without control or direction-override characters",
            );
            return None;
        }
        Some(s)
    }

    /// An RFC 3339 date-time.
    pub fn time(
        &mut self,
        field: &str,
        raw: Option<&str>,
        required: bool,
    ) -> Option<DateTime<Utc>> {
        let Some(raw) = raw else {
            if required {
                self.fail(field, "is required");
            }
            return None;
        };
        match DateTime::parse_from_rfc3339(raw.trim()) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                self.fail(
                    field,
                    "must be an ISO-8601 date-time with a time zone, e.g. 2030-12-20T19:00:00Z",
                );
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub fn int(
        &mut self,
        field: &str,
        raw: Option<i64>,
        min: i64,
        max: i64,
        required: bool,
    ) -> Option<i64> {
        let Some(v) = raw else {
            if required {
                self.fail(field, "is required");
            }
            return None;
        };
        if v < min || v > max {
            self.fail(field, format!("must be an integer from {min} to {max}"));
            return None;
        }
        Some(v)
    }

    fn one_of(&mut self, field: &str, raw: Option<&str>, allowed: &[&str]) -> Option<String> {
        let raw = raw?;
        if allowed.contains(&raw) {
            Some(raw.to_owned())
        } else {
            self.fail(field, format!("must be one of: {}", allowed.join(", ")));
            None
        }
    }

    /// The checkout fields of a create or update body.
    fn checkout(
        &mut self,
        checkout: Option<&str>,
        hold_seconds: Option<i64>,
        provider: Option<&str>,
        refund: Option<Option<i64>>,
        limits: Limits,
    ) -> CheckoutFields {
        let (min, max, _) = limits.hold_secs;
        CheckoutFields {
            checkout: self.one_of("checkout", checkout, &["instant", "hold"]),
            hold_secs: self
                .int("holdSeconds", hold_seconds, min, max, false)
                .map(as_i32),
            payment_provider: self.one_of("paymentProvider", provider, &["manual", "stripe"]),
            refund_until_hours: match refund {
                None => None,
                Some(None) => Some(None),
                Some(v) => Some(
                    self.int("refundUntilHours", v, 0, MAX_REFUND_HOURS, false)
                        .map(as_i32),
                ),
            },
        }
    }

    /// `Err` naming every field at fault, if any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::fields(self.errors))
        }
    }
}

struct CheckoutFields {
    checkout: Option<String>,
    hold_secs: Option<i32>,
    payment_provider: Option<String>,
    refund_until_hours: Option<Option<i32>>,
}

fn as_i32(v: i64) -> i32 {
    // Every caller has range-checked `v` against an i32-sized maximum.
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Validates a create body into a new event for `host_id`.
pub fn validate_create(
    body: &CreateEventBody,
    host_id: i64,
    limits: Limits,
    now: DateTime<Utc>,
) -> Result<NewEvent, ApiError> {
    let mut c = Check { errors: Vec::new() };
    let name = c.line("name", body.name.as_deref(), 200, true);
    let description = c.text("description", body.description.as_deref(), 5000, true);
    let venue = c.line("venue", body.venue.as_deref(), 300, true);
    let starts_at = c.time("startsAt", body.starts_at.as_deref(), true);
    let ends_at = c.time("endsAt", body.ends_at.as_deref(), true);
    let capacity = c.int("capacity", body.capacity, 1, limits.max_capacity, true);
    let price = c.int("price", body.price, 0, MAX_PRICE, true);
    let max_per_user = c.int(
        "maxPerUser",
        body.max_per_user,
        1,
        limits.max_capacity,
        false,
    );
    if let Some(s) = starts_at
        && s <= now
    {
        c.fail("startsAt", "must be in the future");
    }
    if let (Some(s), Some(e)) = (starts_at, ends_at)
        && e <= s
    {
        c.fail("endsAt", "must be after startsAt");
    }
    let on_sale_at = c.time("onSaleAt", body.on_sale_at.as_deref(), false);
    if let (Some(o), Some(s)) = (on_sale_at, starts_at)
        && o >= s
    {
        c.fail("onSaleAt", "must be before startsAt");
    }
    let checkout = c.checkout(
        body.checkout.as_deref(),
        body.hold_seconds,
        body.payment_provider.as_deref(),
        body.refund_until_hours,
        limits,
    );
    c.finish()?;
    match (
        name,
        description,
        venue,
        starts_at,
        ends_at,
        capacity,
        price,
    ) {
        (
            Some(name),
            Some(description),
            Some(venue),
            Some(starts_at),
            Some(ends_at),
            Some(capacity),
            Some(price),
        ) => Ok(NewEvent {
            host_id,
            name,
            description,
            venue,
            starts_at,
            ends_at,
            capacity: as_i32(capacity),
            price,
            max_per_user: max_per_user.map(as_i32),
            waitlist_open: body.waitlist_open.unwrap_or(true),
            on_sale_at,
            waiting_room: body.waiting_room.unwrap_or(false),
            checkout: checkout.checkout.unwrap_or_else(|| "instant".to_owned()),
            hold_secs: checkout.hold_secs.unwrap_or(as_i32(limits.hold_secs.2)),
            payment_provider: checkout
                .payment_provider
                .unwrap_or_else(|| "manual".to_owned()),
            refund_until_hours: checkout.refund_until_hours.unwrap_or(Some(0)),
        }),
        _ => Err(ApiError::field("body", "incomplete event")),
    }
}

/// Validates an update body against the event's current times; returns the event id and the
/// changes. Seat rules that depend on the locked row (capacity ≥ reserved) are checked by the
/// caller inside its transaction.
pub fn validate_update(
    body: &UpdateEventBody,
    current: &crate::events::model::Event,
    limits: Limits,
    now: DateTime<Utc>,
) -> Result<EventChanges, ApiError> {
    let (current_starts, current_ends) = (current.starts_at, current.ends_at);
    let mut c = Check { errors: Vec::new() };
    let checkout = c.checkout(
        body.checkout.as_deref(),
        body.hold_seconds,
        body.payment_provider.as_deref(),
        body.refund_until_hours,
        limits,
    );
    let changes = EventChanges {
        name: c.line("name", body.name.as_deref(), 200, false),
        description: c.text("description", body.description.as_deref(), 5000, false),
        venue: c.line("venue", body.venue.as_deref(), 300, false),
        starts_at: c.time("startsAt", body.starts_at.as_deref(), false),
        ends_at: c.time("endsAt", body.ends_at.as_deref(), false),
        capacity: c
            .int("capacity", body.capacity, 1, limits.max_capacity, false)
            .map(as_i32),
        price: c.int("price", body.price, 0, MAX_PRICE, false),
        max_per_user: match body.max_per_user {
            None => None,
            Some(None) => Some(None),
            Some(v) => Some(
                c.int("maxPerUser", v, 1, limits.max_capacity, false)
                    .map(as_i32),
            ),
        },
        waitlist_open: body.waitlist_open,
        on_sale_at: match &body.on_sale_at {
            None => None,
            Some(None) => Some(None),
            Some(Some(raw)) => c.time("onSaleAt", Some(raw), false).map(Some),
        },
        waiting_room: body.waiting_room,
        checkout: checkout.checkout,
        hold_secs: checkout.hold_secs,
        payment_provider: checkout.payment_provider,
        refund_until_hours: checkout.refund_until_hours,
    };
    if let Some(s) = changes.starts_at
        && s <= now
    {
        c.fail("startsAt", "must be in the future");
    }
    let starts = changes.starts_at.unwrap_or(current_starts);
    let ends = changes.ends_at.unwrap_or(current_ends);
    if (changes.starts_at.is_some() || changes.ends_at.is_some()) && ends <= starts {
        c.fail("endsAt", "must be after startsAt");
    }
    let on_sale = changes.on_sale_at.unwrap_or(current.on_sale_at);
    if (changes.starts_at.is_some() || changes.on_sale_at.is_some())
        && on_sale.is_some_and(|o| o >= starts)
    {
        c.fail("onSaleAt", "must be before startsAt");
    }
    let empty = changes.name.is_none()
        && changes.description.is_none()
        && changes.venue.is_none()
        && changes.starts_at.is_none()
        && changes.ends_at.is_none()
        && changes.capacity.is_none()
        && changes.price.is_none()
        && changes.max_per_user.is_none()
        && changes.waitlist_open.is_none()
        && changes.on_sale_at.is_none()
        && changes.waiting_room.is_none()
        && changes.checkout.is_none()
        && changes.hold_secs.is_none()
        && changes.payment_provider.is_none()
        && changes.refund_until_hours.is_none();
    if empty && c.errors.is_empty() {
        c.fail("body", "no fields to update");
    }
    c.finish()?;
    Ok(changes)
}
