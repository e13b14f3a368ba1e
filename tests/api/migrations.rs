//! Migrations apply and revert cleanly on an empty database.

use atomicseats::db::migrate;

use crate::helpers::TestDatabase;

async fn tables(db: &TestDatabase) -> Vec<String> {
    let client = db.client().await;
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn migrations_apply_revert_and_reapply() {
    let db = TestDatabase::empty().await;

    let applied = migrate::run_pending(&db.url()).await.unwrap();
    assert!(applied.len() >= 2, "{applied:?}");
    assert_eq!(
        tables(&db).await,
        [
            "booking_requests",
            "bookings",
            "events",
            "outbox",
            "outbox_all",
            "outbox_batches",
            "payment_sessions",
            "payment_webhooks",
            "payments",
            "refresh_tokens",
            "ticket_types",
            "username_holds",
            "users",
            "waitlist"
        ]
    );
    // The writer's notification batches compress with lz4 where the server has it.
    let row = db
        .client()
        .await
        .query_one(
            "SELECT (SELECT 'lz4' = ANY(enumvals) FROM pg_settings \
                      WHERE name = 'default_toast_compression'), \
                    (SELECT attcompression::text FROM pg_attribute \
                      WHERE attrelid = 'outbox_batches'::regclass AND attname = 'payloads')",
            &[],
        )
        .await
        .unwrap();
    let (has_lz4, method): (bool, String) = (row.get(0), row.get(1));
    assert_eq!(
        method,
        if has_lz4 { "l" } else { "" },
        "outbox_batches.payloads"
    );
    assert!(migrate::pending(&db.url()).await.unwrap().is_empty());
    assert!(
        migrate::run_pending(&db.url()).await.unwrap().is_empty(),
        "idempotent"
    );

    let reverted = migrate::revert_all(&db.url()).await.unwrap();
    assert_eq!(reverted.len(), applied.len());
    assert!(
        tables(&db).await.is_empty(),
        "down migrations leave nothing behind"
    );

    let again = migrate::run_pending(&db.url()).await.unwrap();
    assert_eq!(again.len(), applied.len());
}
