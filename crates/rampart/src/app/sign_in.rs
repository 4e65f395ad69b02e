//! Use cases of signing in: the password step with its defences against guessing (rising
//! delays per person and network, a lock after 100 failures in a row, one hasher lane for
//! networks that failed recently, a per-network rate), and the pending sign-in a second factor
//! completes.

use secrecy::SecretString;

use super::audit::{Action, Actor, AuditEvent};
use super::sessions::{Client, NewSession};
use super::{App, AppError};
use crate::clock::Millis;
use crate::identity::codes::LinkToken;
use crate::identity::password::{Password, Verification};
use crate::network::ip::client_network;
use crate::store::people::UserRecord;
use crate::store::sessions::ChallengeRecord;

/// The prefix of the token of a sign-in waiting for its second factor.
pub const PENDING_PREFIX: &str = "rl";
/// How long a sign-in may wait for its second factor.
pub const PENDING_TTL_MS: Millis = 5 * 60 * 1000;
/// Failed sign-ins in a row that lock a user until a reset or an operator (NIST SP 800-63B
/// 5.2.2: at most 100).
pub const LOCK_AFTER_FAILURES: u32 = 100;
/// Wrong second factors a pending sign-in survives (then the password step starts again).
pub const MAX_SECOND_FACTOR_ATTEMPTS: u32 = 3;

/// The outcome of the password step.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in.
    Done(Box<NewSession>),
    /// The password was right; a second factor must follow within [`PENDING_TTL_MS`], with
    /// this token (kept in a cookie).
    SecondFactor {
        pending: LinkToken,
        factors: Vec<&'static str>,
        expires_at: Millis,
    },
}

/// A person's email as the sign-in name: trimmed and lowercased.
pub fn normalise_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

impl App {
    /// The password step of signing in. Unknown emails cost the same work as known ones and
    /// get the same answer (OWASP ASVS 4.0 V2.2.1 and V3.2; no user enumeration); failures
    /// slow down the user and the client network, and lock the user after 100 in a row
    /// (NIST SP 800-63B 5.2.2).
    pub async fn sign_in(
        &self,
        email: &str,
        password: SecretString,
        client: &Client,
    ) -> Result<SignIn, AppError> {
        let email = normalise_email(email);
        // A network that failed recently shares one lane to the password hasher with every
        // other such network, so a flood from a few addresses cannot make people at clean
        // addresses wait behind it.
        let suspect = client.ip.is_some_and(|ip| {
            self.sign_in_network_throttle
                .failures(&client_network(ip), self.clock.now_ms())
                > 0
        });
        let user = self.check_attempt(&email, client, |tx| tx.find_user_by_email(&email))?;
        let now = self.clock.now_ms();
        // Past this many attempts waiting for the password hasher, answer at once rather
        // than queue behind a flood (the client retries after Retry-After).
        let Ok(_queued) = self.sign_in_queue.try_acquire() else {
            metrics::counter!("rampart_sign_in_shed_total").increment(1);
            return Err(AppError::Throttled {
                retry_after_ms: 1_000,
            });
        };
        let _lane = match suspect {
            true => Some(self.suspect_sign_ins.acquire().await),
            false => None,
        };
        let verified = match user.as_ref().and_then(|u| u.password_hash.as_deref()) {
            Some(phc) => self.passwords.verify(&password, phc).await,
            None => {
                self.passwords.verify_dummy(&password).await;
                Verification::Mismatch
            }
        };
        let user = match (user, verified) {
            (Some(user), Verification::Match { needs_rehash })
                if user.disabled_at.is_none() && user.locked_at.is_none() =>
            {
                if needs_rehash {
                    self.rehash(&user, &password).await;
                }
                user
            }
            (user, _) => {
                return Err(self.note_failed_attempt(user.as_ref(), client, now).await);
            }
        };
        self.note_successful_attempt(&email, &user, client);
        let factors = self.second_factors(&user)?;
        if factors.is_empty() {
            let session = self.start_session(&user, client).await?;
            return Ok(SignIn::Done(Box::new(session)));
        }
        let pending = LinkToken::generate(PENDING_PREFIX);
        let challenge = self.challenge(&pending, "sign_in", &user.id, now + PENDING_TTL_MS);
        let user_id = user.id.clone();
        self.store
            .write(move |tx| {
                tx.end_challenges(&user_id, "sign_in", now)?;
                tx.insert_challenge(&challenge)
            })
            .await?;
        Ok(SignIn::SecondFactor {
            pending,
            factors,
            expires_at: now + PENDING_TTL_MS,
        })
    }

    /// Refuses an attempt that must wait (the user or the client network failed too often),
    /// then reads the user.
    pub(crate) fn check_attempt<F>(
        &self,
        email: &str,
        client: &Client,
        find: F,
    ) -> Result<Option<UserRecord>, AppError>
    where
        F: FnOnce(&crate::store::Tx<'_>) -> Result<Option<UserRecord>, crate::store::StoreError>,
    {
        let now = self.clock.now_ms();
        self.limit_client(client)?;
        let wait = |w: crate::identity::softlock::RetryAfter| AppError::Throttled {
            retry_after_ms: w.0,
        };
        self.sign_in_throttle
            .check(&throttle_key(email, client), now)
            .map_err(wait)?;
        if let Some(ip) = client.ip {
            self.sign_in_network_throttle
                .check(&client_network(ip), now)
                .map_err(wait)?;
        }
        // Charged now, not after the password is checked: attempts sent all at once would
        // otherwise all pass the check before the first failure is counted. A success
        // refunds them.
        self.sign_in_throttle
            .fail(&throttle_key(email, client), now);
        if let Some(ip) = client.ip {
            self.sign_in_network_throttle.fail(&client_network(ip), now);
        }
        Ok(self.store.read(find)?)
    }

    /// Refuses a banned client, and one over the per-network rate of the routes open before
    /// signing in (`rate_limits.sign_in_per_minute`).
    pub(crate) fn limit_client(&self, client: &Client) -> Result<(), AppError> {
        let Some(ip) = client.ip else {
            return Ok(());
        };
        self.refuse_if_banned(ip)?;
        self.rate_limits
            .check_client(&client_network(ip).to_string())
            .map_err(|limited| {
                metrics::counter!("rampart_rate_limited_total", "scope" => "client").increment(1);
                AppError::RateLimited(limited)
            })
    }

    /// Counts a failed attempt; locks the user at the hard limit. Returns the answer to give.
    pub(crate) async fn note_failed_attempt(
        &self,
        user: Option<&UserRecord>,
        client: &Client,
        now: Millis,
    ) -> AppError {
        metrics::counter!("rampart_sign_in_failures_total").increment(1);
        if let Some(ip) = client.ip {
            self.note_failed_authentication(ip);
        }
        let user_id = user.map(|u| u.id.clone());
        let mut audit = self.person_event(
            user_id.clone(),
            Action::LoginFailed,
            user_id.clone().unwrap_or_else(|| "unknown".into()),
            client,
            now,
        );
        audit = audit.denied("invalid_credentials");
        let locked_at = user.and_then(|u| u.locked_at);
        let lock = self.store.write(move |tx| {
            audit.record(tx)?;
            let Some(id) = user_id else {
                return Ok::<_, AppError>(false);
            };
            let failures = tx.note_failed_login(&id)?;
            let lock = failures >= LOCK_AFTER_FAILURES && locked_at.is_none();
            if lock {
                tx.set_user_locked(&id, Some(now))?;
                AuditEvent {
                    actor: Actor::System,
                    account_id: None,
                    action: Action::UserLocked,
                    target: id,
                    client_ip: None,
                    outcome: super::audit::Outcome::Done,
                    at: now,
                }
                .record(tx)?;
            }
            Ok(lock)
        });
        match lock.await {
            Ok(true) => tracing::warn!("a user was locked after repeated failed sign-ins"),
            Ok(false) => {}
            Err(e) => return e,
        }
        AppError::SignInRefused
    }

    pub(crate) fn note_successful_attempt(&self, email: &str, user: &UserRecord, client: &Client) {
        self.sign_in_throttle.succeed(&throttle_key(email, client));
        if let Some(ip) = client.ip {
            self.sign_in_network_throttle.succeed(&client_network(ip));
        }
        if user.failed_logins > 0 {
            let id = user.id.clone();
            self.store
                .write_detached(move |tx| tx.clear_failed_logins(&id));
        }
    }

    /// The sign-in waiting for its second factor behind a presented token, and its person.
    /// Every failure is the same refusal.
    pub fn pending_sign_in(
        &self,
        presented: &str,
    ) -> Result<(ChallengeRecord, UserRecord), AppError> {
        let (challenge, user) = self.open_challenge(PENDING_PREFIX, "sign_in", presented)?;
        if challenge.attempts >= MAX_SECOND_FACTOR_ATTEMPTS || user.locked_at.is_some() {
            return Err(AppError::SignInRefused);
        }
        Ok((challenge, user))
    }

    /// A wrong second factor: counted on the pending sign-in, which dies after three (the
    /// person starts again with their password), and on the person's failures in a row.
    pub async fn fail_second_factor(
        &self,
        challenge: &ChallengeRecord,
        user: &UserRecord,
        factor: &'static str,
        client: &Client,
    ) -> AppError {
        let now = self.clock.now_ms();
        let id = challenge.id.clone();
        if let Err(e) = self
            .store
            .write(move |tx| {
                let attempts = tx.note_challenge_attempt(&id)?;
                if attempts >= MAX_SECOND_FACTOR_ATTEMPTS {
                    tx.use_challenge(&id, now)?;
                }
                Ok::<_, AppError>(())
            })
            .await
        {
            return e;
        }
        tracing::info!(factor, "a second factor was refused");
        self.sign_in_throttle
            .fail(&throttle_key(&user.email, client), now);
        self.note_failed_attempt(Some(user), client, now).await
    }

    /// Completes a sign-in whose second factor was accepted: the pending sign-in is used up
    /// and a session starts.
    pub async fn finish_sign_in(
        &self,
        challenge: &ChallengeRecord,
        user: &UserRecord,
        client: &Client,
    ) -> Result<NewSession, AppError> {
        let now = self.clock.now_ms();
        let id = challenge.id.clone();
        let fresh = self
            .store
            .write(move |tx| Ok::<_, AppError>(tx.use_challenge(&id, now)?))
            .await?;
        if !fresh {
            return Err(AppError::SignInRefused);
        }
        self.note_successful_attempt(&user.email, user, client);
        self.start_session(user, client).await
    }

    /// Replaces a stored hash made with weaker settings, while the password is at hand.
    async fn rehash(&self, user: &UserRecord, password: &SecretString) {
        let Ok(password) = Password::from_verified(password) else {
            return;
        };
        match self.passwords.hash(&password).await {
            Ok(phc) => {
                let (id, changed) = (user.id.clone(), user.password_changed_at);
                let now = changed.unwrap_or_else(|| self.clock.now_ms());
                self.store
                    .write_detached(move |tx| tx.set_user_password(&id, &phc, now));
            }
            Err(e) => tracing::warn!(error = %e, "cannot rehash a password"),
        }
    }

    /// The second factors a user must choose from at sign-in (empty: none enrolled).
    pub(crate) fn second_factors(&self, user: &UserRecord) -> Result<Vec<&'static str>, AppError> {
        let user_id = user.id.clone();
        let (factors, recovery, sms_allowed) = self.store.read(|tx| {
            let factors = tx.list_factors(&user_id)?;
            let recovery = tx.count_recovery_codes(&user_id)?;
            let mut sms_allowed = true;
            for membership in tx.list_memberships(&user_id)? {
                sms_allowed &= tx.people_policy(&membership.account_id)?.allow_sms_factor;
            }
            Ok::<_, AppError>((factors, recovery, sms_allowed))
        })?;
        let mut kinds = Vec::new();
        let confirmed = |kind: &str| {
            factors
                .iter()
                .any(|f| f.kind == kind && f.confirmed_at.is_some())
        };
        if confirmed("totp") {
            kinds.push("totp");
        }
        if confirmed("passkey") {
            kinds.push("passkey");
        }
        if user.phone_sealed.is_some() && sms_allowed {
            kinds.push("sms");
        }
        if !kinds.is_empty() && recovery > 0 {
            kinds.push("recovery_code");
        }
        Ok(kinds)
    }
}

/// The key of the rising delays of one person: the email together with the client network,
/// so that failures from elsewhere slow the attacker, not the person at their own desk. The
/// lock after 100 failures in a row counts every network (it lives with the user record).
fn throttle_key(email: &str, client: &Client) -> String {
    match client.ip {
        Some(ip) => format!("{email} {}", client_network(ip)),
        None => email.to_owned(),
    }
}
