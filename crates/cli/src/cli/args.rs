//! The command line's grammar (clap): every command, its options and its help.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "Tessera: a token service (JWT access / refresh pairs)")]
pub struct Cli {
    /// Configuration file (default: config/default.toml, if present).
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Overrides database.url.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Print results as JSON: one object per line (a list: one per item).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTP service (applies migrations first unless database.migrate_on_start = false).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// List and end users' sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Carry users and revoked tokens over from the deployment Tessera replaces.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Read and check the tamper-evident audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Replay the exchanges captured from an original library (simplejwt, flask-jwt-extended)
    /// against a deployment, Tessera or the original, and report every case; exits 4 when one
    /// fails. The user must exist; it is logged in several times.
    Conformance(ConformanceArgs),
    /// Check the configuration, the database, the keys and the mounted APIs, and say what is
    /// wrong in plain words; exits 4 when something is.
    Doctor,
}

#[derive(Debug, clap::Args)]
pub struct ConformanceArgs {
    #[arg(long, value_enum)]
    pub dialect: crate::conformance::Dialect,
    /// The deployment's root URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub base_url: String,
    /// A user of the deployment (what its login form's username field takes).
    #[arg(long)]
    pub user: String,
    /// The user's password; read from standard input when not given.
    #[arg(long)]
    pub password: Option<String>,
    /// The library version whose answers are expected: legacy (the versions the original APIs
    /// were documented against) or current.
    #[arg(long, value_enum, default_value = "legacy")]
    pub era: crate::conformance::Era,
    /// documented: the paths and schemes the original APIs document (as Tessera serves them);
    /// captured: those of the captured original app (flask at /login, djoser with Bearer).
    #[arg(long, value_enum, default_value = "documented")]
    pub routes: crate::conformance::Routes,
    /// The login form's name for the user (simplejwt's USERNAME_FIELD). Default: the field the
    /// deployment names when it refuses an empty login (`username` when it names none).
    #[arg(long)]
    pub username_field: Option<String>,
    /// A file holding the deployment's HS256 signing secret, to make expired tokens; without
    /// it the expired-token cases are skipped.
    #[arg(long)]
    pub hs256_secret_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Events, newest first: time, kind, user, session and detail.
    List {
        /// Only this user's events (e-mail or id).
        #[arg(long)]
        user: Option<String>,
        /// Only events at or after this time: RFC 3339 (2026-12-01T00:00:00Z) or an age (24h, 7d).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Seals new events, then checks the whole chain; exits 4 naming the first edited, inserted
    /// or deleted event.
    Verify {
        /// A head printed by `tessera audit head` (or logged by the server) and kept outside the
        /// database: the chain must still hold it, so deleting the newest events or sealing
        /// events again is caught too. Nothing is sealed unless the chain holds it.
        #[arg(long)]
        head: Option<String>,
    },
    /// Checks the whole chain, then prints its keyed head (position, count, hash, and an HMAC
    /// under a key derived from the master key): keep it outside the database and check the
    /// trail against it later with `audit verify --head`. Exits 4 when the chain is broken.
    Head,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// From a Django deployment's database: its users (`auth_user`, ids kept, password hashes
    /// kept and re-hashed to Argon2id at each user's next login) and simplejwt's blacklist
    /// (`token_blacklist_*`, which needs the API's `legacy_secret`). Safe to run again.
    Django {
        /// The Django database: `postgres://…` or `sqlite:path/to/db.sqlite3` (read only).
        #[arg(long = "from")]
        from: String,
        /// The API (simplejwt or djoser) whose legacy tokens the blacklist holds.
        #[arg(long = "api", alias = "face", value_name = "API", default_value = "simplejwt")]
        face: String,
        /// When a user's id or e-mail belongs to another user here: `stop` imports nothing and
        /// lists the conflicts (exit 5); `skip` imports the others and lists them.
        #[arg(long, value_enum, default_value = "stop")]
        on_conflict: crate::import::OnConflict,
    },
    /// From a flask-jwt-extended deployment: a JSON Lines file of its users, one
    /// `{"id": 1, "email": "…", "password_hash": "…", "active": true}` a line (ids kept: the
    /// tokens carry them; Werkzeug, Django or Argon2 hashes, re-hashed at each user's next
    /// login). Safe to run again.
    Flask {
        /// The users file (JSON Lines).
        #[arg(long = "from")]
        from: std::path::PathBuf,
        /// As for `import django`.
        #[arg(long, value_enum, default_value = "stop")]
        on_conflict: crate::import::OnConflict,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// The signing keys: kid, algorithm, state, and when created, activated and retired.
    List,
    /// Publish a next key now; with --now it also signs at once and the active key retires.
    /// Without --now the schedule activates it once it has been published for a JWKS max-age.
    Rotate {
        /// The algorithm (default: tokens.algorithm, the native API's).
        #[arg(long)]
        alg: Option<String>,
        #[arg(long)]
        now: bool,
    },
    /// Retire a key: it stops signing; its tokens verify until they expire.
    Retire { kid: String },
    /// Revoke a compromised key: every token it signed is refused at once; a new key signs.
    Revoke { kid: String },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from the first line of standard input unless given.
    Create {
        #[arg(long)]
        email: String,
        /// Visible to other local users in the process list: prefer standard input.
        #[arg(long)]
        password: Option<String>,
    },
    /// Users in id order: id, status, created, e-mail.
    List {
        /// Only users with an id above this one (the next page).
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One user: id, e-mail, status, created, password changed, live sessions.
    Show {
        #[arg(long)]
        email: String,
    },
    /// Block a user: every session ends at once and every API refuses the user.
    Block {
        #[arg(long)]
        email: String,
    },
    /// Unblock a user.
    Unblock {
        #[arg(long)]
        email: String,
    },
    /// Set a user's password (read from standard input unless given); every session ends.
    SetPassword {
        #[arg(long)]
        email: String,
        /// Visible to other local users in the process list: prefer standard input.
        #[arg(long)]
        password: Option<String>,
    },
    /// Delete a user: every session ends, the e-mail and password are erased and the address
    /// is free again. The id is never given out again. Needs --yes.
    Delete {
        #[arg(long)]
        email: String,
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// A user's live sessions, newest first: id, API, client, created, last used, address and
    /// User-Agent.
    List {
        #[arg(long)]
        email: String,
    },
    /// End a session: its refresh token stops working and its access tokens are refused.
    /// Exits 3 when no live session has this id.
    Revoke {
        #[arg(long, value_parser = session_id)]
        id: uuid::Uuid,
    },
}

/// A session id as `session list` prints it; anything else is refused in words.
fn session_id(s: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::parse_str(s).map_err(|_| format!("{s:?} is not a session id: one is a UUID, as `tessera session list` prints it"))
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create an OAuth client; a confidential client's secret is printed once and stored hashed.
    Create {
        #[arg(long)]
        client_id: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Give the client a secret it must present.
        #[arg(long)]
        confidential: bool,
        /// The token profile of its sessions (standard, extended or a configured one); its access
        /// lifetime is also that of the client's own tokens.
        #[arg(long, default_value = "standard")]
        profile: String,
        /// A scope it may ask for with the client_credentials grant (repeat for more).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// An audience (`aud`) it may ask for with the client_credentials grant (repeat for more).
        /// A confidential client with an audience may use that grant.
        #[arg(long = "audience", value_name = "AUDIENCE")]
        audiences: Vec<String>,
        /// Its tokens must be bound to a key it holds (DPoP): a token request without a proof
        /// is refused.
        #[arg(long)]
        require_dpop: bool,
        /// A subject token type it may exchange for a token for one of its audiences (token
        /// exchange, RFC 8693): access_token or refresh_token (repeat for both).
        #[arg(long, value_name = "TYPE")]
        exchange: Vec<String>,
    },
    /// Every client: id, confidential or public, profile, created, name.
    List,
    /// One client.
    Show {
        #[arg(long)]
        client_id: String,
    },
    /// Give a client a new secret (a public client becomes confidential); printed once. The
    /// old secret stops working at once.
    RotateSecret {
        #[arg(long)]
        client_id: String,
    },
    /// Change the token profile the client's new sessions get.
    SetProfile {
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        profile: String,
    },
    /// Delete a client: its sessions end. Needs --yes.
    Delete {
        #[arg(long)]
        client_id: String,
        #[arg(long)]
        yes: bool,
    },
}
