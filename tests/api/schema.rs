//! The database enforces the integrity rules by itself, whatever the code does.

use crate::helpers::TestDatabase;

async fn user(client: &tokio_postgres::Client, username: &str, email: &str) -> i64 {
    client
        .query_one(
            "INSERT INTO users (username, name, email, password_hash, role) \
             VALUES ($1, 'Test', $2, 'x', 'host') RETURNING id",
            &[&username, &email],
        )
        .await
        .unwrap()
        .get(0)
}

async fn event(client: &tokio_postgres::Client, host: i64, capacity: i32) -> i64 {
    client
        .query_one(
            "INSERT INTO events (host_id, name, description, venue, starts_at, ends_at, capacity, price) \
             VALUES ($1, 'Show', '', 'Hall', now() + interval '1 day', now() + interval '2 days', $2, 100) \
             RETURNING id",
            &[&host, &capacity],
        )
        .await
        .unwrap()
        .get(0)
}

fn constraint_of(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .and_then(|e| e.constraint())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_database_rejects_an_over_capacity_reserved_seats() {
    let db = TestDatabase::migrated().await;
    let c = db.client().await;
    let host = user(&c, "host1", "host1@example.com").await;
    let ev = event(&c, host, 10).await;

    c.execute(
        "UPDATE events SET reserved_seats = 10 WHERE id = $1",
        &[&ev],
    )
    .await
    .unwrap();
    let over = c
        .execute(
            "UPDATE events SET reserved_seats = 11 WHERE id = $1",
            &[&ev],
        )
        .await
        .unwrap_err();
    let negative = c
        .execute(
            "UPDATE events SET reserved_seats = -1 WHERE id = $1",
            &[&ev],
        )
        .await
        .unwrap_err();
    let shrink = c
        .execute("UPDATE events SET capacity = 9 WHERE id = $1", &[&ev])
        .await
        .unwrap_err();

    for err in [&over, &negative, &shrink] {
        assert_eq!(constraint_of(err), "events_seats_within_capacity", "{err}");
    }
    let reserved: i32 = c
        .query_one("SELECT reserved_seats FROM events WHERE id = $1", &[&ev])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reserved, 10);
}

#[tokio::test]
async fn capacity_and_seat_counts_must_be_positive() {
    let db = TestDatabase::migrated().await;
    let c = db.client().await;
    let host = user(&c, "host1", "host1@example.com").await;
    let zero = c
        .query_one(
            "INSERT INTO events (host_id, name, description, venue, starts_at, ends_at, capacity) \
             VALUES ($1, 'x', '', 'v', now(), now() + interval '1 hour', 0) RETURNING id",
            &[&host],
        )
        .await;
    assert!(zero.is_err());
    let backwards = c
        .query_one(
            "INSERT INTO events (host_id, name, description, venue, starts_at, ends_at, capacity) \
             VALUES ($1, 'x', '', 'v', now(), now() - interval '1 hour', 5) RETURNING id",
            &[&host],
        )
        .await
        .unwrap_err();
    assert_eq!(constraint_of(&backwards), "events_ends_after_start");

    let ev = event(&c, host, 10).await;
    let req = uuid::Uuid::new_v4();
    c.execute(
        "INSERT INTO booking_requests (id, user_id, event_id, seats, status, seats_confirmed, requested_at) \
         VALUES ($1, $2, $3, 2, 'confirmed', 2, now())",
        &[&req, &host, &ev],
    )
    .await
    .unwrap();
    for seats in [0, -1, 11] {
        let bad = c
            .execute(
                "INSERT INTO bookings (request_id, user_id, event_id, seats, cost) VALUES ($1, $2, $3, $4, 0)",
                &[&req, &host, &ev, &seats],
            )
            .await;
        assert!(bad.is_err(), "{seats} seats must be rejected");
    }
}

#[tokio::test]
async fn request_ids_are_unique() {
    let db = TestDatabase::migrated().await;
    let c = db.client().await;
    let host = user(&c, "host1", "host1@example.com").await;
    let ev = event(&c, host, 10).await;
    let req = uuid::Uuid::new_v4();
    let insert = "INSERT INTO booking_requests (id, user_id, event_id, seats, status, seats_confirmed, requested_at) \
                  VALUES ($1, $2, $3, 1, 'confirmed', 1, now())";
    c.execute(insert, &[&req, &host, &ev]).await.unwrap();
    let dup = c.execute(insert, &[&req, &host, &ev]).await.unwrap_err();
    assert_eq!(constraint_of(&dup), "booking_requests_pkey");
}

#[tokio::test]
async fn email_and_username_are_unique_case_insensitively() {
    let db = TestDatabase::migrated().await;
    let c = db.client().await;
    user(&c, "Alice", "Alice@Example.com").await;

    let same_email = c
        .execute(
            "INSERT INTO users (username, name, email, password_hash) VALUES ('bob', 'B', 'alice@example.COM', 'x')",
            &[],
        )
        .await
        .unwrap_err();
    let same_username = c
        .execute(
            "INSERT INTO users (username, name, email, password_hash) VALUES ('ALICE', 'B', 'b@example.com', 'x')",
            &[],
        )
        .await
        .unwrap_err();

    assert_eq!(constraint_of(&same_email), "users_email_lower_key");
    assert_eq!(constraint_of(&same_username), "users_username_lower_key");
}

#[tokio::test]
async fn timestamps_are_timestamptz_everywhere() {
    let db = TestDatabase::migrated().await;
    let c = db.client().await;
    let naive: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_schema = 'public' AND data_type = 'timestamp without time zone' \
             AND table_name <> '__diesel_schema_migrations'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(naive, 0);
}

/// Bookings belong to their request: same user, same event (checked per statement), and they
/// go when the request goes.
#[tokio::test]
async fn bookings_match_their_request() {
    let db = TestDatabase::migrated().await;
    let c = db.client().await;
    let host = user(&c, "host9", "host9@example.com").await;
    let other = user(&c, "other9", "other9@example.com").await;
    let ev = event(&c, host, 10).await;
    let ev2 = event(&c, host, 10).await;
    let request = uuid::Uuid::new_v4();
    c.execute(
        "INSERT INTO booking_requests (id, user_id, event_id, seats, status, seats_confirmed, requested_at) \
         VALUES ($1, $2, $3, 2, 'confirmed', 2, now())",
        &[&request, &host, &ev],
    )
    .await
    .unwrap();
    for (u, e) in [(other, ev), (host, ev2)] {
        let err = c
            .execute(
                "INSERT INTO bookings (request_id, user_id, event_id, seats, cost) VALUES ($1, $2, $3, 2, 200)",
                &[&request, &u, &e],
            )
            .await
            .unwrap_err();
        assert_eq!(constraint_of(&err), "bookings_request_fkey");
    }
    c.execute(
        "INSERT INTO bookings (request_id, user_id, event_id, seats, cost) VALUES ($1, $2, $3, 2, 200)",
        &[&request, &host, &ev],
    )
    .await
    .unwrap();
    c.execute("DELETE FROM events WHERE id = $1", &[&ev])
        .await
        .unwrap();
    let left: i64 = c
        .query_one("SELECT count(*) FROM bookings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "deleting the event cascades through the request");
}

const INSERT_WAITING: &str = "INSERT INTO booking_requests (id, user_id, event_id, seats, status, \
     seats_waitlisted, requested_at, waitlist_seq, price_quoted) VALUES ($1, $2, $3, 3, 'waitlisted', $4, now(), $5, $6)";

/// A waitlist entry is its request row (issue #12: one row per request): a waiting request has a
/// place in its event's queue and a quoted price, a place is taken once per event, the
/// `waitlist` view shows exactly the requests still waiting (with the seats they wait for), a
/// write to the view is refused (it would otherwise delete the request), and the entry goes
/// with its event.
#[tokio::test]
async fn a_waitlist_entry_is_its_request_row() {
    let db = TestDatabase::migrated().await;
    let c = db.client().await;
    let host = user(&c, "host12", "host12@example.com").await;
    let buyer = user(&c, "buyer12", "buyer12@example.com").await;
    let ev = event(&c, host, 10).await;
    let ev2 = event(&c, host, 10).await;
    let (seats, none): (i32, Option<i64>) = (2, None);
    for (place, price, constraint) in [
        (none, Some(100_i64), "booking_requests_waiting_check"),
        (Some(1_i64), none, "booking_requests_waiting_check"),
        (Some(1), Some(-1), "booking_requests_price_quoted_check"),
    ] {
        let err = c
            .execute(
                INSERT_WAITING,
                &[&uuid::Uuid::new_v4(), &buyer, &ev, &seats, &place, &price],
            )
            .await
            .unwrap_err();
        assert_eq!(constraint_of(&err), constraint, "{err}");
    }
    let (first, second, elsewhere) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    let price = Some(100_i64);
    c.execute(
        INSERT_WAITING,
        &[&first, &buyer, &ev, &seats, &Some(7_i64), &price],
    )
    .await
    .unwrap();
    let err = c
        .execute(
            INSERT_WAITING,
            &[&second, &host, &ev, &seats, &Some(7_i64), &price],
        )
        .await
        .unwrap_err();
    assert_eq!(constraint_of(&err), "booking_requests_waitlist_fifo_idx");
    // The same place in another event's queue is another place.
    c.execute(
        INSERT_WAITING,
        &[&elsewhere, &buyer, &ev2, &seats, &Some(7_i64), &price],
    )
    .await
    .unwrap();
    c.execute(
        INSERT_WAITING,
        &[&second, &host, &ev, &seats, &Some(8_i64), &price],
    )
    .await
    .unwrap();

    let queue = |event: i64| {
        let c = &c;
        async move {
            c.query(
                "SELECT id, request_id, user_id, seats, price_quoted FROM waitlist WHERE event_id = $1 ORDER BY id",
                &[&event],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    r.get::<_, uuid::Uuid>(1),
                    r.get::<_, i64>(2),
                    r.get::<_, i32>(3),
                    r.get::<_, i64>(4),
                )
            })
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        queue(ev).await,
        vec![(7, first, buyer, 2, 100), (8, second, host, 2, 100)]
    );
    // The first one's seats served one at a time: it keeps its place while it waits for more,
    // and leaves the queue with its last seat.
    for (confirmed, waiting, status, expected) in [
        (
            1_i32,
            1_i32,
            "partial",
            vec![(7, first, buyer, 1, 100), (8, second, host, 2, 100)],
        ),
        (2, 0, "confirmed", vec![(8, second, host, 2, 100)]),
    ] {
        c.execute(
            "UPDATE booking_requests SET seats_confirmed = $2, seats_waitlisted = $3, status = $4 WHERE id = $1",
            &[&first, &confirmed, &waiting, &status],
        )
        .await
        .unwrap();
        assert_eq!(queue(ev).await, expected, "{status}");
    }

    for write in [
        "DELETE FROM waitlist WHERE request_id = $1",
        "UPDATE waitlist SET seats = 1 WHERE request_id = $1",
    ] {
        let err = c.execute(write, &[&second]).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE),
            "{write}: {err}"
        );
    }
    let err = c
        .execute(
            "INSERT INTO waitlist (request_id, user_id, event_id, seats, price_quoted) VALUES ($1, $2, $3, 2, 100)",
            &[&uuid::Uuid::new_v4(), &buyer, &ev],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE)
    );
    let requests: i64 = c
        .query_one("SELECT count(*) FROM booking_requests", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        requests, 3,
        "a refused write to the view leaves the requests"
    );

    c.execute("DELETE FROM events WHERE id = $1", &[&ev])
        .await
        .unwrap();
    assert!(
        queue(ev).await.is_empty(),
        "the entries go with their event"
    );
    assert_eq!(queue(ev2).await.len(), 1);
}

const INSERT_REQUEST: &str = "INSERT INTO booking_requests (id, user_id, event_id, seats, status, seats_confirmed, requested_at) \
     VALUES ($1, $2, $3, 2, 'confirmed', 2, now())";

/// A request's user and event are checked once per statement (a trigger, not a foreign key per
/// row: issue #12), with the foreign keys' errors and rules: a missing user or event fails the
/// whole statement, a request keeps its user and event, deleting either deletes the request and
/// what hangs off it, and TRUNCATE is refused while requests exist.
#[tokio::test]
async fn a_request_needs_its_user_and_event_and_goes_with_them() {
    let db = TestDatabase::migrated().await;
    let c = db.client().await;
    let host = user(&c, "host10", "host10@example.com").await;
    let buyer = user(&c, "buyer10", "buyer10@example.com").await;
    let ev = event(&c, host, 10).await;
    for (u, e, constraint) in [
        (buyer + 1_000, ev, "booking_requests_user_id_fkey"),
        (buyer, ev + 1_000, "booking_requests_event_id_fkey"),
    ] {
        let err = c
            .execute(INSERT_REQUEST, &[&uuid::Uuid::new_v4(), &u, &e])
            .await
            .unwrap_err();
        assert_eq!(constraint_of(&err), constraint, "{err}");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
        );
    }
    // One bad row fails the whole multi-row statement (the writer's batch insert).
    let err = c
        .execute(
            "INSERT INTO booking_requests (id, user_id, event_id, seats, status, seats_confirmed, requested_at) \
             SELECT gen_random_uuid(), u, $2, 1, 'confirmed', 1, now() FROM unnest(ARRAY[$1::int8, $1::int8 + 1000, $1::int8]) AS u",
            &[&buyer, &ev],
        )
        .await
        .unwrap_err();
    assert_eq!(
        constraint_of(&err),
        "booking_requests_user_id_fkey",
        "{err}"
    );
    let request = uuid::Uuid::new_v4();
    c.execute(INSERT_REQUEST, &[&request, &buyer, &ev])
        .await
        .unwrap();
    c.execute(
        "INSERT INTO bookings (request_id, user_id, event_id, seats, cost) VALUES ($1, $2, $3, 2, 200)",
        &[&request, &buyer, &ev],
    )
    .await
    .unwrap();
    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM booking_requests").await, 1);

    // Keys stay put; TRUNCATE would orphan the request.
    for sql in [
        "UPDATE booking_requests SET user_id = user_id + 1",
        "UPDATE booking_requests SET event_id = event_id + 1",
        "UPDATE booking_requests SET id = gen_random_uuid()",
        "UPDATE bookings SET user_id = user_id + 1",
        "TRUNCATE users CASCADE",
        "TRUNCATE events CASCADE",
        "TRUNCATE booking_requests",
    ] {
        let err = c.execute(sql, &[]).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION),
            "{sql}: {err}"
        );
    }
    assert_eq!(count("SELECT count(*) FROM bookings").await, 1);

    c.execute("DELETE FROM users WHERE id = $1", &[&buyer])
        .await
        .unwrap();
    assert_eq!(count("SELECT count(*) FROM booking_requests").await, 0);
    assert_eq!(
        count("SELECT count(*) FROM bookings").await,
        0,
        "through the request"
    );
}

/// The per-statement check locks the user it found (FOR KEY SHARE, as the foreign key did): a
/// delete of that user waits for the inserting transaction and then takes its request with
/// it; a request for a user whose delete committed first is refused. No orphan either way.
#[tokio::test]
async fn a_user_deleted_while_their_request_is_written_leaves_no_orphan() {
    let db = TestDatabase::migrated().await;
    let (mut writer, deleter) = (db.client().await, db.client().await);
    let host = user(&writer, "host11", "host11@example.com").await;
    let ev = event(&writer, host, 10).await;
    let count_for = |u: i64| {
        let c = &deleter;
        async move {
            c.query_one(
                "SELECT count(*) FROM booking_requests WHERE user_id = $1",
                &[&u],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };

    // The insert first: the delete waits for its commit, then cascades.
    let first = user(&writer, "buyer11", "buyer11@example.com").await;
    let tx = writer.transaction().await.unwrap();
    tx.execute(INSERT_REQUEST, &[&uuid::Uuid::new_v4(), &first, &ev])
        .await
        .unwrap();
    let other = db.client().await;
    let delete = tokio::spawn(async move {
        other
            .execute("DELETE FROM users WHERE id = $1", &[&first])
            .await
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !delete.is_finished(),
        "the delete waits for the writer's lock"
    );
    tx.commit().await.unwrap();
    assert_eq!(delete.await.unwrap(), 1);
    assert_eq!(
        count_for(first).await,
        0,
        "the committed request went with its user"
    );

    // The delete first: the insert waits, then fails.
    let second = user(&writer, "buyer12", "buyer12@example.com").await;
    let mut deleter2 = db.client().await;
    let dtx = deleter2.transaction().await.unwrap();
    dtx.execute("DELETE FROM users WHERE id = $1", &[&second])
        .await
        .unwrap();
    let other = db.client().await;
    let insert = tokio::spawn(async move {
        other
            .execute(INSERT_REQUEST, &[&uuid::Uuid::new_v4(), &second, &ev])
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!insert.is_finished(), "the insert waits for the delete");
    dtx.commit().await.unwrap();
    let err = insert.await.unwrap().unwrap_err();
    assert_eq!(
        constraint_of(&err),
        "booking_requests_user_id_fkey",
        "{err}"
    );
    assert_eq!(count_for(second).await, 0);
}

/// One `engine_advance` call, on one event.
const ADVANCE: &str = "SELECT engine_advance(ARRAY[$1::int8], ARRAY[$2::int4], ARRAY[$3::int8])";

/// An event's reserved seats and version.
async fn state(c: &tokio_postgres::Client, ev: i64) -> (i32, i64) {
    let row = c
        .query_one(
            "SELECT reserved_seats, version FROM events WHERE id = $1",
            &[&ev],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// An advance in its own transaction on its own connection, left to wait in a task.
async fn chained(
    db: &TestDatabase,
    ev: i64,
    version: i64,
    seats: i32,
) -> tokio::task::JoinHandle<Result<(), tokio_postgres::Error>> {
    let mut c = db.client().await;
    tokio::spawn(async move {
        let tx = c.transaction().await?;
        tx.execute(ADVANCE, &[&ev, &seats, &version]).await?;
        tx.commit().await
    })
}

/// A database error's SQLSTATE.
fn code(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_owned())
}

/// `engine_advance` for one event (one `UPDATE … RETURNING`): it waits for the transaction
/// before it and chains on the version that one committed; a stale version is refused with
/// 40001 — not judged by the no-oversell CHECK — and moves nothing; when the transaction before
/// it rolls back, the one chained on it is refused too.
#[tokio::test]
async fn engine_advance_chains_on_the_version_and_refuses_a_stale_one() {
    let db = TestDatabase::migrated().await;
    let mut first = db.client().await;
    let host = user(&first, "host21", "host21@example.com").await;
    let ev = event(&first, host, 10).await;

    // Version 0 → 1 in a transaction held open; the next one (expecting 1) waits, then moves.
    let tx = first.transaction().await.unwrap();
    tx.execute(ADVANCE, &[&ev, &2_i32, &0_i64]).await.unwrap();
    let second = chained(&db, ev, 1, 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "it waits for the transaction before it"
    );
    tx.commit().await.unwrap();
    second.await.unwrap().unwrap();
    let checker = db.client().await;
    assert_eq!(state(&checker, ev).await, (5, 2));

    // A stale version is refused with 40001 even when its seats would overfill the event.
    for seats in [1, 100] {
        let err = checker
            .execute(ADVANCE, &[&ev, &seats, &0_i64])
            .await
            .unwrap_err();
        assert_eq!(code(&err).as_deref(), Some("40001"), "{err}");
    }
    assert_eq!(state(&checker, ev).await, (5, 2), "nothing moved");

    // The transaction before it rolls back: the one chained on it (expecting 3) is refused.
    let tx = first.transaction().await.unwrap();
    tx.execute(ADVANCE, &[&ev, &1_i32, &2_i64]).await.unwrap();
    let after = chained(&db, ev, 3, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!after.is_finished());
    tx.rollback().await.unwrap();
    let err = after.await.unwrap().unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("40001"), "{err}");
    assert_eq!(state(&checker, ev).await, (5, 2));

    // Within capacity the CHECK still guards the count itself.
    let err = checker
        .execute(ADVANCE, &[&ev, &6_i32, &2_i64])
        .await
        .unwrap_err();
    assert_eq!(code(&err).as_deref(), Some("23514"), "{err}");
}

/// Sequential scans of `booking_requests` this backend counted and has not flushed to the
/// statistics views yet.
async fn seq_scans(conn: &mut diesel_async::AsyncPgConnection) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Scans {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT pg_stat_get_xact_numscans('booking_requests'::regclass) AS n")
        .get_result::<Scans>(conn)
        .await
        .unwrap()
        .n
}

/// The writer's lookup of requests that may be stored (every batch in Kafka mode) stays an
/// index lookup as `booking_requests` grows. As a cached prepared statement it kept the generic
/// plan made after its fifth run — on a table of a few pages, a sequential scan — and scanned
/// the whole table on every batch once it had grown (150–270 ms per batch in a Kafka sale).
#[tokio::test]
async fn the_stored_request_lookup_does_not_scan_the_grown_table() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let db = TestDatabase::migrated().await;
    let c = db.client().await;
    let host = user(&c, "host31", "host31@example.com").await;
    let ev = event(&c, host, 10).await;
    let grow = |n: i32| {
        let c = &c;
        async move {
            c.execute(
                "INSERT INTO booking_requests (id, user_id, event_id, seats, status, \
                 seats_confirmed, requested_at) \
                 SELECT gen_random_uuid(), $1, $2, 1, 'confirmed', 1, now() \
                 FROM generate_series(1, $3)",
                &[&host, &ev, &n],
            )
            .await
            .unwrap();
        }
    };
    let probe: Vec<uuid::Uuid> = (0..10).map(|_| uuid::Uuid::new_v4()).collect();
    let mut conn = AsyncPgConnection::establish(&db.url()).await.unwrap();
    // A small table while the lookup runs often enough for a cached statement to go generic.
    grow(500).await;
    for _ in 0..8 {
        atomicseats::bookings::engine::stored_outcomes(&mut conn, &probe)
            .await
            .unwrap();
    }
    grow(20_000).await;
    // The lookup's own sequential scans: the count before and after it, in one transaction.
    diesel::sql_query("BEGIN").execute(&mut conn).await.unwrap();
    let before = seq_scans(&mut conn).await;
    let found = atomicseats::bookings::engine::stored_outcomes(&mut conn, &probe)
        .await
        .unwrap();
    let after = seq_scans(&mut conn).await;
    diesel::sql_query("ROLLBACK")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(found.is_empty());
    assert_eq!(after - before, 0, "the lookup scanned the whole table");
}
