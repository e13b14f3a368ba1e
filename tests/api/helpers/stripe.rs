//! A local server that follows Stripe's API reference for the few endpoints AtomicSeats uses
//! (no internet here): `POST /v1/checkout/sessions` and `POST /v1/refunds`, form-encoded, with
//! `Authorization: Bearer <secret key>` and `Idempotency-Key` (a repeated key returns the first
//! answer, as Stripe does), errors as `{"error": {"type", "message"}}`; and the webhook Stripe
//! would send when a session is paid, signed as Stripe documents (`Stripe-Signature:
//! t=…,v1=HMAC-SHA256(secret, "t.payload")`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// The secret key the app is configured with.
pub const SECRET_KEY: &str = "sk_test_local";
/// The webhook signing secret.
pub const WEBHOOK_SECRET: &str = "whsec_local_test";

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Value>,
    idempotent: HashMap<String, Value>,
    refunds: Vec<Value>,
    next: usize,
}

/// The running fake.
#[derive(Clone)]
pub struct LocalStripe {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    /// Refund calls to fail with a 500 before one succeeds.
    pub failing_refunds: Arc<AtomicUsize>,
    /// Refund calls received (failed ones included).
    pub refund_calls: Arc<AtomicUsize>,
    /// Where the hosted checkout page sends the `checkout.session.completed` webhook when the
    /// buyer pays (`http://127.0.0.1:<app port>`); none: the page only marks the session paid.
    webhooks_to: Arc<Mutex<Option<String>>>,
}

fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({ "error": { "type": "invalid_request_error", "message": message } }))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    stripe: web::Data<LocalStripe>,
) -> HttpResponse {
    if let Some(session) = req.path().strip_prefix("/pay/") {
        return hosted_checkout(&req, &stripe, session).await;
    }
    if req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {SECRET_KEY}"))
    {
        return error(401, "Invalid API Key provided");
    }
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(k) = &key
        && let Some(v) = stripe.inner.lock().unwrap().idempotent.get(k)
    {
        return HttpResponse::Ok().json(v);
    }
    let f = form(&body);
    let answer = match req.path() {
        "/v1/checkout/sessions" => {
            let Some(amount) = f
                .get("line_items[0][price_data][unit_amount]")
                .and_then(|a| a.parse::<i64>().ok())
            else {
                return error(
                    400,
                    "Missing required param: line_items[0][price_data][unit_amount].",
                );
            };
            if f.get("mode").map(String::as_str) != Some("payment")
                || !f.contains_key("success_url")
            {
                return error(400, "Missing required param: mode or success_url.");
            }
            let mut inner = stripe.inner.lock().unwrap();
            // Two calls with one key at once make one session, as at Stripe (which answers the
            // second with the first's result, or 409 while the first is running).
            if let Some(v) = key.as_ref().and_then(|k| inner.idempotent.get(k)) {
                return HttpResponse::Ok().json(v);
            }
            inner.next += 1;
            let id = format!("cs_test_{}", inner.next);
            let metadata: serde_json::Map<String, Value> = f
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("metadata[")
                        .and_then(|k| k.strip_suffix(']'))
                        .map(|k| (k.to_owned(), json!(v)))
                })
                .collect();
            let session = json!({
                "id": id,
                "object": "checkout.session",
                "mode": "payment",
                "status": "open",
                "payment_status": "unpaid",
                "amount_total": amount,
                "currency": f.get("line_items[0][price_data][currency]"),
                "client_reference_id": f.get("client_reference_id"),
                "metadata": metadata,
                "payment_intent": null,
                "success_url": f.get("success_url"),
                "cancel_url": f.get("cancel_url"),
                "url": format!("{}/pay/{id}", stripe.base),
            });
            inner.sessions.insert(id, session.clone());
            if let Some(k) = &key {
                inner.idempotent.insert(k.clone(), session.clone());
            }
            session
        }
        "/v1/refunds" => {
            stripe.refund_calls.fetch_add(1, Ordering::SeqCst);
            if stripe
                .failing_refunds
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return error(500, "An unknown error occurred");
            }
            let (Some(pi), Some(amount)) = (
                f.get("payment_intent"),
                f.get("amount").and_then(|a| a.parse::<i64>().ok()),
            ) else {
                return error(400, "Missing required param: payment_intent or amount.");
            };
            let mut inner = stripe.inner.lock().unwrap();
            inner.next += 1;
            let refund = json!({
                "id": format!("re_test_{}", inner.next),
                "object": "refund",
                "status": "succeeded",
                "amount": amount,
                "payment_intent": pi,
            });
            inner.refunds.push(refund.clone());
            refund
        }
        _ => return error(404, "Unrecognized request URL"),
    };
    if let Some(k) = key {
        stripe
            .inner
            .lock()
            .unwrap()
            .idempotent
            .insert(k, answer.clone());
    }
    HttpResponse::Ok().json(answer)
}

/// The page Stripe Checkout shows the buyer at a session's `url`: `GET` shows the amount and a
/// pay button; `POST` pays (the session completes), sends the signed
/// `checkout.session.completed` webhook to the app and returns the buyer to `success_url`.
async fn hosted_checkout(req: &HttpRequest, stripe: &LocalStripe, session: &str) -> HttpResponse {
    let Some(found) = stripe.inner.lock().unwrap().sessions.get(session).cloned() else {
        return error(404, "No such checkout session");
    };
    if req.method() == actix_web::http::Method::GET {
        let amount = found["amount_total"].as_i64().unwrap_or_default();
        return HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(format!(
                "<!doctype html><html lang=\"en\"><head><title>Pay · local Stripe</title></head>\
             <body><main><h1>Local Stripe Checkout</h1><p>Total: {}.{:02} {}</p>\
             <form method=\"post\"><button type=\"submit\" id=\"pay\">Pay</button></form>\
             </main></body></html>",
                amount / 100,
                amount % 100,
                found["currency"]
                    .as_str()
                    .unwrap_or_default()
                    .to_uppercase(),
            ));
    }
    let event = stripe.completed_event(session, &format!("evt_{session}"));
    let target = stripe.webhooks_to.lock().unwrap().clone();
    if let Some(app) = target {
        let t = chrono::Utc::now().timestamp();
        let resp = stripe.deliver(&app, &event, WEBHOOK_SECRET, t).await;
        assert!(resp.status().is_success(), "webhook: {}", resp.status());
    }
    HttpResponse::SeeOther()
        .insert_header(("location", found["success_url"].as_str().unwrap_or("/")))
        .finish()
}

impl LocalStripe {
    /// The hosted checkout page sends its webhooks to the app at `app_url` from now on.
    pub fn send_webhooks_to(&self, app_url: &str) {
        *self.webhooks_to.lock().unwrap() = Some(app_url.to_owned());
    }

    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stripe = LocalStripe {
            base: format!("http://127.0.0.1:{port}"),
            inner: Arc::default(),
            failing_refunds: Arc::default(),
            refund_calls: Arc::default(),
            webhooks_to: Arc::default(),
        };
        let data = web::Data::new(stripe.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handle))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        stripe
    }

    /// The settings that point an app at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ATOMICSEATS__PAYMENTS__STRIPE_API_BASE", self.base.clone()),
            (
                "ATOMICSEATS__PAYMENTS__STRIPE_SECRET_KEY",
                SECRET_KEY.to_owned(),
            ),
            (
                "ATOMICSEATS__PAYMENTS__STRIPE_WEBHOOK_SECRET",
                WEBHOOK_SECRET.to_owned(),
            ),
        ]
    }

    /// Refunds made.
    pub fn refunds(&self) -> Vec<Value> {
        self.inner.lock().unwrap().refunds.clone()
    }

    /// The `checkout.session.completed` event Stripe sends once `session` is paid.
    pub fn completed_event(&self, session: &str, event_id: &str) -> Value {
        let mut inner = self.inner.lock().unwrap();
        let s = inner
            .sessions
            .get_mut(session)
            .expect("a session of this server");
        s["status"] = json!("complete");
        s["payment_status"] = json!("paid");
        s["payment_intent"] = json!(format!("pi_for_{session}"));
        json!({
            "id": event_id,
            "object": "event",
            "type": "checkout.session.completed",
            "data": { "object": s.clone() },
        })
    }

    /// POSTs `event` to the app's webhook, signed with `secret` at `t` (unix seconds).
    pub async fn deliver(
        &self,
        app_url: &str,
        event: &Value,
        secret: &str,
        t: i64,
    ) -> reqwest::Response {
        let body = serde_json::to_vec(event).unwrap();
        reqwest::Client::new()
            .post(format!("{app_url}/api/payments/stripe/webhook"))
            .header("content-type", "application/json")
            .header(
                "stripe-signature",
                atomicseats::payments::stripe::sign(&body, secret, t),
            )
            .body(body)
            .send()
            .await
            .unwrap()
    }
}
