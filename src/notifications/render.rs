//! Email rendering: one template set per notification kind ([`Notice::templates`], files under
//! `src/notifications/templates/<kind>/{subject.txt, body.txt, body.html}`, compiled in).
//! Placeholders are `{{name}}`; every value is HTML-escaped in the HTML body.

use std::collections::HashMap;

use serde_json::Value;

use crate::bookings::domain::Reason;
use crate::notifications::kind::Notice;

pub use crate::mail::Rendered;

/// Minor units as money: `12345` → `123.45`.
pub fn money(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02}", m / 100, m % 100)
}

/// `s` safe in HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fill(template: &str, vars: &HashMap<String, String>, html: bool) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                let value = vars.get(key).map_or("", String::as_str);
                if html {
                    out.push_str(&escape_html(value));
                } else {
                    out.push_str(value);
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Renders the notice `kind` for a recipient called `name` from its outbox `payload`.
pub fn render(kind: Notice, payload: &Value, name: &str) -> Rendered {
    let (subject, text, html) = kind.templates();
    let mut vars: HashMap<String, String> = HashMap::new();
    if let Some(obj) = payload.as_object() {
        for (k, v) in obj {
            vars.insert(k.clone(), text_of(v));
        }
    }
    vars.insert("name".to_owned(), name.to_owned());
    for key in ["cost", "amount"] {
        if let Some(minor) = payload.get(key).and_then(Value::as_i64) {
            vars.insert(key.to_owned(), money(minor));
        }
    }
    if let Some(starts) = payload
        .get("startsAt")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        vars.insert(
            "startsAt".to_owned(),
            starts
                .with_timezone(&chrono::Utc)
                .format("%A %-d %B %Y, %H:%M UTC")
                .to_string(),
        );
    }
    if let Some(reason) = payload
        .get("reason")
        .and_then(Value::as_str)
        .and_then(Reason::parse)
    {
        vars.insert("reason".to_owned(), reason.describe().to_owned());
    }
    let still_waiting = payload
        .get("seatsWaitlisted")
        .or_else(|| payload.get("seatsStillWaiting"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    vars.insert(
        "waitlistLine".to_owned(),
        if still_waiting > 0 {
            format!("The other {still_waiting} seats stay on the waitlist; we will email you if they free up.")
        } else {
            String::new()
        },
    );
    Rendered {
        subject: fill(subject.trim(), &vars, false),
        text: fill(text, &vars, false),
        html: fill(html, &vars, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_renders_without_leftover_placeholders() {
        let payload = json!({
            "eventName": "Rock <Night>", "venue": "Arena", "startsAt": "2030-12-20T19:00:00Z",
            "seats": 2, "seatsRequested": 3, "seatsWaitlisted": 1, "cost": 2400, "bookingId": 7,
            "requestId": "r-1", "position": 4, "reason": "sold_out", "seatsWaited": 2,
            "verifyUrl": "https://t.example/api/user/verify-email?token=a.b&c",
        });
        for &kind in Notice::ALL {
            let r = render(kind, &payload, "Ada & co");
            for part in [&r.subject, &r.text, &r.html] {
                assert!(!part.contains("{{"), "{kind:?}: {part}");
            }
            if kind == Notice::VerifyEmail {
                assert!(r.text.contains("token=a.b&c"), "{}", r.text);
                assert!(r.html.contains("token=a.b&amp;c"), "{}", r.html);
            }
            // Account emails are not about an event.
            if matches!(kind, Notice::VerifyEmail | Notice::AccountExists) {
                continue;
            }
            assert!(
                r.subject.contains("Rock <Night>"),
                "{kind:?}: the subject is plain text"
            );
            assert!(
                r.html.contains("Rock &lt;Night&gt;"),
                "{kind:?}: HTML is escaped"
            );
            assert!(!r.html.contains("<Night>"), "{kind:?}");
        }
    }

    #[test]
    fn wording_fits_each_case() {
        let base =
            json!({ "eventName": "Show", "venue": "Hall", "startsAt": "2030-01-01T20:00:00Z" });
        let mut p = base.clone();
        p["reason"] = json!("per_user_limit");
        p["seatsRequested"] = json!(5);
        let r = render(Notice::BookingRejected, &p, "Ada");
        assert!(r.text.contains("limit of seats per buyer"), "{}", r.text);
        let mut p = base.clone();
        p["cost"] = json!(123_456);
        p["seats"] = json!(3);
        let r = render(Notice::BookingConfirmed, &p, "Ada");
        assert!(r.text.contains("1234.56"), "{}", r.text);
        assert!(
            r.text.contains("Tuesday 1 January 2030, 20:00 UTC"),
            "{}",
            r.text
        );
        let mut p = base;
        p["seatsWaitlisted"] = json!(3);
        p["position"] = json!(2);
        let r = render(Notice::BookingWaitlisted, &p, "Ada");
        assert!(r.text.contains("3 seats, at position 2"), "{}", r.text);
    }

    #[test]
    fn money_formats_minor_units() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(120_000), "1200.00");
    }
}
