//! Opaque page cursors: `base64url("<tag>:<part>:<part>…")`. The tag names the listing (and
//! version) a cursor belongs to, so a cursor of one listing is refused by another; each listing
//! parses and validates its own parts.

use std::fmt::Display;

use base64ct::{Base64UrlUnpadded, Encoding};

/// Encodes `parts` under `tag`.
pub fn encode(tag: &str, parts: &[&dyn Display]) -> String {
    let mut text = tag.to_owned();
    for part in parts {
        text.push(':');
        text.push_str(&part.to_string());
    }
    Base64UrlUnpadded::encode_string(text.as_bytes())
}

/// The `N` parts of a cursor issued under `tag`; `None` for anything else.
pub fn decode<const N: usize>(raw: &str, tag: &str) -> Option<[String; N]> {
    let text = String::from_utf8(Base64UrlUnpadded::decode_vec(raw).ok()?).ok()?;
    let mut parts = text.split(':');
    if parts.next()? != tag {
        return None;
    }
    let out: Vec<String> = parts.map(str::to_owned).collect();
    out.try_into().ok()
}

/// Earliest instant PostgreSQL's `timestamptz` holds (4714-11-24 BC, Julian day 0), in
/// microseconds since the Unix epoch; its latest (294276 AD) is past what chrono holds.
const PG_MIN_MICROS: i64 = -210_866_803_200_000_000;

/// A cursor's timestamp part: microseconds since the epoch, within what PostgreSQL can compare
/// (a forged value outside it would fail the query, not the parse).
pub fn timestamp(micros: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let micros: i64 = micros.parse().ok()?;
    if micros < PG_MIN_MICROS {
        return None;
    }
    chrono::DateTime::from_timestamp_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_outside_what_postgresql_holds_are_refused() {
        assert!(timestamp("0").is_some());
        assert!(timestamp(&PG_MIN_MICROS.to_string()).is_some());
        assert!(timestamp(&(PG_MIN_MICROS - 1).to_string()).is_none());
        assert!(timestamp("-9223372036854775808").is_none());
        assert!(timestamp("9223372036854775807").is_none());
        assert!(timestamp("1e9").is_none());
    }

    #[test]
    fn round_trips_and_refuses_other_tags_and_counts() {
        let c = encode("x1", &[&42, &"abc"]);
        assert_eq!(
            decode::<2>(&c, "x1"),
            Some(["42".to_owned(), "abc".to_owned()])
        );
        assert_eq!(decode::<2>(&c, "y1"), None);
        assert_eq!(decode::<3>(&c, "x1"), None);
        assert_eq!(decode::<1>(&c, "x1"), None);
        assert_eq!(decode::<1>("!!", "x1"), None);
    }
}
