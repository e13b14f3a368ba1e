//! Parsed account fields: a value of these types has passed validation ("parse, don't
//! validate"). Each parser returns the message the API shows for the field.

use serde::{Deserialize, Serialize};

/// What a user may do. Stored as text in `users.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Books tickets.
    Guest,
    /// Also publishes and manages their own events.
    Host,
    /// Manages everything.
    Admin,
}

impl Role {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guest => "guest",
            Self::Host => "host",
            Self::Admin => "admin",
        }
    }

    /// Parses the stored and wire name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "guest" => Ok(Self::Guest),
            "host" => Ok(Self::Host),
            "admin" => Ok(Self::Admin),
            _ => Err("must be one of guest, host, admin".to_owned()),
        }
    }
}

/// Username rules: 3–32 characters from `A–Z a–z 0–9 _ . -`, starting with a letter or digit.
/// Without `@`, a login identifier is unambiguous: it is an email exactly when it contains `@`.
pub fn parse_username(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let len = s.chars().count();
    if !(3..=32).contains(&len) {
        return Err("must be 3 to 32 characters".to_owned());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err("may contain only letters, digits, `_`, `.` and `-`".to_owned());
    }
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or a digit".to_owned());
    }
    Ok(s.to_owned())
}

/// Display name: 1–100 characters after trimming, no control characters.
pub fn parse_name(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let len = s.chars().count();
    if len == 0 {
        return Err("must not be empty".to_owned());
    }
    if len > 100 {
        return Err("must be at most 100 characters".to_owned());
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(s.to_owned())
}

/// Email: `local@domain.tld`, at most 254 characters, no spaces or control characters. Stored
/// as given (trimmed); compared case-insensitively.
pub fn parse_email(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let invalid = || Err("must be an email address like name@example.com".to_owned());
    if s.len() > 254 {
        return Err("must be at most 254 characters".to_owned());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid();
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return invalid();
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
        return invalid();
    }
    Ok(s.to_owned())
}

/// Password policy: 8 to 72 bytes (bcrypt ignores anything past 72 bytes, so longer passwords
/// would silently be truncated).
pub fn check_password(raw: &str) -> Result<(), String> {
    if raw.chars().count() < 8 {
        return Err("must be at least 8 characters".to_owned());
    }
    if raw.len() > 72 {
        return Err("must be at most 72 bytes".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(parse_username(" alice_01 ").unwrap(), "alice_01");
        for bad in [
            "ab",
            "a b c",
            "ali@ce",
            "_alice",
            &"x".repeat(33),
            "ünïcode",
        ] {
            assert!(parse_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for good in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "ÜSER@exämple.de",
        ] {
            assert!(parse_email(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a@b",
            "a b@c.com",
            "a@-x.com",
            "a@b..com",
            "a@@b.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_password("1234").is_err());
        assert!(check_password("correct horse").is_ok());
        assert!(check_password(&"x".repeat(73)).is_err());
    }

    #[test]
    fn names() {
        assert!(parse_name("  ").is_err());
        assert!(parse_name("a\u{0}b").is_err());
        assert_eq!(parse_name(" Ada ").unwrap(), "Ada");
    }

    #[test]
    fn roles_round_trip() {
        for r in [Role::Guest, Role::Host, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()).unwrap(), r);
        }
        assert!(Role::parse("root").is_err());
    }
}
