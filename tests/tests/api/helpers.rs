//! `spawn_app()`: port 0, a fresh database, a known signing key; one helper per endpoint, and
//! an access-token verifier written independently of the signing code (HMAC by hand).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tessera_domain::{Algorithm, KeyState, OffsetDateTime, SigningKey};
use tessera_server::Settings;
use tessera_server::secrets::ServerSecrets;
use tessera_server::startup::Backend as Store;
use tessera_storage::{PgStore, SqliteStore};

/// Which store the tests of a task run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

tokio::task_local! {
    pub static BACKEND: Backend;
}

/// Instantiates each named `async fn` test once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                $crate::helpers::BACKEND.scope($crate::helpers::Backend::Postgres, super::$name()).await
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                $crate::helpers::BACKEND.scope($crate::helpers::Backend::Sqlite, super::$name()).await
            })*
        }
    };
}

pub struct TestApp {
    pub address: String,
    /// The metrics listener (`/metrics` is served there, never on the API's port).
    pub metrics_address: String,
    pub http: reqwest::Client,
    pub store: std::sync::Arc<dyn tessera_domain::ports::Store>,
    pub backend: Store,
    pub secrets: ServerSecrets,
    /// The HS256 key the dialects sign with (known, so tests can forge tokens).
    pub kid: String,
    pub key_secret: Vec<u8>,
    /// The native face's ES256 key: its `kid` and private PKCS#8 DER.
    pub native_kid: String,
    pub native_der: Vec<u8>,
    /// What an admin command of the same deployment would be configured with.
    pub db_url: String,
    pub master_key: String,
}

/// The Medods trusted callers' key every test app has (`X-Caller-Key`).
pub const CALLER_KEY: &str = "test-trusted-caller-key-0123";

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let kind = BACKEND.try_with(|b| *b).unwrap_or(Backend::Postgres);
    let (db_url, backend) = match kind {
        Backend::Postgres => {
            let url = tessera_storage::testing::create_database().await.expect("create a test database");
            let pg = PgStore::connect_lazy(&url, 10).unwrap();
            pg.migrate().await.unwrap();
            (url, Store::Postgres(pg))
        }
        Backend::Sqlite => {
            let url = tessera_storage::testing::sqlite_url();
            let lite = SqliteStore::connect(&url).await.unwrap();
            lite.migrate().await.unwrap();
            (url, Store::Sqlite(lite))
        }
    };
    let store = backend.store();

    let master: [u8; 32] = tessera_domain::secret::random_bytes().unwrap();
    let secrets = ServerSecrets::from_master(&master);
    let key_secret: [u8; 32] = tessera_domain::secret::random_bytes().unwrap();
    let kid = format!("test-{}", uuid::Uuid::new_v4().simple());
    let key = SigningKey {
        kid: kid.clone(),
        alg: Algorithm::HS256,
        state: KeyState::Active,
        secret: key_secret.to_vec(),
        created_at: OffsetDateTime::now_utc(),
    };
    store.insert_signing_key(&key.seal(&secrets.sealer).unwrap()).await.unwrap();
    let native = SigningKey::generate(Algorithm::ES256, OffsetDateTime::now_utc()).unwrap();
    store.insert_signing_key(&native.seal(&secrets.sealer).unwrap()).await.unwrap();

    let mut settings = Settings::default();
    settings.database.url = db_url.clone();
    settings.database.create_if_missing = false;
    settings.server.port = 0;
    settings.server.workers = 2;
    settings.metrics.port = 0;
    settings.secrets.master_key = Some(STANDARD.encode(master));
    // Medods' trusted-caller routes are never open unless configured so
    settings.dialects.medods.caller_key = Some(CALLER_KEY.into());
    configure(&mut settings);

    let app = tessera_server::Application::build(settings).await.expect("the application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let metrics_address = app.metrics_port().map(|p| format!("http://127.0.0.1:{p}")).unwrap_or_default();
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    TestApp {
        address,
        metrics_address,
        http,
        store,
        backend,
        secrets,
        kid,
        key_secret: key_secret.to_vec(),
        native_kid: native.kid.clone(),
        native_der: native.secret.clone(),
        db_url,
        master_key: STANDARD.encode(master),
    }
}

pub struct Pair {
    pub access: String,
    pub refresh: String,
    pub expires_in: i64,
}

impl TestApp {
    /// An operator's process (the admin commands' core), on the same database and master key as
    /// the running server.
    pub async fn admin(&self) -> tessera_server::startup::Core {
        tessera_server::startup::Core::build(
            Settings {
                database: tessera_server::config::DatabaseSettings { url: self.db_url.clone(), ..Default::default() },
                secrets: tessera_server::config::SecretSettings { master_key: Some(self.master_key.clone()), master_key_file: None },
                ..Default::default()
            },
            false,
            false,
        )
        .await
        .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// `/metrics` on the metrics listener.
    pub fn metrics_url(&self) -> String {
        format!("{}/metrics", self.metrics_address)
    }

    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.http.post(self.url("/v1/users")).json(&serde_json::json!({"email": email, "password": password})).send().await.unwrap()
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(self.url("/oauth/token")).form(form).send().await.unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.token(&[("grant_type", "password"), ("username", email), ("password", password)]).await
    }

    pub async fn refresh(&self, refresh: &str) -> reqwest::Response {
        self.token(&[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await
    }

    pub async fn me(&self, access: &str) -> reqwest::Response {
        self.http.get(self.url("/v1/me")).bearer_auth(access).send().await.unwrap()
    }

    pub async fn revoke(&self, token: &str) -> reqwest::Response {
        self.http.post(self.url("/oauth/revoke")).form(&[("token", token)]).send().await.unwrap()
    }

    pub async fn logout(&self, access: &str, scope: &str) -> reqwest::Response {
        self.http.post(self.url("/v1/logout")).bearer_auth(access).json(&serde_json::json!({"scope": scope})).send().await.unwrap()
    }

    /// Registers a user and logs in with the default client.
    pub async fn user_with_pair(&self, email: &str) -> Pair {
        assert_eq!(self.register(email, "correct horse battery").await.status(), 201);
        pair(self.login(email, "correct horse battery").await).await
    }

    /// Verifies a native access token as a resource server holding only the JWKS URL would:
    /// fetch the public keys, pick the token's `kid`, verify with a JOSE library (jsonwebtoken's
    /// JWK support, not Tessera's keyring), the algorithm taken from the key.
    pub async fn verify_independently(&self, token: &str) -> Value {
        let jwks: jsonwebtoken::jwk::JwkSet = self.http.get(self.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
        verify_with_jwks(token, &jwks)
    }

    /// A native access token of our own making, signed with the native key.
    pub fn sign_native(&self, header: &Value, claims: &Value) -> String {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = header["kid"].as_str().map(str::to_owned);
        h.typ = header["typ"].as_str().map(str::to_owned);
        jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_ec_der(&self.native_der)).unwrap()
    }
}

pub async fn pair(res: reqwest::Response) -> Pair {
    assert_eq!(res.status(), 200, "expected a token pair");
    let body: Value = res.json().await.unwrap();
    Pair {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        expires_in: body["expires_in"].as_i64().unwrap(),
    }
}

/// Verification with only a JWKS document: the key named by the token's `kid`, the algorithm of
/// that key (never the token's), expiry enforced.
pub fn verify_with_jwks(token: &str, jwks: &jsonwebtoken::jwk::JwkSet) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks.find(header.kid.as_deref().expect("a kid")).expect("the kid is published");
    let alg = jwk.common.key_algorithm.expect("the key names its algorithm");
    let alg: jsonwebtoken::Algorithm = alg.to_string().parse().unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(alg);
    v.validate_aud = false;
    v.set_required_spec_claims(&["exp", "sub", "iss"]);
    jsonwebtoken::decode::<Value>(token, &key, &v).expect("the token verifies with the published key").claims
}

/// HS256 verification from first principles (RFC 7515): the header must name our kid and HS256,
/// the signature is HMAC-SHA-256 over `header.payload`.
pub fn verify_hs256(token: &str, secret: &[u8], kid: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS compact serialisation has three parts");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], kid);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    mac.verify_slice(&sig).expect("the signature verifies under the known key");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

/// A token signed with HS256 under an arbitrary key and header.
pub fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}
