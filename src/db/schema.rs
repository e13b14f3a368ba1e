// @generated automatically by Diesel CLI.

diesel::table! {
    booking_requests (id) {
        id -> Uuid,
        user_id -> Int8,
        event_id -> Int8,
        seats -> Int4,
        allow_partial -> Bool,
        join_waitlist -> Bool,
        idempotency_key -> Nullable<Text>,
        status -> Text,
        seats_confirmed -> Int4,
        seats_waitlisted -> Int4,
        reject_reason -> Nullable<Text>,
        cost -> Int8,
        requested_at -> Timestamptz,
        decided_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    bookings (id) {
        id -> Int8,
        request_id -> Uuid,
        user_id -> Int8,
        event_id -> Int8,
        seats -> Int4,
        cost -> Int8,
        status -> Text,
        created_at -> Timestamptz,
        cancelled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    events (id) {
        id -> Int8,
        host_id -> Int8,
        name -> Text,
        description -> Text,
        venue -> Text,
        starts_at -> Timestamptz,
        ends_at -> Timestamptz,
        capacity -> Int4,
        reserved_seats -> Int4,
        price -> Int8,
        max_per_user -> Nullable<Int4>,
        waitlist_open -> Bool,
        status -> Text,
        cancelled_at -> Nullable<Timestamptz>,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        on_sale_at -> Nullable<Timestamptz>,
        waiting_room -> Bool,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        kind -> Text,
        user_id -> Nullable<Int8>,
        event_id -> Nullable<Int8>,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
        next_attempt_at -> Timestamptz,
        claimed_until -> Nullable<Timestamptz>,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        user_id -> Int8,
        family_id -> Uuid,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        rotated_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        username -> Text,
        name -> Text,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        email_verified_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    waitlist (id) {
        id -> Int8,
        request_id -> Uuid,
        user_id -> Int8,
        event_id -> Int8,
        seats -> Int4,
        allow_partial -> Bool,
        created_at -> Timestamptz,
        price_quoted -> Int8,
    }
}

diesel::joinable!(booking_requests -> events (event_id));
diesel::joinable!(booking_requests -> users (user_id));
diesel::joinable!(events -> users (host_id));
diesel::joinable!(outbox -> events (event_id));
diesel::joinable!(outbox -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    booking_requests,
    bookings,
    events,
    outbox,
    refresh_tokens,
    users,
    waitlist,
);
