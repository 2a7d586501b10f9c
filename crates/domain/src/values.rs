//! Validated value objects. Each `parse` returns the normalised value or a message for
//! `error.details.fields`.
/// `[A-Za-z0-9_-]+`.
fn is_username(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Pragmatic address check: `local@label(.label)*.tld`, the local part one or more of
/// ``[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]``, each label 1–63 letters, digits and inner hyphens, the
/// TLD 2–63 letters; no spaces. Deliverability is the verification flow's job, not this one's.
/// (Hand-written instead of a regular expression: the regex engine was a tenth of the build of
/// this crate's dependencies for two patterns; a property test holds it to the pattern.)
fn is_address(s: &str) -> bool {
    fn local_char(b: u8) -> bool {
        b.is_ascii_alphanumeric() || b"._!#$%&'*+/=?^`{|}~-".contains(&b)
    }
    fn label(l: &str) -> bool {
        let b = l.as_bytes();
        (1..=63).contains(&b.len())
            && b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric)
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let Some((labels, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    !local.is_empty()
        && local.bytes().all(local_char)
        && (2..=63).contains(&tld.len())
        && tld.bytes().all(|b| b.is_ascii_alphabetic())
        && labels.split('.').all(label)
}

/// 3–80 chars of `[A-Za-z0-9_-]`; unique case-insensitively (the repository enforces that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if !(3..=80).contains(&n) {
            return Err("must be 3 to 80 characters".into());
        }
        if !is_username(s) {
            return Err("may contain only letters, digits, '_' and '-'".into());
        }
        Ok(Self(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A syntactically valid address of at most 254 chars, stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > 254 {
            return Err("must be at most 254 characters".into());
        }
        let local_ok = s.split('@').next().is_some_and(|l| {
            l.len() <= 64 && !l.starts_with('.') && !l.ends_with('.') && !l.contains("..")
        });
        if !local_ok || !is_address(s) {
            return Err("must be a valid email address".into());
        }
        Ok(Self(s.to_lowercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A password that meets the policy: 8–128 chars with an ASCII upper-case letter, lower-case
/// letter and digit (the OpenAPI schema states the same rule as a pattern). `Debug` never shows
/// it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        let mut problems = Vec::new();
        if !(8..=128).contains(&n) {
            problems.push("be 8 to 128 characters");
        }
        if !s.chars().any(|c| c.is_ascii_uppercase()) {
            problems.push("contain an upper-case letter");
        }
        if !s.chars().any(|c| c.is_ascii_lowercase()) {
            problems.push("contain a lower-case letter");
        }
        if !s.chars().any(|c| c.is_ascii_digit()) {
            problems.push("contain a digit");
        }
        if problems.is_empty() {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("must {}", problems.join(", ")))
        }
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// first_name / last_name: at most 50 chars. Empty strings become `None`.
pub fn parse_name(s: Option<&str>) -> Result<Option<String>, String> {
    optional_text(s, 50)
}

/// phone: at most 20 chars of digits, spaces and `+-().`.
pub fn parse_phone(s: Option<&str>) -> Result<Option<String>, String> {
    let v = optional_text(s, 20)?;
    if let Some(p) = &v
        && !p
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
    {
        return Err("may contain only digits, spaces and + - ( ) .".into());
    }
    Ok(v)
}

/// avatar_url: at most 255 chars, `http://` or `https://`.
pub fn parse_avatar_url(s: Option<&str>) -> Result<Option<String>, String> {
    let v = optional_text(s, 255)?;
    if let Some(u) = &v {
        let lower = u.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"));
        if rest
            .is_none_or(|r| r.is_empty() || r.starts_with('/') || r.contains(char::is_whitespace))
        {
            return Err("must be an http(s) URL".into());
        }
    }
    Ok(v)
}

fn optional_text(s: Option<&str>, max: usize) -> Result<Option<String>, String> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.chars().count() > max => Err(format!("must be at most {max} characters")),
        Some(v) if v.chars().any(char::is_control) => {
            Err("must not contain control characters".into())
        }
        Some(v) => Ok(Some(v.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(80)).is_ok());
        assert!(Username::parse(&"a".repeat(81)).is_err());
        assert!(Username::parse("bad name").is_err());
        assert!(Username::parse("ok_name-1").is_ok());
        assert!(Username::parse("émile").is_err());
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            Email::parse("Alice@Example.COM").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "",
            "a",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            ".a@b.com",
            "a..b@c.com",
            "a@-b.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(190));
        assert!(Email::parse(&long).is_err());
    }

    // The patterns the checks were written from, as the oracle.
    const USERNAME_PATTERN: &str = r"^[A-Za-z0-9_-]+$";
    const ADDRESS_PATTERN: &str = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,63}$";

    #[test]
    fn the_checks_agree_with_their_patterns_on_known_cases() {
        let address = regex::Regex::new(ADDRESS_PATTERN).unwrap();
        for s in [
            "a@b.co",
            "a.b+c@d-e.f.gh",
            "x@1.io",
            "x@a.b",
            "x@a.b1",
            "x@a-.io",
            "x@-a.io",
            "x@a..io",
            "x@.io",
            "@a.io",
            "x@io",
            "x@a.i",
            "a@b@c.io",
            "é@a.io",
            "a@é.io",
            "a b@c.io",
            "a@b.c_d",
            "a@b_c.io",
            "{}|~@x.yz",
            "a@b.io.",
            "a@b.io ",
        ] {
            assert_eq!(is_address(s), address.is_match(s), "{s:?}");
        }
        let long_label = format!("a@{}.io", "b".repeat(64));
        assert_eq!(is_address(&long_label), address.is_match(&long_label));
        assert!(!is_address(&long_label));
        let tld = format!("a@b.{}", "c".repeat(64));
        assert_eq!(is_address(&tld), address.is_match(&tld));
    }

    proptest::proptest! {
        #[test]
        fn usernames_are_checked_as_the_pattern_says(s in "[A-Za-z0-9_ é@.-]{0,12}") {
            let pattern = regex::Regex::new(USERNAME_PATTERN).unwrap();
            proptest::prop_assert_eq!(is_username(&s), pattern.is_match(&s));
        }

        #[test]
        fn addresses_are_checked_as_the_pattern_says(
            s in "[a-c0-9.!+_é -]{0,4}@?([a-c0-9-]{0,3}[.]){0,3}[a-c0-9-]{0,4}@?",
        ) {
            let pattern = regex::Regex::new(ADDRESS_PATTERN).unwrap();
            proptest::prop_assert_eq!(is_address(&s), pattern.is_match(&s));
        }

        #[test]
        fn near_valid_addresses_are_checked_as_the_pattern_says(
            s in "[a-c0-9.+]{1,3}@[a-c0-9-]{1,3}([.][a-c0-9-]{0,3}){0,2}[.][a-c1]{1,3}",
        ) {
            let pattern = regex::Regex::new(ADDRESS_PATTERN).unwrap();
            proptest::prop_assert_eq!(is_address(&s), pattern.is_match(&s));
        }
    }

    #[test]
    fn password_policy() {
        assert!(Password::parse("Secret123").is_ok());
        assert!(Password::parse("Sh0rt").is_err());
        assert!(Password::parse("alllower123").is_err());
        assert!(Password::parse("ALLUPPER123").is_err());
        assert!(Password::parse("NoDigitsHere").is_err());
        assert!(Password::parse(&format!("Aa1{}", "x".repeat(126))).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("Secret123").unwrap()),
            "Password(<redacted>)"
        );
    }

    #[test]
    fn profile_fields() {
        assert_eq!(parse_name(Some("  ")).unwrap(), None);
        assert!(parse_name(Some(&"x".repeat(51))).is_err());
        assert!(parse_phone(Some("+1 (555) 010-9999")).is_ok());
        assert!(parse_phone(Some("call me")).is_err());
        assert!(parse_avatar_url(Some("https://example.com/a.png")).is_ok());
        assert!(parse_avatar_url(Some("javascript:alert(1)")).is_err());
        assert!(parse_avatar_url(Some("https://")).is_err());
    }
}
