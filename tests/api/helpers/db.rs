//! `TestDatabase`: a template database migrated once per migration set, cloned per test
//! (`CREATE DATABASE … TEMPLATE …`), dropped when the test ends. Tests never share state and
//! never re-run migrations.
//!
//! The server comes from `ATOMICSEATS_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the user must be allowed to create databases.

use std::hash::{Hash, Hasher};
use std::path::Path;

use tokio::sync::OnceCell;

/// The maintenance database tests connect to for `CREATE/DROP DATABASE`.
pub fn admin_url() -> String {
    std::env::var("ATOMICSEATS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `admin_url()` with the database name replaced.
pub fn url_for(db: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("ATOMICSEATS_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{db}"));
    url.to_string()
}

pub async fn admin_client() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL server (is it running?)");
    tokio::spawn(conn);
    client
}

/// The template's name carries a hash of the migrations, so a changed migration gets a fresh
/// template instead of a stale one.
fn template_name() -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut entries: Vec<_> = walk(&dir);
    entries.sort();
    for path in entries {
        path.to_string_lossy().hash(&mut hasher);
        std::fs::read(&path).unwrap_or_default().hash(&mut hasher);
    }
    format!("atomicseats_tmpl_{:016x}", hasher.finish())
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// Creates (once per process, and once per migration set across processes thanks to an
/// advisory lock) the migrated template database.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let client = admin_client().await;
            client
                .execute("SELECT pg_advisory_lock(7428211)", &[])
                .await
                .expect("advisory lock");
            let exists = client
                .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .expect("query pg_database")
                .is_some();
            if !exists {
                let building = format!("{name}_building");
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .await
                    .expect("drop a half-built template database");
                client
                    .batch_execute(&format!("CREATE DATABASE {building}"))
                    .await
                    .expect("create template database");
                atomicseats::db::migrate::run_pending(&url_for(&building))
                    .await
                    .expect("migrate the template database");
                client
                    .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .await
                    .expect("publish the template database");
            }
            client
                .execute("SELECT pg_advisory_unlock(7428211)", &[])
                .await
                .expect("advisory unlock");
            name
        })
        .await
}

/// A private database for one test, dropped on `Drop`.
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    /// A migrated database cloned from the template.
    pub async fn migrated() -> Self {
        let template = template().await;
        Self::create(Some(template)).await
    }

    /// An empty database (no migrations applied), for migration tests.
    pub async fn empty() -> Self {
        Self::create(None).await
    }

    async fn create(template: Option<&str>) -> Self {
        let name = format!("atomicseats_t_{}", uuid::Uuid::new_v4().simple());
        let client = admin_client().await;
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        // Cloning the same template concurrently can briefly fail while another clone holds it.
        let mut attempt = 0;
        loop {
            match client.batch_execute(&sql).await {
                Ok(()) => break,
                Err(e) if attempt < 20 => {
                    attempt += 1;
                    tracing::debug!(error = %e, "retrying CREATE DATABASE");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => panic!("CREATE DATABASE {name}: {e}"),
            }
        }
        Self { name }
    }

    /// Its connection URL.
    pub fn url(&self) -> String {
        url_for(&self.name)
    }

    /// A direct client (for assertions in SQL).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        // Drop runs inside the test's runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}
