//! Who tokens are issued to: users (with a parsed e-mail) and OAuth clients.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::{DomainError, TokenHash};

/// A user's integer id: the dialects expose integer ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserId(pub i64);

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An e-mail address, trimmed, at most 254 bytes, one `@` with text on both sides. No
/// whitespace, no control or format characters (zero-width spaces, bidirectional overrides), no
/// markup (`<`, `>`, `"`, `\`, and the other characters only a quoted local part may hold).
/// Comparison ignores case, compatibility forms and look-alikes (see [`Email::normalized`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim();
        let bad = |m: &str| Err(DomainError::invalid("email", m.to_owned()));
        if s.is_empty() {
            return bad("may not be blank");
        }
        if s.len() > 254 {
            return bad("is longer than 254 characters");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control() || c.general_category() == GeneralCategory::Format) {
            return bad("is not a valid e-mail address");
        }
        if s.chars().any(|c| matches!(c, '<' | '>' | '"' | '\\' | '(' | ')' | ',' | ';' | ':' | '[' | ']')) {
            return bad("is not a valid e-mail address");
        }
        match s.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') =>
            {
                Ok(Self(s.to_owned()))
            }
            _ => bad("is not a valid e-mail address"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness and look-ups use: lowercase, NFKC (fullwidth and other
    /// compatibility forms fold), then the UTS #39 confusable skeleton, so that `аnn@example.com`
    /// with a Cyrillic `а` is the same address as `ann@example.com`. An internal key, never shown.
    pub fn normalized(&self) -> String {
        let folded: String = self.0.to_lowercase().nfkc().collect();
        let skeleton: String = unicode_security::skeleton(&folded).collect();
        skeleton.to_lowercase()
    }

    /// The version of [`Email::normalized`]'s rule, stored beside its result, so that rows written
    /// under an older rule are normalized again at startup.
    pub const NORMALIZATION: i64 = 2;
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Blocked,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Blocked => "blocked",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(UserStatus::Active),
            "blocked" => Some(UserStatus::Blocked),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    /// PHC string; `None` for users who only log in through another provider.
    pub password_hash: Option<crate::PasswordHash>,
    pub status: UserStatus,
    pub created_at: OffsetDateTime,
    pub password_changed_at: Option<OffsetDateTime>,
}

/// An OAuth client's public identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() || raw.len() > 128 || !raw.chars().all(|c| c.is_ascii_graphic()) {
            return Err(DomainError::invalid("client_id", "a client_id is 1-128 printable ASCII characters"));
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A registered OAuth client. Confidential clients carry the keyed hash of their secret.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub client_id: ClientId,
    pub name: String,
    pub secret_hash: Option<TokenHash>,
    /// The token profile sessions of this client get.
    pub profile: String,
    pub created_at: OffsetDateTime,
}

impl OAuthClient {
    pub fn is_confidential(&self) -> bool {
        self.secret_hash.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_accepts_ordinary_addresses_and_trims() {
        let e = Email::parse("  Alice@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Alice@Example.COM");
        assert_eq!(e.normalized(), Email::parse("alice@example.com").unwrap().normalized());
        for fine in ["o'brien@example.com", "ann+tag@example.com", "jürgen@bücher.example", "用户@例子.广告"] {
            assert!(Email::parse(fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn look_alikes_case_and_compatibility_forms_compare_equal() {
        let n = |s: &str| Email::parse(s).unwrap().normalized();
        let ann = n("ann@example.com");
        assert_eq!(n("\u{430}nn@example.com"), ann, "Cyrillic а");
        assert_eq!(n("ANN@EXAMPLE.COM"), ann);
        assert_eq!(n("ａｎｎ@ｅｘａｍｐｌｅ.ｃｏｍ"), ann, "fullwidth forms");
        assert_eq!(n("ann@examp\u{217C}e.com"), ann, "a Roman numeral fifty for the l");
        assert_ne!(n("anne@example.com"), ann);
        assert_ne!(n("bob@example.com"), ann);
    }

    #[test]
    fn invisible_characters_and_markup_are_refused() {
        for bad in [
            "ann\u{200B}@example.com",
            "ann@exa\u{200D}mple.com",
            "\u{FEFF}ann@example.com",
            "ann@\u{202E}moc.elpmaxe",
            "<script>@example.com",
            "\"ann\"@example.com",
            "ann@example.com>",
            "a\\b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn email_refuses_what_is_not_an_address() {
        for bad in
            ["", "   ", "no-at-sign", "@example.com", "a@", "a@b@c", "a b@c.d", "a@.com", "a@com.", &format!("{}@x.io", "a".repeat(260))]
        {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn client_id_is_printable_ascii() {
        assert!(ClientId::parse("tessera").is_ok());
        assert!(ClientId::parse("").is_err());
        assert!(ClientId::parse("with space").is_err());
        assert!(ClientId::parse(&"x".repeat(129)).is_err());
    }
}
