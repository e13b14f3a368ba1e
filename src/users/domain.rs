//! Parsed account fields: a value of these types has passed validation ("parse, don't
//! validate"). Each parser returns the message the API shows for the field.

/// What a user may do (defined with the tokens that carry it; stored as text in `users.role`).
pub use crate::http::auth::Role;

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
    if s.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }) {
        return Err("must be a single line without control or direction-override characters".to_owned());
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

/// Fewest characters a new password may have. NIST SP 800-63B-4 (§3.1.1.2): at least 15
/// for a password that is the only factor, as ours is; no composition rules.
pub const PASSWORD_MIN_CHARS: usize = 15;

/// Common passwords of 8 characters or more, lower-cased (from the MIT-licensed
/// `@zxcvbn-ts/language-common` list): a new password may not be one of them, nor one of them
/// repeated.
static COMMON_PASSWORDS: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| include_str!("common-passwords.txt").lines().collect());

/// Password policy for a new password (NIST SP 800-63B-4): 15 characters to 72 bytes (bcrypt
/// ignores anything past 72 bytes, so longer passwords would silently be truncated); every
/// character allowed, spaces included; refused when it is a known common password (or one
/// repeated), nearly one repeated character (fewer than 5 distinct ones, so no "eight spaces"),
/// or contains `related` values (the username, the email's local part) of 4 characters or
/// more. Existing passwords are not re-checked at login.
pub fn check_password(raw: &str, related: &[&str]) -> Result<(), String> {
    if raw.chars().count() < PASSWORD_MIN_CHARS {
        return Err(format!("must be at least {PASSWORD_MIN_CHARS} characters"));
    }
    if raw.len() > 72 {
        return Err("must be at most 72 bytes".to_owned());
    }
    let lower = raw.to_lowercase();
    let distinct: std::collections::HashSet<char> = lower.chars().collect();
    if distinct.len() < 5 {
        return Err("is too repetitive: use at least 5 different characters".to_owned());
    }
    if is_common(&lower) {
        return Err("is a commonly used password; choose another".to_owned());
    }
    for value in related {
        let value = value.trim().to_lowercase();
        if value.chars().count() >= 4 && lower.contains(&value) {
            return Err("must not contain your username or email address".to_owned());
        }
    }
    Ok(())
}

/// A common password, or a common password repeated (`passwordpassword`).
fn is_common(lower: &str) -> bool {
    if COMMON_PASSWORDS.contains(lower) {
        return true;
    }
    let n = lower.len();
    (1..=n / 2).any(|unit| {
        n.is_multiple_of(unit)
            && lower.is_char_boundary(unit)
            && lower[..unit].repeat(n / unit) == lower
            && (unit < 8 || COMMON_PASSWORDS.contains(&lower[..unit]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_follow_nist_800_63b() {
        for ok in [
            "correct horse battery",
            "Tr0ub4dor&3-but-longer",
            "ünïcødé pässwörd ok",
        ] {
            assert_eq!(check_password(ok, &[]), Ok(()), "{ok}");
        }
        let refused = |p: &str, related: &[&str]| check_password(p, related).unwrap_err();
        assert!(refused("12345678", &[]).contains("at least 15"));
        assert!(refused(&" ".repeat(20), &[]).contains("repetitive"));
        assert!(refused("abababababababab", &[]).contains("repetitive"));
        assert!(refused("qwertyuiop12345", &[]).contains("common"));
        assert!(
            refused("QwertyUiop12345", &[]).contains("common"),
            "case-insensitive"
        );
        assert!(refused("passwordpassword", &[]).contains("common"));
        assert!(
            refused("sunshine1sunshine1", &[]).contains("common"),
            "repeated"
        );
        assert!(
            refused("abc123abc123abc123", &[]).contains("common"),
            "short unit repeated"
        );
        assert!(refused("my name is alice_01 ok", &["alice_01"]).contains("username"));
        assert!(refused(&"é".repeat(40), &[]).contains("72 bytes"));
        // A short related value (3 characters) is not a reason to refuse.
        assert_eq!(check_password("correct horse battery", &["cor"]), Ok(()));
    }

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
