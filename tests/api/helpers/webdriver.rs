//! A real browser for the page tests: headless Chromium through ChromeDriver, spoken to over
//! the W3C WebDriver protocol (plain JSON over HTTP, the few commands the tests use), plus
//! axe-core run in the page and screenshots at desktop and phone width.
//!
//! `scripts/test` installs and starts them (`ensure_browser`) and sets
//! `ATOMICSEATS_WEBDRIVER_URL` and `ATOMICSEATS_AXE_JS`. Screenshots go to
//! `target/screenshots/<test>/<name>-{desktop,phone}.png`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One browser session (closed by [`Browser::close`], or on drop).
pub struct Browser {
    http: reqwest::Client,
    session: String,
    base: String,
    shots: PathBuf,
    closed: bool,
}

fn webdriver_url() -> String {
    std::env::var("ATOMICSEATS_WEBDRIVER_URL").expect(
        "ATOMICSEATS_WEBDRIVER_URL is not set: run the tests with scripts/test (it starts \
         ChromeDriver), or start `chromedriver --port=9515` and set it to http://127.0.0.1:9515",
    )
}

impl Browser {
    /// A new headless Chromium window (1280 × 900) whose screenshots go to a folder named
    /// after `test`.
    pub async fn start(test: &str) -> Self {
        Self::start_with(test, true).await
    }

    /// The same, with JavaScript on or off.
    pub async fn start_with(test: &str, javascript: bool) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = webdriver_url();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en"],
                "prefs": {
                    "profile.managed_default_content_settings.javascript":
                        if javascript { 1 } else { 2 },
                },
            },
        }}});
        let resp: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("ChromeDriver answers")
            .json()
            .await
            .unwrap();
        let session = resp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {resp}"))
            .to_owned();
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/screenshots")
            .join(test);
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            http,
            session,
            base,
            shots,
            closed: false,
        }
    }

    /// Ends the session (the browser quits).
    pub async fn close(mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
        self.closed = true;
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp: Value = req.send().await.unwrap().json().await.unwrap();
        if let Some(err) = resp["value"].get("error") {
            panic!("WebDriver {path}: {err} {}", resp["value"]["message"]);
        }
        resp["value"].clone()
    }

    /// Opens a URL and waits for the page.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The rendered page's HTML.
    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    /// Types `text` into the field `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Clicks `css` (a submit button: waits for the next page).
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Fills the login form on the page with `login` and `password` and sends it.
    pub async fn log_in(&self, login: &str, password: &str) {
        self.fill("#login", login).await;
        self.fill("#password", password).await;
        self.click("form.stack button[type=submit]").await;
    }

    /// Runs the browser as if it were in time zone `zone` (an IANA name), from the next page
    /// on (Chrome's DevTools command through ChromeDriver).
    pub async fn time_zone(&self, zone: &str) {
        self.call(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(
                json!({ "cmd": "Emulation.setTimezoneOverride", "params": { "timezoneId": zone } }),
            ),
        )
        .await;
    }

    /// Runs `script` (its `return` value; a promise is awaited).
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Waits until the page's text contains `text` (panics after 10 s, with the page).
    pub async fn wait_for_text(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = self
                .run(
                    "return document.body ? document.body.innerText : '';",
                    json!([]),
                )
                .await;
            if body.as_str().unwrap_or_default().contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} not on {}: {body}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Saves the page at desktop width (1280) and phone width (390) as `<name>-desktop.png`
    /// and `<name>-phone.png`, and checks the phone layout does not scroll sideways.
    pub async fn screenshots(&self, name: &str) {
        for (label, width, height) in [("desktop", 1280, 900), ("phone", 390, 844)] {
            self.resize(width, height).await;
            if label == "phone" {
                let overflow = self
                    .run(
                        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                        json!([]),
                    )
                    .await;
                assert!(
                    overflow.as_i64().unwrap_or(0) <= 0,
                    "{name}: the page scrolls sideways at 390 px ({overflow} px)"
                );
            }
            let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
            let bytes = Base64::decode_vec(png.as_str().unwrap()).unwrap();
            std::fs::write(self.shots.join(format!("{name}-{label}.png")), bytes).unwrap();
        }
        self.resize(1280, 900).await;
    }

    /// Runs axe-core in the page; panics listing every serious or critical violation.
    pub async fn assert_accessible(&self, name: &str) {
        let path = std::env::var("ATOMICSEATS_AXE_JS").expect(
            "ATOMICSEATS_AXE_JS is not set: run the tests with scripts/test (it installs axe-core)",
        );
        let axe = std::fs::read_to_string(&path).unwrap();
        // WebDriver scripts run outside the page's Content-Security-Policy.
        self.run(&axe, json!([])).await;
        let result = self
            .run(
                "return axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations.map(v => ({ id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')) })));",
                json!([]),
            )
            .await;
        let bad: Vec<&Value> = result
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(bad.is_empty(), "{name}: axe-core found {bad:#?}");
    }
}

impl Drop for Browser {
    /// A test that failed before `close`: quit the browser anyway (blocking, best effort).
    fn drop(&mut self) {
        if !self.closed {
            let url = format!("{}/session/{}", self.base, self.session);
            let _ = std::process::Command::new("curl")
                .args(["-s", "-m", "5", "-X", "DELETE", &url])
                .output();
        }
    }
}
