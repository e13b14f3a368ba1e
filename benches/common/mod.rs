//! What the benchmarks share: the database, the server process, a minimal HTTP/1.1 client
//! over keep-alive connections, and the box's own figures.

#![allow(dead_code, reason = "each benchmark uses part of it")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The token secret every benchmark server runs with (tokens are minted by the benchmark).
pub const SECRET: &str = "benchmark-secret-benchmark-secret-0123";

pub fn admin_url() -> String {
    std::env::var("ATOMICSEATS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn db_url(name: &str) -> String {
    let mut u = url::Url::parse(&admin_url()).expect("database URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

pub async fn pg(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL");
    tokio::spawn(conn);
    c
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, stopped with SIGTERM (and timed) when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        // A graceful stop right after the load is part of what is measured (operations #17):
        // how long SIGTERM takes and whether the exit is clean.
        let asked = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let status = self.0.wait();
        println!(
            "  server stopped {:.1} s after SIGTERM, {}",
            asked.elapsed().as_secs_f64(),
            match status {
                Ok(s) if s.success() => "exit 0".to_owned(),
                Ok(s) => format!("NOT CLEAN: {s}"),
                Err(e) => format!("NOT CLEAN: {e}"),
            }
        );
    }
}

/// Starts `bin all` with `config` and `envs`.
pub fn start(bin: &str, config: &str, envs: &[(String, String)]) -> Server {
    start_role(bin, "all", config, envs)
}

/// Starts `bin <role>` with `config` and `envs`.
pub fn start_role(bin: &str, role: &str, config: &str, envs: &[(String, String)]) -> Server {
    let mut cmd = Command::new(bin);
    cmd.arg(role)
        .env("ATOMICSEATS_CONFIG_DIR", config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Server(cmd.spawn().expect("start atomicseats"))
}

/// Polls `GET /ready` on `port` until `done` accepts the raw response (at most 60 s, then
/// panics with `what`); returns how long it took.
async fn poll_ready(
    port: u16,
    every: Duration,
    what: &str,
    done: impl Fn(&[u8]) -> bool,
) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
            let _ = s
                .write_all(b"GET /ready HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            if done(&buf) {
                return started.elapsed();
            }
        }
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(every).await;
    }
}

/// Waits until `GET /ready` answers 200.
pub async fn wait_ready(port: u16) {
    poll_ready(
        port,
        Duration::from_millis(100),
        "server did not become ready",
        |r| r.starts_with(b"HTTP/1.1 200"),
    )
    .await;
}

/// Waits until the process whose internal listener is on `port` reports owning booking
/// partitions (`GET /ready` there lists `bookingPartitions`): a Kafka worker's consumer-group
/// join, a one-time cost at start-up. Returns how long it took.
pub async fn wait_partitions(port: u16) -> Duration {
    poll_ready(
        port,
        Duration::from_millis(50),
        "the worker owned no partition",
        |r| String::from_utf8_lossy(r).contains("\"partition\""),
    )
    .await
}

/// Reads one HTTP/1.1 response (status and body length from Content-Length) off a keep-alive
/// connection; returns the status.
pub async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap_or("");
            let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut tmp).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(&tmp[..n]);
            }
            return Ok(status);
        }
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// The server's peak resident memory so far (VmHWM), in MiB.
pub fn peak_rss_mib(server: &Server) -> f64 {
    std::fs::read_to_string(format!("/proc/{}/status", server.0.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The `p` quantile of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// The body of the response [`read_response`] left in `buf`.
pub fn body_of(buf: &[u8]) -> &[u8] {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[][..], |end| &buf[end + 4..])
}

/// A header of the response [`read_response`] left in `buf`.
pub fn header_of<'a>(buf: &'a [u8], name: &str) -> Option<&'a str> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    std::str::from_utf8(&buf[..end])
        .ok()?
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    let ut: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let st: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    (ut + st) as f64 / 100.0
}

/// Where the box's CPU time went, read at one instant: the whole box (`/proc/stat`: busy,
/// of which stolen by the hypervisor, and all), the given server processes, this process
/// (the load generator) and PostgreSQL's processes. Two readings give a window's split.
#[derive(Clone, Copy, Default)]
pub struct CpuSplit {
    pub busy: f64,
    pub steal: f64,
    pub total: f64,
    pub servers: f64,
    pub load: f64,
    pub postgres: f64,
}

impl CpuSplit {
    pub fn read(servers: &[u32]) -> Self {
        let tick = 100.0; // USER_HZ
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // cpu  user nice system idle iowait irq softirq steal …
        let f: Vec<f64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().unwrap_or(0.0))
            .collect();
        let get = |i: usize| f.get(i).copied().unwrap_or(0.0) / tick;
        let total: f64 = (0..8).map(get).sum();
        Self {
            busy: total - get(3) - get(4),
            steal: get(7),
            total,
            servers: servers.iter().map(|p| cpu_secs(*p)).sum(),
            load: cpu_secs(std::process::id()),
            postgres: processes_named_cpu_secs("(postgres"),
        }
    }

    /// `later − self`, per unit of work, in microseconds of CPU, as one line; and how busy the
    /// box's cores were over the window.
    pub fn describe(&self, later: &Self, units: usize, what: &str) -> String {
        let per = |a: f64, b: f64| (b - a) / units.max(1) as f64 * 1e6;
        let (busy, servers, load, pg) = (
            per(self.busy, later.busy),
            per(self.servers, later.servers),
            per(self.load, later.load),
            per(self.postgres, later.postgres),
        );
        let total = later.total - self.total;
        format!(
            "CPU per {what}: {busy:.1} µs busy on the box = server {servers:.1} + load generator {load:.1} + PostgreSQL {pg:.1} + other {other:.1} µs | the box's cores busy {util:.0}% (stolen {steal:.1}%)",
            other = busy - servers - load - pg,
            util = (later.busy - self.busy) / total.max(1e-9) * 100.0,
            steal = (later.steal - self.steal) / total.max(1e-9) * 100.0,
        )
    }
}

/// CPU seconds used so far by every process whose `/proc/<pid>/stat` name starts with `prefix`
/// (e.g. `"(postgres"`).
pub fn processes_named_cpu_secs(prefix: &str) -> f64 {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        if !stat[..close].contains(prefix) {
            continue;
        }
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        total += cpu_secs(pid);
    }
    total
}

/// Resident memory of process `pid` now (VmRSS), in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The box: cores, CPU model, open-file limit.
pub fn describe_box() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("?", |m| m.trim_start_matches([' ', '\t', ':']));
    let nofile = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| l.split_whitespace().nth(3).unwrap_or("?").to_owned())
        })
        .unwrap_or_else(|| "?".to_owned());
    format!("{cores} cores ({model}), open files per process ≤ {nofile}")
}

/// The box's cost of one durable one-row commit (what bounds one transaction per request): a
/// logged table, so each commit waits for its WAL flush (a temporary table's commit does not).
pub async fn one_row_commit(url: &str) -> Duration {
    let c = pg(url).await;
    let table = format!("commit_probe_{}", std::process::id());
    c.batch_execute(&format!("CREATE TABLE {table} (id int)"))
        .await
        .unwrap();
    let n = 300;
    let insert = format!("INSERT INTO {table} VALUES ($1)");
    let started = Instant::now();
    for i in 0..n {
        c.execute(&insert, &[&i]).await.unwrap();
    }
    let each = started.elapsed() / n as u32;
    c.batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
    each
}

/// A fresh database `<prefix>_<pid>` migrated by this build's binary: the admin connection
/// (to drop it afterwards), its name and its URL.
pub async fn migrated_database(prefix: &str) -> (tokio_postgres::Client, String, String) {
    let db = format!("{prefix}_{}", std::process::id());
    let admin = pg(&admin_url()).await;
    for sql in [
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        format!("CREATE DATABASE {db}"),
    ] {
        admin.batch_execute(&sql).await.unwrap();
    }
    let url = db_url(&db);
    let status = Command::new(env!("CARGO_BIN_EXE_atomicseats"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env(
            "ATOMICSEATS_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "migrate failed");
    (admin, db, url)
}
