//! An SMTP server of a test's own (tests/support/smtp_sink.py on a free port) and what it got.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::TestAppBuilder;

/// An SMTP server of this test's own.
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl SmtpSink {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("atomicseats-smtp-{}", uuid::Uuid::new_v4()));
        let mut s = Self {
            port,
            dir,
            child: None,
        };
        s.resume();
        s
    }

    /// Starts (again) on the same port and directory.
    pub fn resume(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .args([script, &self.port.to_string(), self.dir.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/test installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        self.child = Some(child);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every accepted message as (recipients line, raw text).
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} emails, got {}",
                m.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn with_smtp(builder: TestAppBuilder, port: u16) -> TestAppBuilder {
    builder
        .env("ATOMICSEATS__MAIL__TRANSPORT", "smtp")
        .env("ATOMICSEATS__MAIL__SMTP_HOST", "127.0.0.1")
        .env("ATOMICSEATS__MAIL__SMTP_PORT", &port.to_string())
        .env("ATOMICSEATS__MAIL__SMTP_TLS", "none")
        .env(
            "ATOMICSEATS__MAIL__FROM",
            "AtomicSeats <tickets@atomicseats.test>",
        )
}

/// Decodes quoted-printable soft breaks enough to search the text.
pub fn plain(message: &str) -> String {
    message
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}
