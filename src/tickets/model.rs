//! `ticket_types` rows and the queries on them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use crate::bookings::domain::TicketType;
use crate::db::schema::{booking_requests, ticket_types};

/// A `ticket_types` row.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = ticket_types)]
#[serde(rename_all = "camelCase")]
pub struct TicketTypeRow {
    /// Id.
    pub id: i64,
    /// Its event.
    pub event_id: i64,
    /// Name shown to buyers.
    pub name: String,
    /// Price per seat in minor units.
    pub price: i64,
    /// Most seats of this type, if limited.
    pub quota: Option<i32>,
    /// Per-buyer cap for this type.
    pub max_per_user: Option<i32>,
    /// Sales open.
    pub sales_start: Option<DateTime<Utc>>,
    /// Sales close.
    pub sales_end: Option<DateTime<Utc>>,
    /// Not sold any more (kept for the bookings that have it).
    pub hidden: bool,
    /// The type a booking without `ticketTypeId` buys.
    pub is_default: bool,
    /// Seats of this type held or confirmed.
    pub sold: i32,
}

impl TicketTypeRow {
    /// As the allocator sees it.
    pub fn domain(&self) -> TicketType {
        TicketType {
            id: self.id,
            price: self.price,
            quota: self.quota,
            sold: self.sold,
            max_per_user: self.max_per_user,
            sales_start: self.sales_start,
            sales_end: self.sales_end,
            hidden: self.hidden,
            is_default: self.is_default,
        }
    }

    /// The API view (`available`: seats of this type a buyer could still get under its quota,
    /// before the event's own capacity).
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "eventId": self.event_id,
            "name": self.name,
            "price": self.price,
            "quota": self.quota,
            "maxPerUser": self.max_per_user,
            "salesStart": self.sales_start,
            "salesEnd": self.sales_end,
            "hidden": self.hidden,
            "isDefault": self.is_default,
            "sold": self.sold,
            "available": self.quota.map(|q| (q - self.sold).max(0)),
        })
    }
}

/// Fields to write (create: all set; update: the changed ones).
#[derive(Debug, Default, Insertable, AsChangeset)]
#[diesel(table_name = ticket_types)]
pub struct TicketTypeFields {
    /// Event (create only).
    pub event_id: Option<i64>,
    /// Name.
    pub name: Option<String>,
    /// Price.
    pub price: Option<i64>,
    /// Quota (`Some(None)` removes it).
    pub quota: Option<Option<i32>>,
    /// Per-buyer cap.
    pub max_per_user: Option<Option<i32>>,
    /// Sales open.
    pub sales_start: Option<Option<DateTime<Utc>>>,
    /// Sales close.
    pub sales_end: Option<Option<DateTime<Utc>>>,
    /// Hidden.
    pub hidden: Option<bool>,
}

impl TicketTypeFields {
    /// Whether nothing is set (an update with nothing to change).
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.price.is_none()
            && self.quota.is_none()
            && self.max_per_user.is_none()
            && self.sales_start.is_none()
            && self.sales_end.is_none()
            && self.hidden.is_none()
    }
}

/// An event's types in id order (the default first: it is made with the event).
pub async fn of_event(
    conn: &mut AsyncPgConnection,
    event_id: i64,
) -> QueryResult<Vec<TicketTypeRow>> {
    ticket_types::table
        .filter(ticket_types::event_id.eq(event_id))
        .order(ticket_types::id.asc())
        .select(TicketTypeRow::as_select())
        .load(conn)
        .await
}

/// One type of one event.
pub async fn find(
    conn: &mut AsyncPgConnection,
    event_id: i64,
    id: i64,
) -> QueryResult<Option<TicketTypeRow>> {
    ticket_types::table
        .filter(ticket_types::event_id.eq(event_id))
        .filter(ticket_types::id.eq(id))
        .select(TicketTypeRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Inserts a type.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    fields: &TicketTypeFields,
) -> QueryResult<TicketTypeRow> {
    diesel::insert_into(ticket_types::table)
        .values(fields)
        .returning(TicketTypeRow::as_returning())
        .get_result(conn)
        .await
}

/// Applies changes to a type.
pub async fn update(
    conn: &mut AsyncPgConnection,
    id: i64,
    fields: &TicketTypeFields,
) -> QueryResult<TicketTypeRow> {
    diesel::update(ticket_types::table.find(id))
        .set(fields)
        .returning(TicketTypeRow::as_returning())
        .get_result(conn)
        .await
}

/// Whether any request (decided in any way: every booking and waitlist entry has one) was
/// for this type. Deleting is rare: a scan is fine, and no index slows the booking writer.
pub async fn has_sales(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        booking_requests::table.filter(booking_requests::ticket_type_id.eq(id)),
    ))
    .get_result(conn)
    .await
}

/// Deletes a type.
pub async fn delete(conn: &mut AsyncPgConnection, id: i64) -> QueryResult<usize> {
    diesel::delete(ticket_types::table.find(id))
        .execute(conn)
        .await
}
