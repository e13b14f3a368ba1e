//! Strict query-string parameters shared by the listing endpoints: a value that does not parse
//! is a 400 naming the parameter, never silently replaced by a default (the seed's habit).

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::FieldError;

/// `limit`: an integer in `1..=max`.
pub fn limit(field: &str, raw: &str, max: usize, errors: &mut Vec<FieldError>) -> Option<usize> {
    match raw.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Some(n),
        _ => {
            errors.push(FieldError::new(
                field,
                format!("must be an integer from 1 to {max}"),
            ));
            None
        }
    }
}

/// A positive id.
pub fn id(field: &str, raw: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    match raw.parse::<i64>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            errors.push(FieldError::new(field, "must be a positive integer"));
            None
        }
    }
}

/// Which end of a range a bare date stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `from`: the first instant of the day.
    Start,
    /// `to`: the last instant of the day (the range is inclusive).
    End,
}

/// An ISO-8601 instant: RFC 3339 (`2026-11-26T10:00:00Z`, `...+01:00`) or a bare date
/// (`2026-11-26`, UTC, a whole day). A `+` that form-decoding turned into a space is restored.
pub fn instant(
    field: &str,
    raw: &str,
    bound: Bound,
    errors: &mut Vec<FieldError>,
) -> Option<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(raw)
        .or_else(|e| {
            if raw.contains(' ') {
                DateTime::parse_from_rfc3339(&raw.replace(' ', "+"))
            } else {
                Err(e)
            }
        })
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()?;
            let time = match bound {
                Bound::Start => day.and_hms_opt(0, 0, 0)?,
                Bound::End => day.and_hms_micro_opt(23, 59, 59, 999_999)?,
            };
            Some(time.and_utc())
        });
    if parsed.is_none() {
        errors.push(FieldError::new(
            field,
            "must be an ISO-8601 date-time (2026-11-26T10:00:00Z) or date (2026-11-26)",
        ));
    }
    parsed
}

/// `from` or `to` of an inclusive time range into the matching end; `false` for any other key.
pub fn range_param(
    key: &str,
    value: &str,
    from: &mut Option<DateTime<Utc>>,
    to: &mut Option<DateTime<Utc>>,
    errors: &mut Vec<FieldError>,
) -> bool {
    match key {
        "from" => *from = instant("from", value, Bound::Start, errors),
        "to" => *to = instant("to", value, Bound::End, errors),
        _ => return false,
    }
    true
}

/// `from` ≤ `to`, when both are given.
pub fn check_range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    errors: &mut Vec<FieldError>,
) {
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        errors.push(FieldError::new("to", "must not be before from"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_accept_rfc3339_dates_and_a_decoded_plus() {
        let mut errors = Vec::new();
        let a = instant(
            "from",
            "2026-11-26T10:00:00+01:00",
            Bound::Start,
            &mut errors,
        );
        let b = instant(
            "from",
            "2026-11-26T10:00:00 01:00",
            Bound::Start,
            &mut errors,
        );
        assert_eq!(a, b);
        assert_eq!(
            a.map(|t| t.to_rfc3339()),
            Some("2026-11-26T09:00:00+00:00".into())
        );
        let end = instant("to", "2026-11-26", Bound::End, &mut errors);
        assert_eq!(
            end.map(|t| t.to_rfc3339()),
            Some("2026-11-26T23:59:59.999999+00:00".into())
        );
        assert!(errors.is_empty());
        assert!(instant("to", "yesterday", Bound::End, &mut errors).is_none());
        assert_eq!(errors[0].field, "to");
    }

    #[test]
    fn limits_are_strict() {
        let mut errors = Vec::new();
        assert_eq!(limit("limit", "7", 100, &mut errors), Some(7));
        for bad in ["0", "101", "-1", "abc", "1.5", ""] {
            assert_eq!(limit("limit", bad, 100, &mut errors), None, "{bad}");
        }
        assert_eq!(errors.len(), 6);
    }
}
