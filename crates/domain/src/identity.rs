//! Who tokens are issued to: users (with a parsed e-mail) and OAuth clients.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::{DomainError, Route, TokenHash};

/// A user's integer id: the dialects expose integer ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserId(pub i64);

impl UserId {
    /// Where a store split by user keeps this user's sessions and refresh tokens.
    pub fn route(self) -> Route {
        Route(u16::try_from(self.0.rem_euclid(Route::COUNT)).unwrap_or(0))
    }
}

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
    /// with a Cyrillic `а` is the same address as `ann@example.com`. Addresses compare without
    /// case, so a letter that looks like a capital is that capital's lowercase letter:
    /// `ann@example.coᴍ` (a small capital M) is `ann@example.com` (see [`capital_look_alike`]).
    /// Repeated until nothing changes, since a skeleton may itself fold further. Whitespace that
    /// folding brings is dropped: an address holds none, but a spacing accent is a space and a
    /// combining accent in NFKC (`˝` is U+0020 U+030B), and the combining accent alone, which
    /// looks the same, must give the same key. An internal key, never shown.
    pub fn normalized(&self) -> String {
        let mut key = skeleton_lowercase(&self.0);
        for _ in 0..4 {
            let mut next = String::with_capacity(key.len());
            for c in key.chars() {
                match capital_look_alike(c) {
                    Some(lower) => next.push_str(lower),
                    None => next.push(c),
                }
            }
            let next = skeleton_lowercase(&next);
            if next == key {
                break;
            }
            key = next;
        }
        key
    }

    /// Whether the address is under `.invalid` (RFC 6761), compared as [`Email::normalized`]
    /// compares: the reserved domain of Tessera's own placeholders (a deleted user's
    /// `deleted-<id>@deleted.invalid`, an external identity's `…@identities.invalid`), which
    /// nobody registers.
    pub fn is_reserved(&self) -> bool {
        let key = self.normalized();
        let tld = Email("x@invalid".into()).normalized();
        let (Some((_, domain)), Some((_, tld))) = (key.rsplit_once('@'), tld.rsplit_once('@')) else { return false };
        domain == tld || domain.strip_suffix(tld).is_some_and(|rest| rest.ends_with('.'))
    }

    /// The address a deleted user's row keeps (the row stays: ids are never given out again).
    pub fn deleted(id: UserId) -> Self {
        Self(format!("deleted-{id}@deleted.invalid"))
    }

    /// The comparison key a deleted user's row keeps. It has no `@`, which every key of an
    /// address has ([`Email::normalized`] keeps it), so no address, registered before or after,
    /// can hold it.
    pub fn deleted_key(id: UserId) -> String {
        format!("deleted user {id}")
    }

    /// The version of [`Email::normalized`]'s rule, stored beside its result, so that rows written
    /// under an older rule are normalized again at startup. 3: capital look-alikes. 4: the
    /// whitespace compatibility folding brings is dropped (found by the `email` fuzz target).
    pub const NORMALIZATION: i64 = 4;
}

/// Version 2 of [`Email::normalized`]: lowercase, NFKC, the UTS #39 skeleton, lowercase; since
/// version 4 without the whitespace folding brings.
fn skeleton_lowercase(s: &str) -> String {
    let folded: String = s.to_lowercase().nfkc().collect();
    let skeleton: String = unicode_security::skeleton(&folded).collect();
    skeleton.to_lowercase().chars().filter(|c| !c.is_whitespace()).collect()
}

/// The lowercase letter a caseless skeleton prototype stands for, read as a capital. UTS #39
/// compares within one case: small capitals and their kin (`ᴍ`, Cyrillic `м`, `ʍ`: one
/// prototype) have no case of their own and look like no lowercase letter, only like a capital
/// (`М`, `M`). Derived from the complete data (the confusables of unicode-security, the case
/// mappings of the standard library), not a table: for each letter with a one-letter capital,
/// when its own prototype is a non-ASCII letter without case and the capital's prototype is all
/// capitals, the prototype stands for that capital's lowercase. Several candidates: the
/// shortest, then the first.
fn capital_look_alike(c: char) -> Option<&'static str> {
    static LOOK_ALIKES: LazyLock<BTreeMap<char, String>> = LazyLock::new(|| {
        let mut found: BTreeMap<char, BTreeSet<(usize, String)>> = BTreeMap::new();
        let caseless = |k: char| k.to_uppercase().eq(std::iter::once(k)) && k.to_lowercase().eq(std::iter::once(k));
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            let mut upper = c.to_uppercase();
            let (Some(capital), None) = (upper.next(), upper.next()) else { continue };
            if capital == c {
                continue;
            }
            let prototype: String = unicode_security::skeleton(c.encode_utf8(&mut [0; 4])).collect();
            let mut chars = prototype.chars();
            let (Some(k), None) = (chars.next(), chars.next()) else { continue };
            if k.is_ascii() || !k.is_alphabetic() || !caseless(k) {
                continue;
            }
            let seen: String = unicode_security::skeleton(capital.encode_utf8(&mut [0; 4])).collect();
            let lower = seen.to_lowercase();
            if lower != seen && seen.to_uppercase() == seen {
                found.entry(k).or_default().insert((lower.chars().count(), lower));
            }
        }
        found.into_iter().filter_map(|(k, all)| all.into_iter().next().map(|(_, lower)| (k, lower))).collect()
    });
    LOOK_ALIKES.get(&c).map(String::as_str)
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
    /// Digits only: the shape of a user's `sub`, which a client's own token must not take.
    pub fn could_be_a_user(&self) -> bool {
        self.0.bytes().all(|b| b.is_ascii_digit())
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
    /// The scopes it may ask for in the `client_credentials` grant (RFC 6749 §4.4).
    pub scopes: Vec<String>,
    /// The audiences (`aud`) it may ask for in the `client_credentials` grant. A confidential
    /// client with at least one may use the grant.
    pub audiences: Vec<String>,
    /// Its tokens must be bound to a key (DPoP): a token request without a proof is refused.
    pub require_dpop: bool,
    /// The subject token types it may exchange (RFC 8693), by short name: `access_token`,
    /// `refresh_token`. Empty: it may not exchange tokens. The audiences are [`Self::audiences`].
    pub exchange_types: Vec<String>,
}

impl OAuthClient {
    pub fn is_confidential(&self) -> bool {
        self.secret_hash.is_some()
    }

    /// The scopes a token it asks for gets: each one `asked` (space-separated) that it may
    /// have, once each, in the order asked; all of its own when it asks for none.
    pub fn grant_scopes<'a>(&'a self, asked: Option<&'a str>) -> Result<Vec<&'a str>, crate::AuthError> {
        let Some(asked) = asked else { return Ok(self.scopes.iter().map(String::as_str).collect()) };
        let mut granted: Vec<&str> = Vec::new();
        for s in asked.split(' ').filter(|s| !s.is_empty()) {
            if !self.scopes.iter().any(|allowed| allowed == s) {
                return Err(crate::AuthError::ScopeNotAllowed);
            }
            if !granted.contains(&s) {
                granted.push(s);
            }
        }
        Ok(granted)
    }

    /// The audience a token it asks for is for: `asked`, one it may name, or its only one when
    /// it names none (a client with several must name one).
    pub fn grant_audience(&self, asked: Option<&str>) -> Result<String, crate::AuthError> {
        match (asked, self.audiences.as_slice()) {
            (Some(a), allowed) if allowed.iter().any(|x| x == a) => Ok(a.to_owned()),
            (None, [only]) => Ok(only.clone()),
            _ => Err(crate::AuthError::AudienceNotAllowed),
        }
    }

    /// Whether it may obtain tokens of its own (`client_credentials`): a confidential client
    /// that names at least one audience, and whose id cannot be read as a user's (a user's `sub`
    /// is a decimal number; a client token's `sub` is its client's id: RFC 9068 §5).
    pub fn may_use_client_credentials(&self) -> bool {
        self.is_confidential() && !self.audiences.is_empty() && !self.client_id.could_be_a_user()
    }
}

/// A scope token as RFC 6749 §3.3 writes it: 1 to 128 of `%x21 / %x23-5B / %x5D-7E` (printable
/// ASCII but space, `"` and `\`).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// An audience a client may name: 1 to 256 printable ASCII characters, no space.
pub fn is_audience(s: &str) -> bool {
    !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_graphic())
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
        assert_eq!(n("ann@example.co\u{1D0D}"), ann, "a small capital M");
        assert_eq!(n("\u{1D00}nn@example.co\u{43C}"), ann, "a small capital A, a Cyrillic em");
        assert_eq!(n("ann@exa\u{1D0D}ple.\u{1D04}o\u{28D}"), ann);
        // every small capital the data links to its letter (it links none to F or R)
        assert_eq!(n("ᴀʙᴄᴅᴇɢʜɪᴊᴋʟᴍɴᴏᴘꜱᴛᴜᴠᴡʏᴢ@example.com"), n("abcdeghijklmnopstuvwyz@example.com"), "small capitals");
        assert_eq!(n("\u{43D}ello@example.com"), n("hello@example.com"), "Cyrillic en, a small capital H");
        assert_ne!(n("anne@example.com"), ann);
        assert_ne!(n("bob@example.com"), ann);
    }

    /// The capital look-alikes never join two printable ASCII characters that version 2 told
    /// apart (`i` is not `l`, though `I` looks like `l`), and normalizing is stable.
    #[test]
    fn capital_look_alikes_keep_ascii_apart_and_are_stable() {
        let key = |c: char| Email(format!("{c}@x")).normalized();
        let ascii: Vec<char> = ('!'..='~').collect();
        for a in &ascii {
            for b in ascii.iter().filter(|b| a < *b) {
                let v2 = |c: char| skeleton_lowercase(&format!("{c}@x"));
                assert!(key(*a) != key(*b) || v2(*a) == v2(*b), "{a} and {b}");
            }
        }
        for c in (0..0x3_0000).filter_map(char::from_u32) {
            let once = key(c);
            assert_eq!(Email(once.clone()).normalized(), once, "U+{:04X}", c as u32);
        }
    }

    /// Found by fuzzing (fuzz/ target `email`): `˝` (U+02DD) is a space and a combining double
    /// acute in NFKC, so its key began with a space that a re-parse trims; the address written as
    /// its own key (the combining accent alone, which looks the same) had another key.
    #[test]
    fn a_key_is_the_key_of_the_address_written_as_it() {
        for raw in ["\u{2DD}B{traße@sMMMMM\u{1043F}tMMMMM\u{418}MMreß.de", "a\u{2DD}b@example.com", "ann@exa\u{B4}mple.com", "\u{A8}x@y"]
        {
            let key = Email::parse(raw).unwrap().normalized();
            assert!(!key.contains(char::is_whitespace), "{raw:?}: {key:?}");
            assert_eq!(Email::parse(&key).unwrap().normalized(), key, "{raw:?}");
        }
        assert_eq!(
            Email::parse("a\u{2DD}b@example.com").unwrap().normalized(),
            Email::parse("a\u{30B}b@example.com").unwrap().normalized(),
            "a spacing accent and the combining one"
        );
    }

    #[test]
    fn the_reserved_domain_and_deleted_users_keys() {
        for reserved in ["deleted-7@deleted.invalid", "x@INVALID", "a@b.invalid", "a@b.\u{456}nvalid", "a@b.ｉｎｖａｌｉｄ"] {
            assert!(Email::parse(reserved).unwrap().is_reserved(), "{reserved:?}");
        }
        for fine in ["a@invalid.com", "a@notinvalid", "a@b.invalids", "invalid@example.com"] {
            assert!(!Email::parse(fine).unwrap().is_reserved(), "{fine:?}");
        }
        assert!(Email::deleted(UserId(7)).is_reserved());
        assert!(Email::parse(Email::deleted(UserId(7)).as_str()).is_ok(), "a stored address parses");
        // no address's key is a deleted user's: every key keeps its `@`
        assert!(!Email::deleted_key(UserId(7)).contains('@'));
        for c in (0..0x3_0000).filter_map(char::from_u32).filter(|c| !c.is_whitespace() && !c.is_control()) {
            assert!(Email(format!("a{c}@b")).normalized().contains('@'), "U+{:04X}", c as u32);
        }
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
