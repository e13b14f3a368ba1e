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
        ticket_type_id -> Nullable<Int8>,
        waitlist_seq -> Nullable<Int8>,
        price_quoted -> Nullable<Int8>,
        admission_rank -> Nullable<Int8>,
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
        ticket_type_id -> Nullable<Int8>,
        expires_at -> Nullable<Timestamptz>,
        paid_at -> Nullable<Timestamptz>,
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
        checkout -> Text,
        hold_secs -> Int4,
        payment_provider -> Text,
        refund_until_hours -> Nullable<Int4>,
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
    outbox_batches (id) {
        id -> Int8,
        created_at -> Timestamptz,
        kinds -> Array<Nullable<Text>>,
        user_ids -> Array<Nullable<Int8>>,
        event_ids -> Array<Nullable<Int8>>,
        payloads -> Array<Nullable<Json>>,
    }
}

diesel::table! {
    payment_sessions (id) {
        id -> Int8,
        booking_id -> Int8,
        event_id -> Int8,
        user_id -> Int8,
        provider -> Text,
        external_id -> Nullable<Text>,
        url -> Nullable<Text>,
        amount -> Int8,
        state -> Text,
        result -> Nullable<Text>,
        created_at -> Timestamptz,
        captured_at -> Nullable<Timestamptz>,
        applied_at -> Nullable<Timestamptz>,
        mismatch -> Bool,
    }
}

diesel::table! {
    payment_webhooks (provider, event_id) {
        provider -> Text,
        event_id -> Text,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    payments (id) {
        id -> Int8,
        event_id -> Int8,
        booking_id -> Int8,
        session_id -> Nullable<Int8>,
        kind -> Text,
        amount -> Int8,
        provider -> Text,
        reference -> Text,
        created_at -> Timestamptz,
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
    ticket_types (id) {
        id -> Int8,
        event_id -> Int8,
        name -> Text,
        price -> Int8,
        quota -> Nullable<Int4>,
        max_per_user -> Nullable<Int4>,
        sales_start -> Nullable<Timestamptz>,
        sales_end -> Nullable<Timestamptz>,
        hidden -> Bool,
        is_default -> Bool,
        sold -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    username_holds (username_lower) {
        username_lower -> Text,
        held_until -> Timestamptz,
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

diesel::joinable!(bookings -> ticket_types (ticket_type_id));
diesel::joinable!(events -> users (host_id));
diesel::joinable!(outbox -> events (event_id));
diesel::joinable!(outbox -> users (user_id));
diesel::joinable!(payment_sessions -> bookings (booking_id));
diesel::joinable!(payment_sessions -> events (event_id));
diesel::joinable!(payment_sessions -> users (user_id));
diesel::joinable!(payments -> bookings (booking_id));
diesel::joinable!(payments -> events (event_id));
diesel::joinable!(payments -> payment_sessions (session_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(ticket_types -> events (event_id));

diesel::allow_tables_to_appear_in_same_query!(
    booking_requests,
    bookings,
    events,
    outbox,
    outbox_batches,
    payment_sessions,
    payment_webhooks,
    payments,
    refresh_tokens,
    ticket_types,
    username_holds,
    users,
);
