//! Stripe, as its API reference documents it: Checkout Sessions (`POST /v1/checkout/sessions`),
//! Refunds (`POST /v1/refunds`), both form-encoded with `Authorization: Bearer <secret key>` and
//! an `Idempotency-Key`; webhooks signed in the `Stripe-Signature` header
//! (`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`).

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::config::PaymentSettings;

/// Why a webhook was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header, or one without `t=` and `v1=`.
    #[error("missing or malformed Stripe-Signature header")]
    Malformed,
    /// The timestamp is outside the tolerance (a replayed or delayed request).
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    /// No `v1` signature matches.
    #[error("no signature matches the payload")]
    Mismatch,
}

impl SignatureError {
    /// The label of the `payment_webhooks_total` counter.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed_signature",
            Self::Stale => "stale_signature",
            Self::Mismatch => "bad_signature",
        }
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Most `v1` signatures a header may carry (Stripe sends one, two while a secret is rolled):
/// more is refused as malformed before any work.
pub const MAX_SIGNATURES: usize = 8;

/// Verifies a webhook as Stripe documents: the HMAC-SHA256(secret, `"{t}.{payload}"`) is
/// computed once and each `v1` in the header (at most [`MAX_SIGNATURES`]) is compared with it
/// in constant time; `t` must be within `tolerance_secs` of `now` (unix seconds).
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secret: &str,
    tolerance_secs: u64,
    now: i64,
) -> Result<(), SignatureError> {
    use subtle::ConstantTimeEq;
    let header = header.ok_or(SignatureError::Malformed)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => {
                if signatures.len() == MAX_SIGNATURES {
                    return Err(SignatureError::Malformed);
                }
                signatures.extend(hex_decode(v));
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(t) > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let expected = mac.finalize().into_bytes();
    let mut matched = subtle::Choice::from(0);
    for sig in &signatures {
        matched |= expected.as_slice().ct_eq(sig);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header Stripe would send for `payload` at `t` (tests and the local Stripe server).
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// Why a call to Stripe failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Worth retrying (network, timeout, 429, 5xx).
    #[error("transient: {0}")]
    Transient(String),
    /// Stripe refused the request (4xx): retrying the same request fails the same way.
    #[error("refused: {0}")]
    Refused(String),
}

/// A Checkout Session as created.
#[derive(Debug, Clone)]
pub struct Session {
    /// `cs_…`.
    pub id: String,
    /// Where to send the buyer.
    pub url: String,
}

/// The client, when Stripe is configured.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    /// `None` without a secret key (Stripe is then not offered).
    pub fn from_settings(p: &PaymentSettings) -> anyhow::Result<Option<Self>> {
        let Some(key) = p
            .stripe_secret_key
            .as_ref()
            .map(|k| k.expose_secret().to_owned())
            .filter(|k| !k.is_empty())
        else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(p.timeout_ms))
            .build()?;
        Ok(Some(Self {
            http,
            base: p.stripe_api_base.clone(),
            key,
        }))
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<serde_json::Value, CallError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .header("Idempotency-Key", idempotency_key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| CallError::Transient(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| CallError::Transient(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if status.is_success() {
            return Ok(json);
        }
        let message = json["error"]["message"]
            .as_str()
            .unwrap_or("no message")
            .to_owned();
        let why = format!("Stripe answered {status}: {message}");
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 409 {
            Err(CallError::Transient(why))
        } else {
            Err(CallError::Refused(why))
        }
    }

    /// Creates a Checkout Session for one booking (`mode=payment`, one line item).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_session(
        &self,
        booking_id: i64,
        session_ref: i64,
        name: &str,
        amount: i64,
        currency: &str,
        success_url: &str,
        cancel_url: &str,
        idempotency_key: &str,
    ) -> Result<Session, CallError> {
        let form = [
            ("mode", "payment".to_owned()),
            ("line_items[0][quantity]", "1".to_owned()),
            ("line_items[0][price_data][currency]", currency.to_owned()),
            ("line_items[0][price_data][unit_amount]", amount.to_string()),
            (
                "line_items[0][price_data][product_data][name]",
                name.to_owned(),
            ),
            ("client_reference_id", booking_id.to_string()),
            ("metadata[booking_id]", booking_id.to_string()),
            ("metadata[session_ref]", session_ref.to_string()),
            ("success_url", success_url.to_owned()),
            ("cancel_url", cancel_url.to_owned()),
        ];
        let json = self
            .post("/v1/checkout/sessions", &form, idempotency_key)
            .await?;
        match (json["id"].as_str(), json["url"].as_str()) {
            (Some(id), Some(url)) => Ok(Session {
                id: id.to_owned(),
                url: url.to_owned(),
            }),
            _ => Err(CallError::Refused(
                "Stripe's answer has no session id or url".to_owned(),
            )),
        }
    }

    /// Refunds `amount` of a PaymentIntent; returns the refund id (`re_…`).
    pub async fn refund(
        &self,
        payment_intent: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<String, CallError> {
        let form = [
            ("payment_intent", payment_intent.to_owned()),
            ("amount", amount.to_string()),
        ];
        let json = self.post("/v1/refunds", &form, idempotency_key).await?;
        match (json["id"].as_str(), json["status"].as_str()) {
            (Some(id), Some("succeeded" | "pending")) => Ok(id.to_owned()),
            (_, status) => Err(CallError::Refused(format!(
                "Stripe's refund is {}",
                status.unwrap_or("unknown")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_made_with_the_secret_verifies_and_others_do_not() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(body, "whsec_test", 1_000);
        assert_eq!(
            verify(Some(&header), body, "whsec_test", 300, 1_100),
            Ok(())
        );
        assert_eq!(
            verify(Some(&header), body, "whsec_other", 300, 1_100),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                Some(&header),
                br#"{"id":"evt_2"}"#,
                "whsec_test",
                300,
                1_100
            ),
            Err(SignatureError::Mismatch),
            "a changed body"
        );
        assert_eq!(
            verify(Some(&header), body, "whsec_test", 300, 1_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(None, body, "whsec_test", 300, 1_000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(Some("t=1000"), body, "whsec_test", 300, 1_000),
            Err(SignatureError::Malformed)
        );
        // Several v1 (a secret being rolled): any one matching is enough.
        let two = format!("t=1000,v1=00ff,{}", &header["t=1000,".len()..]);
        assert_eq!(verify(Some(&two), body, "whsec_test", 300, 1_000), Ok(()));
        // A header stuffed with signatures is refused before any MAC is computed.
        let stuffed = format!(
            "t=1000,{}{}",
            "v1=,".repeat(MAX_SIGNATURES),
            &header["t=1000,".len()..]
        );
        assert_eq!(
            verify(Some(&stuffed), body, "whsec_test", 300, 1_000),
            Err(SignatureError::Malformed)
        );
    }
}
