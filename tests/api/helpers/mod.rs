//! `TestApp`: the real application on port 0 against a private database.

pub mod bookings;
pub mod checkout;
pub mod db;
pub mod events;
pub mod fixtures;
pub mod rooms;
pub mod smtp;
pub mod stripe;
pub mod webdriver;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use atomicseats::config::Settings;
use atomicseats::http::ExtraRoutes;
use atomicseats::state::AppState;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use db::TestDatabase;
#[allow(unused_imports, reason = "used by some test modules only")]
pub use fixtures::{PASSWORD, TestUser};

/// The repository's `config/` directory.
pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// The environment map tests load settings from: `test` environment plus `extra`.
pub fn test_env(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [("ATOMICSEATS_ENV", "test")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    env
}

/// Test settings pointing at `database_url`, with `extra` environment overrides.
pub fn test_settings(database_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars = vec![("ATOMICSEATS__DATABASE__URL", database_url)];
    vars.extend_from_slice(extra);
    Settings::load(&config_dir(), &test_env(&vars)).expect("test settings load")
}

fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        atomicseats::telemetry::init(&atomicseats::config::LogSettings {
            format: atomicseats::config::LogFormat::Pretty,
            level: "debug".to_owned(),
        });
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The `metrics.token` every test app runs with.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// A running application.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// Its private database (dropped with the app).
    pub db: TestDatabase,
    /// The state the app runs with.
    pub state: AppState,
    /// Cancelling it stops the app.
    pub shutdown: CancellationToken,
    /// A client without cookies or redirects.
    pub client: reqwest::Client,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    worker: Option<JoinHandle<anyhow::Result<()>>>,
    background: Vec<JoinHandle<anyhow::Result<()>>>,
}

/// Builds a [`TestApp`] with overrides.
#[derive(Default)]
pub struct TestAppBuilder {
    env: Vec<(String, String)>,
    extra_routes: Option<ExtraRoutes>,
    without_relay: bool,
    without_worker: bool,
}

impl TestAppBuilder {
    /// Adds an environment override (`ATOMICSEATS__SECTION__KEY`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Registers extra routes (test probes).
    pub fn routes(
        mut self,
        f: impl Fn(&mut actix_web::web::ServiceConfig) + Send + Sync + 'static,
    ) -> Self {
        self.extra_routes = Some(Arc::new(f));
        self
    }

    /// Does not run the outbox relay (to show what reconciliation delivers on its own).
    pub fn without_relay(mut self) -> Self {
        self.without_relay = true;
        self
    }

    /// Does not run the booking worker (requests stay queued).
    pub fn without_worker(mut self) -> Self {
        self.without_worker = true;
        self
    }

    /// Creates the database and starts the app.
    pub async fn spawn(self) -> TestApp {
        init_tracing();
        let db = TestDatabase::migrated().await;
        let url = db.url();
        let mut extra: Vec<(&str, &str)> = vec![("ATOMICSEATS__METRICS__TOKEN", METRICS_TOKEN)];
        extra.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let settings = test_settings(&url, &extra);
        let state = atomicseats::app::build_state(settings, "test").expect("state");
        let app = atomicseats::app::server(state.clone(), self.extra_routes).expect("bind");
        let address = format!("http://127.0.0.1:{}", app.port());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let worker = if self.without_worker {
            tokio::spawn(async { anyhow::Ok(()) })
        } else {
            tokio::spawn(atomicseats::bookings::run_worker(
                state.clone(),
                shutdown.clone(),
            ))
        };
        let mut background = vec![tokio::spawn(atomicseats::notifications::worker::run(
            state.clone(),
            shutdown.clone(),
        ))];
        if !self.without_relay {
            background.push(tokio::spawn(atomicseats::notifications::worker::run_relay(
                state.clone(),
                shutdown.clone(),
            )));
        }
        TestApp {
            address,
            db,
            state,
            shutdown,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            server: Some(server),
            worker: Some(worker),
            background,
        }
    }
}

impl TestApp {
    /// The app with test defaults.
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    /// A builder for overrides.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// `GET /metrics` on the public port with the test's metrics token, as text.
    pub async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("metrics");
        assert_eq!(resp.status(), 200, "GET /metrics");
        resp.text().await.expect("metrics body")
    }

    /// Whether the metric `name` has a sample other than 0 in `GET /metrics`.
    pub async fn counted(&self, name: &str) -> bool {
        self.metrics()
            .await
            .lines()
            .any(|l| l.starts_with(name) && !l.ends_with(" 0"))
    }

    /// `address + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Ends the notification worker at once (its queue's receiving end goes with it): what
    /// the relay publishes after this is refused.
    pub async fn kill_notifier(&mut self) {
        let notifier = self.background.remove(0);
        notifier.abort();
        let _ = notifier.await;
    }

    /// Stops the server and the worker and waits for both to finish.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(handle) = self.worker.take() {
            handle.await??;
        }
        for handle in self.background.drain(..) {
            handle.await??;
        }
        match self.server.take() {
            Some(handle) => handle.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Reads a response as JSON, asserting the status first (with the body in the message).
pub async fn json_with_status(resp: reqwest::Response, status: u16) -> serde_json::Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}
