//! The ceilings of `make bench` (scripts/bench.sh), measured without HTTP:
//!
//! - `db`: the refresh's own database transaction (the storage layer's `rotate`, the very call
//!   a refresh makes), with the same driver (sqlx), pool and number of concurrent chains as the
//!   load on the server. Each chain presents the token the previous rotation returned.
//! - `argon2`: the password hash at the configured parameters, on every core.
//!
//! Each prints one JSON object: operations per second and, for `db`, p50/p99 latencies.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use clap::{Parser, Subcommand};
use serde_json::json;
use tessera_domain::password::Argon2Hasher;
use tessera_domain::ports::{NewRefresh, RotateOutcome, RotateRequest, Store};
use tessera_domain::{Argon2Params, Duration, Email, OffsetDateTime, Password, RequestMeta};
use tessera_storage::testing::{random_hash, session_of};
use uuid::Uuid;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rotations per second of the refresh transaction, straight on the store.
    Db {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 8)]
        connections: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Argon2id hashes per second at the given parameters, one thread per core.
    Argon2 {
        #[arg(long, default_value_t = 19_456)]
        memory_kib: u32,
        #[arg(long, default_value_t = 2)]
        iterations: u32,
        #[arg(long, default_value_t = 1)]
        parallelism: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// DPoP proofs (RFC 9449) by the bench client's key, made ahead for a load tool that cannot
    /// sign: each with a fresh jti and iat now. With --files 0 one proof goes to stdout;
    /// otherwise --count of them are spread over PREFIX.1 .. PREFIX.FILES, a line each.
    DpopProofs {
        #[arg(long)]
        htm: String,
        #[arg(long)]
        htu: String,
        /// The access token the proofs go with (their ath), for a protected route.
        #[arg(long)]
        access: Option<String>,
        #[arg(long, default_value_t = 1)]
        count: usize,
        #[arg(long, default_value_t = 0)]
        files: usize,
        #[arg(long, default_value = "proofs")]
        out: String,
    },
}

/// The bench client's P-256 key (PKCS#8 DER) and its public point: a client's, not a secret.
const DPOP_KEY_DER: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5yxxUM89/URx759bQvK9aTLiF5r1hnejYxjrp5DI6nmhRANCAAQ+s6RDgwl9ZTJ5q5QpdI7kWwvNf9pPxBWLumCNdQGBc0XMh8gV7r72UEa3P4a1Fr4ULCWyMCOPN/NNMXnplWRf";
const DPOP_KEY_X: &str = "PrOkQ4MJfWUyeauUKXSO5FsLzX_aT8QVi7pgjXUBgXM";
const DPOP_KEY_Y: &str = "RcyHyBXuvvZQRrc_hrUWvhQsJbIwI483800xeemVZF8";

#[expect(clippy::print_stdout, reason = "one proof is the program's output, for a curl in scripts/bench.sh")]
fn dpop_proofs(htm: &str, htu: &str, access: Option<&str>, count: usize, files: usize, out: &str) -> anyhow::Result<()> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use sha2::Digest;
    // signed with ring, as the server signs ES256: 120,000 proofs in a few seconds, where
    // jsonwebtoken's portable P-256 took about 50 s here, and a proof's `iat` is good for 60
    let rng = ring::rand::SystemRandom::new();
    let key =
        ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &STANDARD.decode(DPOP_KEY_DER)?, &rng)
            .map_err(|e| anyhow::anyhow!("the bench's DPoP key: {e}"))?;
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": DPOP_KEY_X, "y": DPOP_KEY_Y}});
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
    let ath = access.map(|t| URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(t.as_bytes())));
    let iat = OffsetDateTime::now_utc().unix_timestamp();
    let proof = || -> anyhow::Result<String> {
        let mut claims = json!({"jti": Uuid::new_v4().to_string(), "htm": htm, "htu": htu, "iat": iat});
        if let Some(a) = &ath {
            claims["ath"] = json!(a);
        }
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?));
        let signature = key.sign(&rng, input.as_bytes()).map_err(|e| anyhow::anyhow!("signing a DPoP proof: {e}"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    };
    if files == 0 {
        println!("{}", proof()?);
        return Ok(());
    }
    for f in 1..=files {
        let mut lines = String::new();
        for _ in 0..count.div_ceil(files) {
            lines.push_str(&proof()?);
            lines.push('\n');
        }
        std::fs::write(format!("{out}.{f}"), lines)?;
    }
    Ok(())
}

async fn store(url: &str, connections: u32) -> anyhow::Result<Arc<dyn Store>> {
    Ok(if url.starts_with("postgres") {
        let pg = tessera_storage::PgStore::connect_lazy(url, connections)?;
        pg.migrate().await?;
        Arc::new(pg)
    } else {
        let lite = tessera_storage::SqliteStore::connect(url).await?;
        lite.migrate().await?;
        Arc::new(lite)
    })
}

/// One chain: a session of its own, rotated again and again until `until`; the latencies.
async fn chain(store: Arc<dyn Store>, user: tessera_domain::UserId, until: Instant) -> anyhow::Result<Vec<u32>> {
    // a session like any native one, as the store's own tests open them
    let (session, first) = session_of(user, None, OffsetDateTime::now_utc());
    let mut current = first.hash;
    store.open_session(&session, &first).await?;
    let request = RequestMeta { ip: Some("127.0.0.1".into()), user_agent: Some("bench".into()) };
    let faces = vec!["native".to_owned()];
    let mut latencies = vec![];
    while Instant::now() < until {
        let child = random_hash();
        let started = Instant::now();
        let outcome = store
            .rotate(RotateRequest {
                presented: current,
                route: user.route(),
                presenting_client: None,
                now: OffsetDateTime::now_utc(),
                grace: Duration::seconds(5),
                child: NewRefresh { hash: child, sealed_secret: vec![0; 56], access_jti: Uuid::new_v4() },
                bound_access: None,
                faces: Some(&faces),
                not_rotated: &[],
                request: &request,
                rules: &[],
                dpop_jkt: None,
                // the size of a native pair, sealed: stored as the real rotation stores it
                seal_answer: &|_, _| Ok(vec![0; 640]),
            })
            .await?;
        latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        match outcome {
            RotateOutcome::Rotated { .. } => current = child,
            other => anyhow::bail!("a rotation was refused: {other:?}"),
        }
    }
    Ok(latencies)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[tokio::main]
#[expect(clippy::print_stdout, reason = "the measurement is the program's output, for scripts/bench.sh")]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::DpopProofs { htm, htu, access, count, files, out } => dpop_proofs(&htm, &htu, access.as_deref(), count, files, &out)?,
        Command::Db { url, connections, seconds } => {
            let store = store(&url, connections).await?;
            let email = Email::parse(&format!("bench-{}@example.com", Uuid::new_v4().simple()))?;
            let user = store.create_user(&email, None, OffsetDateTime::now_utc()).await?;
            // the pool's connections opened before the clock starts, as a serving pool's are: a
            // short run (make bench alternates one-second ones with the case) would otherwise
            // count their opening against the store
            let warm: Vec<_> = (0..connections)
                .map(|_| {
                    let s = store.clone();
                    tokio::spawn(async move { s.ping().await })
                })
                .collect();
            for w in warm {
                w.await??;
            }
            let until = Instant::now() + StdDuration::from_secs(seconds);
            let tasks: Vec<_> = (0..connections).map(|_| tokio::spawn(chain(store.clone(), user.id, until))).collect();
            let mut all = vec![];
            for t in tasks {
                all.extend(t.await??);
            }
            all.sort_unstable();
            let line = json!({"ceiling": "db", "ops_per_s": all.len() as f64 / seconds as f64, "requests": all.len(), "seconds": seconds,
                "p50_ms": percentile(&all, 0.5), "p99_ms": percentile(&all, 0.99), "connections": connections});
            println!("{line}");
        }
        Command::Argon2 { memory_kib, iterations, parallelism, seconds } => {
            let params = Argon2Params { memory_kib, iterations, parallelism };
            let hasher = Arc::new(Argon2Hasher::new(params)?);
            let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
            let until = Instant::now() + StdDuration::from_secs(seconds);
            let pw = Password::presented("correct horse battery".into())?;
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let h = hasher.clone();
                    let pw = pw.clone();
                    std::thread::spawn(move || {
                        let mut n = 0u64;
                        while Instant::now() < until {
                            let _ = h.hash(&pw);
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let total: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
            let line = json!({"ceiling": "argon2", "ops_per_s": total as f64 / seconds as f64, "threads": threads,
                "memory_kib": memory_kib, "iterations": iterations, "parallelism": parallelism});
            println!("{line}");
        }
    }
    Ok(())
}
