//! The master key every server secret derives from, and the keyring loaded at start.
//!
//! Production takes the master key from configuration and refuses to run without one. In
//! development a key is generated on first start and persisted (mode 0600) so restarts keep
//! sessions valid, with one log line saying so.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use tessera_domain::ports::Store;
use tessera_domain::{Algorithm, KeyedHasher, Keyring, OffsetDateTime, Sealer, SigningKey};

use crate::config::{ConfigError, Settings};

/// Keys derived from the master key, one per use.
pub struct ServerSecrets {
    pub refresh_hasher: KeyedHasher,
    pub sealer: Sealer,
    /// The audit trail's HMAC key.
    pub audit: KeyedHasher,
    /// The key of the audit chain's heads (`tessera audit head`), kept apart from the chain's.
    pub audit_head: KeyedHasher,
}

impl std::fmt::Debug for ServerSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecrets(..)")
    }
}

impl ServerSecrets {
    pub fn from_master(master: &[u8]) -> Self {
        Self {
            refresh_hasher: KeyedHasher::new(KeyedHasher::derive(master, "tessera/v1/secret-hash")),
            sealer: Sealer::new(KeyedHasher::derive(master, "tessera/v1/seal")),
            audit: KeyedHasher::new(KeyedHasher::derive(master, "tessera/v1/audit-chain")),
            audit_head: KeyedHasher::new(KeyedHasher::derive(master, "tessera/v1/audit-head")),
        }
    }
}

fn decode_master(key: &str, raw: &str) -> Result<Vec<u8>, ConfigError> {
    let bytes = STANDARD.decode(raw.trim()).map_err(|_| ConfigError::new(key, "is not valid base64"))?;
    if bytes.len() < 32 {
        return Err(ConfigError::new(key, format!("must decode to at least 32 bytes, got {}", bytes.len())));
    }
    Ok(bytes)
}

/// The master key: configured, or (development) read from or generated into the key file.
pub fn load_master_key(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(raw) = settings.secrets.master_key.as_deref().filter(|k| !k.trim().is_empty()) {
        return Ok(decode_master("secrets.master_key", raw)?);
    }
    let path = settings.secrets.master_key_file();
    if path.exists() {
        let raw = std::fs::read_to_string(&path).with_context(|| format!("reading the master key file {}", path.display()))?;
        return Ok(decode_master(&format!("secrets.master_key_file ({})", path.display()), &raw)?);
    }
    let key = tessera_domain::secret::random_bytes::<32>()?;
    write_private(&path, STANDARD.encode(key).as_bytes()).with_context(|| format!("writing the master key file {}", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        "generated a new master key for development and saved it; production requires secrets.master_key (TESSERA__SECRETS__MASTER_KEY)"
    );
    Ok(key.to_vec())
}

/// Medods' trusted callers' key, when the dialect is on, not configured open and given no key:
/// read from or (development) generated into `medods-caller.key` beside the master key file, so
/// that `/generate` is never open to anyone by default. The key is never logged: the operator
/// reads the file.
pub fn resolve_medods_caller_key(settings: &mut Settings) -> anyhow::Result<()> {
    let m = &settings.dialects.medods;
    if !m.enabled || m.open_to_anyone || m.caller_key.as_deref().is_some_and(|k| !k.is_empty()) {
        return Ok(());
    }
    let path = settings.secrets.master_key_file().with_file_name("medods-caller.key");
    let key = if path.exists() {
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?.trim().to_owned()
    } else {
        let key = URL_SAFE_NO_PAD.encode(tessera_domain::secret::random_bytes::<24>()?);
        write_private(&path, key.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        tracing::warn!(
            path = %path.display(),
            "generated the Medods trusted callers' key (X-Caller-Key for /generate and /deleteall) and saved it; production requires dialects.medods.caller_key"
        );
        key
    };
    if key.len() < 16 {
        anyhow::bail!("{}: the caller key must be at least 16 characters", path.display());
    }
    settings.dialects.medods.caller_key = Some(key);
    Ok(())
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(path)?.write_all(contents)
}

/// Loads every signing key, creating an active one for each of `algs` that has none yet.
pub async fn load_keyring(
    store: &dyn Store,
    sealer: &Sealer,
    algs: &[Algorithm],
    leeway: i64,
    now: OffsetDateTime,
) -> anyhow::Result<Keyring> {
    let mut stored = vec![];
    for alg in algs {
        let candidate = SigningKey::generate(*alg, now)?;
        stored = store.ensure_signing_key(&candidate.seal(sealer)?).await.context("loading signing keys")?;
        if stored.iter().any(|k| k.kid == candidate.kid) {
            tracing::info!(kid = %candidate.kid, alg = alg.as_str(), "generated a new signing key");
        }
    }
    let keys = stored
        .iter()
        .map(|k| SigningKey::unseal(k, sealer))
        .collect::<Result<Vec<_>, _>>()
        .context("a stored signing key does not open with the configured master key (secrets.master_key): was it changed?")?;
    Ok(Keyring::new(&keys, leeway))
}
