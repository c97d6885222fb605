//! Registration and password logins: the address and account limits, the lockout, the
//! timing floor of refused logins, re-hashing imported hashes, password changes.

use super::*;

impl TokenService {
    #[tracing::instrument(skip_all)]
    pub async fn register(&self, email: &str, password: String, now: OffsetDateTime) -> Result<User, DomainError> {
        let email = new_account_email(email)?;
        let password = self.settings.password_policy.new_password(password)?;
        let hash = self.hasher.hash(password).await?;
        let user = self.store.create_user(&email, Some(&hash), now).await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
    }

    /// Registration over HTTP, from a client address: under the same per-address rate as
    /// password attempts, and hashed within the share of the hashing capacity registrations may
    /// take (logins keep the rest).
    #[tracing::instrument(skip_all)]
    pub async fn register_from(
        &self,
        email: &str,
        password: String,
        address: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<User, DomainError> {
        let address = self.address_key(address);
        self.address_rate("registration", &address, now).await?;
        let email = new_account_email(email)?;
        let password = self.settings.password_policy.new_password(password)?;
        let hash = self.hasher.hash_new_account(password).await?;
        let user = self.store.create_user(&email, Some(&hash), now).await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
    }

    /// What a client address is limited and locked out under: its network
    /// ([`crate::throttle::address_key`]).
    pub(super) fn address_key(&self, address: Option<&str>) -> String {
        let (v4, v6) = self.settings.address_prefixes;
        crate::throttle::address_key(address.unwrap_or("unknown"), v4, v6)
    }

    /// The per-address rate of everything that hashes a password: `Err(Throttled)` beyond it.
    pub(super) async fn address_rate(&self, face: &str, address: &str, now: OffsetDateTime) -> Result<(), DomainError> {
        let Some(Err(wait)) = self.limiter.as_ref().map(|l| l.check(address)) else { return Ok(()) };
        if face != "registration" {
            self.emit(Event::Login { face, outcome: LoginOutcome::Throttled });
        }
        // once per address and minute, in the log as in the audit trail: a flood of refused
        // attempts (24,000 a second from one address in `make soak`) writes one line, not each
        if self.first_throttle_this_minute(address, now) {
            tracing::warn!(api = face, %address, "password attempts from this address throttled (logged once a minute per address)");
            self.audit("throttled", None, serde_json::json!({"api": face, "address": address}), now).await;
        }
        let wait = Duration::try_from(wait).unwrap_or(Duration::SECOND);
        Err(DomainError::Throttled { retry_after: retry_after_secs(wait) })
    }

    /// Holds every failed password check to what verifying the costliest hash still stored
    /// costs: one stored hash of each kind not yet re-hashed (an import's pbkdf2 or scrypt, an
    /// older Argon2) is measured, with the dummy hash of unknown e-mails. Run at startup and
    /// every few minutes: the floor falls as imported users log in and are re-hashed. Returns it.
    pub async fn calibrate_password_floor(&self) -> Result<std::time::Duration, DomainError> {
        /// Kinds measured at most: an import has a handful.
        const MAX_KINDS: usize = 32;
        let Some(current) = self.hasher.current_prefix() else { return Ok(std::time::Duration::ZERO) };
        let mut kinds: std::collections::HashMap<String, PasswordHash> = std::collections::HashMap::new();
        let mut after = 0;
        'pages: loop {
            let page = self.store.stale_password_hashes(&current, after, 1000).await?;
            let Some(&(last, _)) = page.last() else { break };
            after = last.0;
            for (_, hash) in page {
                if kinds.len() >= MAX_KINDS {
                    tracing::warn!(kinds = MAX_KINDS, "more kinds of stored password hashes than are measured");
                    break 'pages;
                }
                kinds.entry(crate::password::cost_class(hash.as_str()).to_owned()).or_insert(hash);
            }
        }
        let floor = self.hasher.calibrate(kinds.into_values().collect()).await?;
        Ok(floor)
    }

    /// Checks e-mail and password. An unknown e-mail costs what a known one does.
    #[tracing::instrument(skip_all)]
    pub async fn check_password(&self, email: &str, password: String) -> Result<User, DomainError> {
        let password = Password::presented(password)?;
        let user = match Email::parse(email) {
            Ok(e) => self.store.user_by_email(&e).await?,
            Err(_) => None,
        };
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let rehash = hash.as_ref().is_some_and(|h| self.hasher.needs_rehash(h)).then(|| password.clone());
        let ok = self.hasher.verify(password, hash.clone()).await?;
        match user {
            Some(mut u) if ok => {
                if u.status == UserStatus::Blocked {
                    return Err(AuthError::UserBlocked.into());
                }
                if let (Some(password), Some(old)) = (rehash, hash)
                    && let Some(new) = self.rehash(&u, password, &old).await
                {
                    u.password_hash = Some(new);
                }
                Ok(u)
            }
            _ => Err(AuthError::InvalidCredentials.into()),
        }
    }

    /// Replaces an imported (or outdated) hash by Tessera's Argon2id once the password has been
    /// checked against it, and returns the hash now stored. A failure is logged and the login
    /// goes on: the old hash still works.
    pub(super) async fn rehash(&self, user: &User, password: Password, old: &PasswordHash) -> Option<PasswordHash> {
        let result = match self.hasher.hash(password).await {
            Ok(new) => self.store.rehash_password(user.id, old, &new).await.map(|done| done.then_some(new)).map_err(DomainError::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(Some(new)) => {
                tracing::info!(user_id = %user.id, "password re-hashed to Argon2id");
                Some(new)
            }
            Ok(None) => {
                tracing::info!(user_id = %user.id, "password changed meanwhile; not re-hashed");
                None
            }
            Err(e) => {
                tracing::warn!(user_id = %user.id, error = %e, "password re-hash failed; the old hash stays");
                None
            }
        }
    }

    pub(super) fn first_throttle_this_minute(&self, address: &str, now: OffsetDateTime) -> bool {
        let Ok(mut seen) = self.throttle_audited.lock() else { return true };
        if seen.len() > 10_000 {
            seen.retain(|_, t| now - *t < Duration::MINUTE);
        }
        match seen.get(address) {
            Some(t) if now - *t < Duration::MINUTE => false,
            _ => {
                seen.insert(address.to_owned(), now);
                true
            }
        }
    }

    /// Password login at a face: a new session and its first pair.
    #[tracing::instrument(skip_all, fields(api = %face.name))]
    pub async fn login_password(
        &self,
        face: &Face,
        email: &str,
        password: String,
        origin: LoginOrigin<'_>,
        now: OffsetDateTime,
    ) -> Result<IssuedPair, DomainError> {
        let address = self.address_key(origin.request.ip.as_deref());
        let (user, account) = self.password_attempt(&face.name, email, password, &address, now).await?;
        // the success is recorded with the session, in one write
        self.start_session(face, &user, origin, now, Some((&account, &address))).await
    }

    /// One password attempt, as every password endpoint makes it: the address's rate, the
    /// hash queue's room, the account's lockout at this address, then the hash; the outcome is
    /// counted, logged and audited. A success is not recorded yet: the caller records it with
    /// what it writes next (`login_succeeded`, or the session it opens), under the returned
    /// account key.
    pub(super) async fn password_attempt(
        &self,
        face: &str,
        email: &str,
        password: String,
        address: &str,
        now: OffsetDateTime,
    ) -> Result<(User, String), DomainError> {
        self.address_rate(face, address, now).await?;
        // In a flood of logins, refused at once: no database read for a hash that cannot wait.
        self.hasher.admit()?;
        let account = crate::throttle::account_key(email);
        // A locked account is refused before any hash is computed: guesses cost the attacker
        // nothing more, and the server nothing at all.
        if let Some(until) = self.store.login_lock(&account, address, now).await? {
            // once a minute per address: refusals cost no hash, so they come as fast as requests
            if self.first_throttle_this_minute(&format!("locked out {address}"), now) {
                tracing::warn!(api = face, %address, "login refused: the account is locked out at this address (logged once a minute per address)");
            }
            self.emit(Event::Login { face, outcome: LoginOutcome::Locked });
            return Err(DomainError::Throttled { retry_after: retry_after_secs(until - now) });
        }
        match self.check_password(email, password).await {
            Ok(user) => {
                self.emit(Event::Login { face, outcome: LoginOutcome::Ok });
                Ok((user, account))
            }
            Err(DomainError::Auth(AuthError::InvalidCredentials)) => {
                let lock = self.store.login_failed(&account, address, now, &self.settings.lockout).await?;
                self.emit(Event::Login { face, outcome: LoginOutcome::Failed });
                // the address as typed (the lockout's key is its comparison form)
                let typed = crate::throttle::as_typed(email);
                let detail = serde_json::json!({"api": face, "account": typed, "address": address});
                // the log follows the audit trail: the first failure of a network in its window
                // in full, the rest counted there (a spray writes neither a line nor an event each)
                if self.first_failure_in_window(address, &typed, now) {
                    tracing::warn!(api = face, %address, locked = lock.is_some(), "login failed: wrong e-mail or password");
                    self.audit("login_failed", None, detail.clone(), now).await;
                } else {
                    tracing::debug!(api = face, %address, locked = lock.is_some(), "login failed: wrong e-mail or password");
                }
                if let Some(until) = lock {
                    let mut detail = detail;
                    detail["until"] = serde_json::json!(until.unix_timestamp());
                    self.audit("lockout", None, detail, now).await;
                }
                Err(AuthError::InvalidCredentials.into())
            }
            Err(e) => {
                if matches!(e, DomainError::Auth(_)) {
                    self.emit(Event::Login { face, outcome: LoginOutcome::Failed });
                }
                Err(e)
            }
        }
    }

    /// Changes the caller's password: the current one must be right (under the same rate,
    /// lockout and hash bounds as a login), the new one must pass the policy. Every other
    /// session of the user ends; the caller's own goes on. Returns how many sessions ended.
    #[tracing::instrument(skip_all, fields(user_id = %ctx.user_id))]
    pub async fn change_password(
        &self,
        ctx: &AccessContext,
        current: String,
        new: String,
        address: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<usize, DomainError> {
        let user = self.store.user_by_id(ctx.user_id).await?.ok_or(AuthError::UnknownUser)?;
        let new = self.settings.password_policy.new_password(new)?;
        let email = user.email.to_string();
        let address = self.address_key(address);
        // the user as the check left it: with the hash it checked, or the re-hash of an imported one
        let (user, account) = self.password_attempt("native", &email, current, &address, now).await?;
        self.store.login_succeeded(&account, &address, now).await?;
        let old = user.password_hash.clone().ok_or(AuthError::InvalidCredentials)?;
        let hash = self.hasher.hash(new).await?;
        // replaced only if no one changed it since it was checked
        if !self.store.rehash_password(user.id, &old, &hash).await? {
            return Err(DomainError::invalid("current_password", "the password was changed meanwhile; try again"));
        }
        self.forget_user(user.id);
        let ended = self.revoke_all(user.id, Some(ctx.session_id), "password_changed", now).await?;
        self.audit("password_changed", Some(user.id.0), serde_json::json!({"sessions_ended": ended}), now).await;
        if let Some(n) = &self.notifier {
            n.password_changed(&user, false, now);
        }
        tracing::info!(ended, "password changed");
        Ok(ended)
    }

    /// Forgets failed attempts older than the lockout's reset time, and the addresses an owner
    /// logged in from once they have not been seen for 90 days.
    pub async fn sweep_login_attempts(&self, now: OffsetDateTime) -> Result<u64, DomainError> {
        let keep = Duration::seconds(i64::from(self.settings.lockout.reset_seconds)).max(self.settings.attempts_retention);
        Ok(self.store.prune_login_attempts(now - keep).await?)
    }

    /// Whether a failed login from `address` is the first of its window, to be audited in full.
    /// The others are counted (with up to ten of the accounts they named) and audited together
    /// by [`Self::flush_failed_logins`] once the window has passed: a spray from one network
    /// writes at most two audit events a window. Past 10,000 networks at once, every failure is
    /// audited on its own (memory stays bounded; the per-address rate still bounds the writes).
    pub(super) fn first_failure_in_window(&self, address: &str, account: &str, now: OffsetDateTime) -> bool {
        let window = self.settings.failed_login_window;
        if window <= Duration::ZERO {
            return true;
        }
        let Ok(mut f) = self.failed_logins.lock() else { return true };
        let full = f.open.len() >= MAX_FAILURE_WINDOWS;
        match f.open.get_mut(address) {
            Some(w) if now - w.started < window => {
                w.more += 1;
                w.last = now;
                if w.accounts.len() < 10 && !w.accounts.iter().any(|a| a == account) {
                    w.accounts.push(account.to_owned());
                }
                false
            }
            // the window has passed: it waits for the sweep, and this failure opens the next one
            Some(w) => {
                let passed = std::mem::replace(w, FailureWindow::new(now));
                if passed.more > 0 && f.closed.len() < MAX_FAILURE_WINDOWS {
                    f.closed.push((address.to_owned(), passed));
                }
                true
            }
            None if full => true,
            None => {
                f.open.insert(address.to_owned(), FailureWindow::new(now));
                true
            }
        }
    }

    /// Audits the failed logins counted in windows that have passed (one `login_failures` event
    /// per address network and window), and forgets them. Returns how many events it wrote.
    pub async fn flush_failed_logins(&self, now: OffsetDateTime) -> usize {
        let window = self.settings.failed_login_window;
        let done: Vec<(String, FailureWindow)> = match self.failed_logins.lock() {
            Ok(mut f) => {
                let passed: Vec<String> = f.open.iter().filter(|(_, w)| now - w.started >= window).map(|(k, _)| k.clone()).collect();
                let mut done = std::mem::take(&mut f.closed);
                done.extend(passed.into_iter().filter_map(|k| f.open.remove(&k).map(|w| (k, w))));
                done
            }
            Err(_) => vec![],
        };
        let mut written = 0;
        for (address, w) in done.into_iter().filter(|(_, w)| w.more > 0) {
            let detail = serde_json::json!({"address": address, "failures": w.more, "accounts": w.accounts,
                "from": w.started.unix_timestamp(), "to": w.last.unix_timestamp()});
            self.audit("login_failures", None, detail, now).await;
            written += 1;
        }
        written
    }
}
