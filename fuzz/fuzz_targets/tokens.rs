//! Every face's token reader, legacy formats included, on fixed test keys: the native format
//! (HS256, and EdDSA as drf-social-oauth2 writes it), simplejwt and djoser (both eras, with the
//! Django deployment's legacy secret), flask-jwt-extended (both eras, with the Flask deployment's
//! legacy secret) and Medods (HS512 access JWT, opaque refresh token), each read directly through
//! `TokenFormat` on a keyring without and with leeway, then through the use-cases that take a
//! presented token (`resolve_access`, `check_refresh`, `introspect`) over the in-memory store,
//! where users 1 and 2 are imported from both deployments so that legacy tokens get adopted.
//!
//! Input: a first byte of flags, then either the token itself (even flag byte) or a claims JSON
//! document (odd), which is signed with every test key (and without `kid` with each legacy
//! secret) so that the readers past the signature check are reached too. Nothing may panic.

#![no_main]

use std::sync::{Arc, LazyLock};

use jsonwebtoken::{EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use tessera_dialects::flask::FlaskFormat;
use tessera_dialects::medods::MedodsFormat;
use tessera_dialects::simplejwt::SjFormat;
use tessera_domain::fakes::{InMemoryStore, InlineHasher, MemoryRevocations};
use tessera_domain::password::Argon2Hasher;
use tessera_domain::ports::UserRepository;
use tessera_domain::{
    Algorithm, Argon2Params, Duration, Email, Face, Faces, KeyState, KeyedHasher, Keyring, LegacyKey, NativeFormat, OffsetDateTime,
    RefreshPolicy, Sealer, ServiceParts, SigningKey, TokenFormat, TokenKind, TokenProfile, TokenService, TokenSettings, User, UserId,
    UserStatus,
};
use time::macros::datetime;

/// The legacy deployments' secrets of tests/fixtures/legacy (its tokens are the seed corpus).
const DJANGO_SECRET: &[u8] = b"legacy-django-secret-for-tessera-tests-0123456789abcdef";
const FLASK_SECRET: &[u8] = b"legacy-flask-secret-for-tessera-tests-0123456789abcdef";

/// The instants tokens are read at: the legacy fixtures' minting day, and the ends of time's range.
const INSTANTS: [OffsetDateTime; 3] =
    [datetime!(2026-12-01 12:00 UTC), datetime!(9999-12-31 23:59:59 UTC), datetime!(-9999-01-01 00:00 UTC)];

struct Fixture {
    keys: Vec<SigningKey>,
    rings: [Keyring; 2],
    formats: Vec<(&'static str, Arc<dyn TokenFormat>)>,
}

fn key(kid: &str, alg: Algorithm, state: KeyState, secret: Vec<u8>) -> SigningKey {
    SigningKey { kid: kid.into(), alg, state, secret, created_at: INSTANTS[0] }
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    // RFC 8410's PKCS#8 wrapping of a fixed Ed25519 seed
    let mut ed = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    ed.extend_from_slice(&[7; 32]);
    let keys = vec![
        key("fuzz-hs256", Algorithm::HS256, KeyState::Active, b"tessera-fuzz-hs256-test-key-0123".to_vec()),
        key("fuzz-hs512", Algorithm::HS512, KeyState::Active, [b'k'; 64].to_vec()),
        key("fuzz-eddsa", Algorithm::EdDSA, KeyState::Active, ed),
        key("fuzz-next", Algorithm::HS256, KeyState::Next, b"tessera-fuzz-next-key-0123456789".to_vec()),
        key("fuzz-retired", Algorithm::HS256, KeyState::Retired, b"tessera-fuzz-retired-key-0123456".to_vec()),
    ];
    let django = LegacyKey::hmac(DJANGO_SECRET, Algorithm::HS256, tessera_domain::ORIGIN_DJANGO);
    let flask = LegacyKey::hmac(FLASK_SECRET, Algorithm::HS256, tessera_domain::ORIGIN_FLASK);
    let formats: Vec<(&'static str, Arc<dyn TokenFormat>)> = vec![
        ("native", Arc::new(NativeFormat { issuer: "tessera".into(), accepted_issuers: vec![], alg: Algorithm::HS256 })),
        ("drf-social-oauth2", Arc::new(NativeFormat { issuer: "tessera".into(), accepted_issuers: vec![], alg: Algorithm::EdDSA })),
        ("simplejwt", Arc::new(SjFormat { era_55: false, alg: Algorithm::HS256, legacy: django.clone() })),
        ("djoser", Arc::new(SjFormat { era_55: true, alg: Algorithm::HS256, legacy: django })),
        ("flask", Arc::new(FlaskFormat { era4: false, alg: Algorithm::HS256, legacy: flask.clone() })),
        ("flask4", Arc::new(FlaskFormat { era4: true, alg: Algorithm::HS256, legacy: flask })),
        ("medods", Arc::new(MedodsFormat)),
    ];
    let rings = [Keyring::new(&keys, 0), Keyring::new(&keys, 30)];
    Fixture { keys, rings, formats }
});

/// A service over a fresh in-memory store, every face on it, users 1 and 2 imported from both
/// legacy deployments.
fn service(f: &Fixture) -> TokenService {
    let store = Arc::new(InMemoryStore::default());
    let faces = f.formats.iter().map(|(name, format)| Face {
        name: (*name).into(),
        audience: (*name).into(),
        profile: TokenProfile::standard(),
        refresh: RefreshPolicy::Rotate,
        grace: Duration::seconds(5),
        risk: vec![],
        format: format.clone(),
    });
    let Ok(hasher) = Argon2Hasher::new(Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 }) else { panic!("argon2 parameters") };
    futures_executor::block_on(async {
        for origin in [tessera_domain::ORIGIN_DJANGO, tessera_domain::ORIGIN_FLASK] {
            for id in [1, 2] {
                let Ok(email) = Email::parse(&format!("user{id}@{origin}.example")) else { panic!("fixture address") };
                let user = User {
                    id: UserId(id),
                    email,
                    password_hash: None,
                    status: UserStatus::Active,
                    created_at: INSTANTS[0],
                    password_changed_at: None,
                };
                let _ = store.import_user(&user, origin).await;
            }
            let _ = store.finish_import(origin, INSTANTS[0]).await;
        }
    });
    let Ok(faces) = Faces::new(faces) else { panic!("the fixture's faces") };
    TokenService::new(ServiceParts {
        store,
        hasher: Arc::new(InlineHasher(hasher)),
        revocations: Arc::new(MemoryRevocations::default()),
        notifier: None,
        keyring: f.rings[0].clone(),
        refresh_hasher: KeyedHasher::new([3; 32]),
        sealer: Sealer::new([4; 32]),
        settings: TokenSettings::default(),
        faces,
        limiter: None,
        events: None,
        audit: tessera_domain::audit::AuditChain::new(KeyedHasher::new([5; 32]), KeyedHasher::new([6; 32])),
    })
}

fn read_everywhere(f: &Fixture, svc: &TokenService, token: &str, now: OffsetDateTime) {
    for ring in &f.rings {
        for (_, format) in &f.formats {
            let _ = format.read_access(ring, token, Some(now));
            let _ = format.read_access(ring, token, None);
            if let Ok(view) = format.read_refresh(ring, token, now) {
                let _ = view.secret.as_bytes();
            }
            for kind in [TokenKind::Access, TokenKind::Refresh] {
                if let Some(Ok(legacy)) = format.read_legacy(token, kind, now) {
                    let _ = legacy.refresh_secret();
                }
            }
        }
    }
    futures_executor::block_on(async {
        for face in svc.faces().iter() {
            let _ = svc.resolve_access(face, token, now);
            let _ = svc.check_refresh(face, token, now).await;
        }
        let _ = svc.introspect(token, now).await;
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let f = &*FIXTURE;
    let now = INSTANTS[usize::from(flags >> 1) % INSTANTS.len()];
    if flags & 1 == 0 {
        read_everywhere(f, &service(f), &String::from_utf8_lossy(rest), now);
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let Ok(claims) = serde_json::from_str::<Box<RawValue>>(text) else { return };
    // one store for the input's tokens: what one adopts, the next finds
    let svc = service(f);
    for alg in [Algorithm::HS256, Algorithm::HS512, Algorithm::EdDSA] {
        if let Ok(token) = f.rings[0].sign(alg, "JWT", &claims) {
            read_everywhere(f, &svc, &token, now);
        }
    }
    // the retired and the next key, which verify old tokens and nothing
    for k in &f.keys[3..] {
        let header = Header { kid: Some(k.kid.clone()), ..Header::default() };
        if let Ok(token) = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&k.secret)) {
            read_everywhere(f, &svc, &token, now);
        }
    }
    for secret in [DJANGO_SECRET, FLASK_SECRET] {
        if let Ok(token) = jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret)) {
            read_everywhere(f, &svc, &token, now);
        }
    }
});
