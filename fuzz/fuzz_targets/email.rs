//! E-mail addresses: `Email::parse`, `normalized` (the comparison key: lowercase, NFKC, UTS #39
//! skeleton, capital look-alikes) and `is_reserved`. Input: the raw address. Nothing may panic,
//! and the key keeps the properties the stores rely on: it holds an `@` (a deleted user's key has
//! none), and it is its own key: an address written as another's key compares equal to it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_domain::Email;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let Ok(email) = Email::parse(raw) else { return };
    assert!(Email::parse(email.as_str()).is_ok_and(|again| again == email), "{raw:?}: parsing is not idempotent");
    let key = email.normalized();
    assert!(key.contains('@'), "{raw:?}: key {key:?} has no @");
    let _ = email.is_reserved();
    if let Ok(again) = Email::parse(&key) {
        assert_eq!(again.normalized(), key, "{raw:?}: the key of its key differs");
    }
});
