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

#[cfg(test)]
mod tests {
    use super::*;

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
