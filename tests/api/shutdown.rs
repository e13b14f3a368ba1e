//! Graceful shutdown: an in-flight request finishes; new connections are refused; `all` fails as
//! one when a role fails.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use atomicseats::roles::{Role, run_all};
use tokio_util::sync::CancellationToken;

use crate::helpers::TestApp;

async fn slow() -> HttpResponse {
    tokio::time::sleep(Duration::from_millis(800)).await;
    HttpResponse::Ok().json(serde_json::json!({ "done": true }))
}

#[tokio::test]
async fn shutdown_finishes_an_in_flight_request() {
    let mut app = TestApp::builder()
        .routes(|cfg| {
            cfg.route("/probe/slow", web::get().to(slow));
        })
        .spawn()
        .await;
    let client = app.client.clone();
    let url = app.url("/probe/slow");
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Act: shut down while the request is being handled.
    app.stop().await.expect("graceful stop");

    let resp = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completed");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["done"],
        true
    );
    let after = reqwest::Client::new()
        .get(app.url("/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "the server no longer accepts connections");
}

#[tokio::test]
async fn when_one_role_fails_all_stops_the_others_and_names_it() {
    let token = CancellationToken::new();
    let stopped = CancellationToken::new();
    let observer = stopped.clone();
    let roles = vec![
        Role {
            name: "healthy",
            future: Box::pin({
                let token = token.clone();
                async move {
                    token.cancelled().await;
                    observer.cancel();
                    Ok(())
                }
            }),
        },
        Role {
            name: "broken",
            future: Box::pin(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                anyhow::bail!("disk on fire")
            }),
        },
    ];

    let err = run_all(roles, token.clone(), Duration::from_secs(5))
        .await
        .unwrap_err();

    assert!(err.to_string().contains("broken: disk on fire"), "{err}");
    assert!(token.is_cancelled());
    assert!(stopped.is_cancelled(), "the healthy role was told to stop");
}

#[tokio::test]
async fn a_role_that_exits_early_counts_as_a_failure() {
    let token = CancellationToken::new();
    let roles = vec![Role {
        name: "quitter",
        future: Box::pin(async { Ok(()) }),
    }];
    let err = run_all(roles, token, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("quitter: exited unexpectedly"),
        "{err}"
    );
}

#[tokio::test]
async fn roles_that_ignore_shutdown_are_aborted_after_the_drain_timeout() {
    let token = CancellationToken::new();
    token.cancel();
    let roles = vec![Role {
        name: "stubborn",
        future: Box::pin(async { std::future::pending::<anyhow::Result<()>>().await }),
    }];
    let started = std::time::Instant::now();
    let err = run_all(roles, token, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("drain timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
