//! Views, declared by hand (`diesel print-schema` writes tables only, into `schema.rs`).

diesel::table! {
    /// The waitlist: every request still waiting for seats (`booking_requests` with
    /// `seats_waitlisted > 0`; migration `2026-12-01-000004_waitlist_in_requests`), first in
    /// line first by `id` (the request's place, `waitlist_seq`). Read-only: a write is refused
    /// by the database; change the request row.
    waitlist (id) {
        id -> Int8,
        request_id -> Uuid,
        user_id -> Int8,
        event_id -> Int8,
        seats -> Int4,
        allow_partial -> Bool,
        created_at -> Timestamptz,
        price_quoted -> Int8,
        ticket_type_id -> Nullable<Int8>,
    }
}
