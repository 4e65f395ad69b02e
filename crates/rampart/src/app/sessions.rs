//! Use cases of people signing in: the password step, sessions (start, authenticate each
//! request, list, revoke, sign out), step-up re-authentication, and changing one's password.
//!
//! Sessions follow OWASP ASVS 4.0 V3: a random token (V3.2.2) kept only as a keyed hash,
//! idle and absolute timeouts (V3.3.2), every session ended after a password change (V3.3.3),
//! and a CSRF token bound to the session for every state-changing request (V4.2.2).

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use subtle::ConstantTimeEq;

use super::audit::{Action, Actor, AuditEvent, Caller, SessionCaller};
use super::{App, AppError};
use crate::clock::Millis;
use crate::identity::Scopes;
use crate::identity::codes::LinkToken;
use crate::identity::password::{Password, PasswordContext, Verification};
use crate::identity::roles::Role;
use crate::network::ip::{AccountNetworks, client_network};
use crate::store::people::{MembershipRecord, UserRecord};
use crate::store::sessions::ChallengeRecord;
pub use crate::store::sessions::SessionRecord;

/// The prefix of session tokens.
pub const SESSION_PREFIX: &str = "rs";
/// The prefix of the token of a sign-in waiting for its second factor.
pub const PENDING_PREFIX: &str = "rl";
/// How long a sign-in may wait for its second factor.
pub const PENDING_TTL_MS: Millis = 5 * 60 * 1000;
/// Failed sign-ins in a row that lock a user until a reset or an operator (NIST SP 800-63B
/// 5.2.2: at most 100).
pub const LOCK_AFTER_FAILURES: u32 = 100;
/// Wrong second factors a pending sign-in survives (then the password step starts again).
pub const MAX_SECOND_FACTOR_ATTEMPTS: u32 = 3;
/// A session's `last_seen_at` is written at most this often.
const TOUCH_EVERY_MS: Millis = 60_000;

/// Where a request comes from, for the audit trail and the session list.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A session just started: the token for the cookie, and the CSRF token for the client.
#[derive(Debug)]
pub struct NewSession {
    pub token: LinkToken,
    pub csrf_token: String,
    pub session: SessionRecord,
    pub user: UserRecord,
}

/// The outcome of the password step.
// Made once per sign-in and taken apart at once: boxing the session would buy nothing.
#[allow(clippy::large_enum_variant)]
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
        let challenge = ChallengeRecord {
            id: pending.id().to_owned(),
            purpose: "sign_in".into(),
            user_id: Some(user.id.clone()),
            account_id: None,
            role: None,
            hash: self.sealer.hash_api_key(pending.reveal()).to_vec(),
            state_sealed: None,
            attempts: 0,
            created_at: now,
            expires_at: now + PENDING_TTL_MS,
            used_at: None,
        };
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

    /// Starts a session for a user who has proved who they are.
    pub(crate) async fn start_session(
        &self,
        user: &UserRecord,
        client: &Client,
    ) -> Result<NewSession, AppError> {
        let now = self.clock.now_ms();
        let people = &self.config.people;
        let token = LinkToken::generate(SESSION_PREFIX);
        let session = SessionRecord {
            id: token.id().to_owned(),
            user_id: user.id.clone(),
            hash: self.sealer.hash_api_key(token.reveal()).to_vec(),
            created_at: now,
            last_seen_at: now,
            authenticated_at: now,
            expires_at: now + Millis::from(people.session_absolute_hours) * 3_600_000,
            revoked_at: None,
            client_ip: client.ip.map(|ip| ip.to_string()),
            user_agent: client
                .user_agent
                .as_deref()
                .map(|ua| ua.chars().filter(|c| !c.is_control()).take(200).collect()),
        };
        let audit = self.person_event(
            Some(user.id.clone()),
            Action::LoginSucceeded,
            &session.id,
            client,
            now,
        );
        let record = session.clone();
        self.store
            .write(move |tx| {
                tx.insert_session(&record)?;
                audit.record(tx)
            })
            .await?;
        Ok(NewSession {
            csrf_token: self.csrf_token(&token),
            token,
            session,
            user: user.clone(),
        })
    }

    /// The CSRF token of a session: derived from its token, so it needs no storage and dies
    /// with the session.
    pub fn csrf_token(&self, session: &LinkToken) -> String {
        let mac = self
            .sealer
            .hash_api_key(&format!("csrf:{}", session.reveal()));
        URL_SAFE_NO_PAD.encode(mac)
    }

    /// Establishes who calls from a session cookie. `account` is the account the request is
    /// about (a path's `/v1/accounts/{id}/…` or the `Rampart-Account` header); without one, a
    /// person with exactly one membership acts in it, an operator over the instance.
    /// State-changing requests must carry the session's CSRF token.
    pub fn authenticate_session(
        &self,
        presented: &str,
        csrf: Option<&str>,
        changes_state: bool,
        account: Option<&str>,
        client_ip: Option<IpAddr>,
    ) -> Result<Caller, AppError> {
        if let Some(ip) = client_ip {
            self.refuse_if_banned(ip)?;
        }
        let token = LinkToken::parse(SESSION_PREFIX, presented).ok_or(AppError::Unauthenticated)?;
        let now = self.clock.now_ms();
        let idle_ms = Millis::from(self.config.people.session_idle_minutes) * 60_000;
        let hash = self.sealer.hash_api_key(token.reveal());
        let found = self.store.read(|tx| {
            let Some(session) = tx.get_session(token.id())? else {
                return Ok::<_, AppError>(None);
            };
            let Some(user) = tx.get_user(&session.user_id)? else {
                return Ok(None);
            };
            let memberships = tx.list_memberships(&user.id)?;
            let factors = tx.list_factors(&user.id)?;
            let mut policies = Vec::new();
            for m in &memberships {
                policies.push((m.account_id.clone(), tx.people_policy(&m.account_id)?));
            }
            let allowed = match account.or(match memberships.as_slice() {
                [only] if user.operator_role.is_none() => Some(only.account_id.as_str()),
                _ => None,
            }) {
                Some(account) => Some(tx.account_networks(account)?),
                None => None,
            };
            Ok(Some((
                session,
                user,
                memberships,
                factors,
                policies,
                allowed,
            )))
        })?;
        let Some((session, user, memberships, factors, policies, allowed)) = found else {
            return Err(AppError::Unauthenticated);
        };
        let live = bool::from(session.hash.as_slice().ct_eq(&hash))
            && session.revoked_at.is_none()
            && session.expires_at > now
            && session.last_seen_at + idle_ms > now
            && user.disabled_at.is_none()
            && user.locked_at.is_none();
        if !live {
            return Err(AppError::Unauthenticated);
        }
        if changes_state {
            let expected = self.csrf_token(&token);
            let ok = csrf.is_some_and(|c| bool::from(c.as_bytes().ct_eq(expected.as_bytes())));
            if !ok {
                return Err(AppError::forbidden(
                    "csrf_token_invalid",
                    "send the session's CSRF token in the `X-CSRF-Token` header",
                ));
            }
        }
        if session.last_seen_at + TOUCH_EVERY_MS <= now {
            let id = session.id.clone();
            self.store
                .write_detached(move |tx| tx.touch_session(&id, now));
        }
        // The phone counts only where every account allows codes by SMS (NIST SP 800-63B
        // 5.1.3.3: SMS is a restricted authenticator an account may refuse).
        let sms_allowed = policies.iter().all(|(_, p)| p.allow_sms_factor);
        let has_factor = factors.iter().any(|f| f.confirmed_at.is_some())
            || (user.phone_sealed.is_some() && sms_allowed);
        let (account_id, role) = match account {
            Some(id) => match (
                memberships.iter().find(|m| m.account_id == id),
                &user.operator_role,
            ) {
                (Some(m), _) => (id.to_owned(), Role::parse(&m.role)),
                // An operator reaches an account's people through the instance's permissions.
                (None, Some(role)) => (String::new(), Role::parse(role)),
                (None, None) => return Err(AppError::NotFound("account")),
            },
            None => match (&user.operator_role, memberships.as_slice()) {
                (Some(role), _) => (String::new(), Role::parse(role)),
                (None, [only]) => (only.account_id.clone(), Role::parse(&only.role)),
                (None, _) => (String::new(), None),
            },
        };
        // A person who must still enrol a second factor, or change an expired password, may
        // only look after themselves until they do (their own /v1/users/me routes).
        let restricted = policies.iter().any(|(id, p)| {
            (p.require_2fa && !has_factor)
                || (id == &account_id
                    && p.password_max_age_days.is_some_and(|days| {
                        user.password_changed_at
                            .is_some_and(|at| now - at > Millis::from(days) * 86_400_000)
                    }))
        });
        let scopes = match role {
            Some(role) if !restricted => role.scopes(),
            _ => Scopes::default(),
        };
        let networks = allowed
            .map(|(operator, account)| AccountNetworks::from_stored(&operator, &account))
            .unwrap_or_default();
        let caller = Caller {
            actor: Actor::User(user.id.clone()),
            account_id,
            scopes,
            client_ip,
            allowed_ips: networks.narrowest().clone(),
            user_id: Some(user.id),
            role,
            expires_at: Some(session.expires_at),
            session: Some(SessionCaller {
                id: session.id,
                authenticated_at: session.authenticated_at,
            }),
        };
        if let Some(ip) = client_ip
            && !networks.allows(ip)
        {
            return Err(AppError::forbidden(
                "ip_not_allowed",
                "this account may not be used from this address",
            ));
        }
        Ok(caller)
    }

    /// Ends the caller's session.
    pub async fn sign_out(&self, caller: &Caller) -> Result<(), AppError> {
        let (Some(user), Some(session)) = (caller.user_id.clone(), caller.session.clone()) else {
            return Err(AppError::forbidden(
                "session_required",
                "only a signed-in person can sign out",
            ));
        };
        let now = self.clock.now_ms();
        let audit = AuditEvent::by(caller, Action::SignedOut, &session.id, now);
        self.write_audited(
            audit,
            move |tx| tx.revoke_session(&user, &session.id, now),
            |_| true,
        )
        .await?;
        Ok(())
    }

    /// The signed-in person and the accounts they belong to.
    pub fn me(&self, caller: &Caller) -> Result<(UserRecord, Vec<MembershipRecord>), AppError> {
        let user_id = person(caller)?;
        self.store.read(|tx| {
            let user = tx.get_user(user_id)?.ok_or(AppError::Unauthenticated)?;
            Ok((user, tx.list_memberships(user_id)?))
        })
    }

    /// The caller's own live sessions, newest first.
    pub fn list_own_sessions(&self, caller: &Caller) -> Result<Vec<SessionRecord>, AppError> {
        let user = person(caller)?;
        let now = self.clock.now_ms();
        let idle_ms = Millis::from(self.config.people.session_idle_minutes) * 60_000;
        let sessions = self.store.read(|tx| tx.list_sessions(user, now))?;
        Ok(sessions
            .into_iter()
            .filter(|s| s.last_seen_at + idle_ms > now)
            .collect())
    }

    /// Revokes one of the caller's own sessions.
    pub async fn revoke_own_session(&self, caller: &Caller, id: &str) -> Result<(), AppError> {
        let user = person(caller)?.to_owned();
        let now = self.clock.now_ms();
        let audit = AuditEvent::by(caller, Action::SessionRevoked, id, now);
        let id = id.to_owned();
        let revoked = self
            .write_audited(audit, move |tx| tx.revoke_session(&user, &id, now), |x| *x)
            .await?;
        if revoked {
            Ok(())
        } else {
            Err(AppError::NotFound("session"))
        }
    }

    /// Step-up: the signed-in person proves again who they are with their password and, when
    /// they have an authenticator app, a current code from it or a recovery code (OWASP ASVS
    /// 4.0 V3.7.1; NIST SP 800-63B 4.2.3 keeps re-authentication at the session's level, two
    /// factors for a person who has two). A missing code gets the same answer as a wrong one.
    pub async fn reauthenticate(
        &self,
        caller: &Caller,
        password: SecretString,
        code: Option<&str>,
        client: &Client,
    ) -> Result<(), AppError> {
        let (Some(user_id), Some(session)) = (caller.user_id.clone(), caller.session.clone())
        else {
            return Err(AppError::forbidden(
                "session_required",
                "only a signed-in person can re-authenticate",
            ));
        };
        let user = self
            .check_attempt(&user_id, client, |tx| tx.get_user(&user_id))?
            .ok_or(AppError::Unauthenticated)?;
        let now = self.clock.now_ms();
        let ok = match user.password_hash.as_deref() {
            Some(phc) => matches!(
                self.passwords.verify(&password, phc).await,
                Verification::Match { .. }
            ),
            None => false,
        };
        if !ok {
            return Err(self.note_failed_attempt(Some(&user), client, now).await);
        }
        if self.has_totp(&user_id)? {
            let Some(code) = code else {
                return Err(AppError::SignInRefused);
            };
            let accepted = self.accept_totp(&user_id, code).await?
                || self.accept_recovery_code(&user_id, code).await?;
            if !accepted {
                return Err(self.note_failed_attempt(Some(&user), client, now).await);
            }
        }
        self.note_successful_attempt(&user_id, &user, client);
        self.store
            .write(move |tx| tx.set_session_authenticated(&session.id, now))
            .await?;
        Ok(())
    }

    /// Changes the signed-in person's password: the current one is checked, the new one must
    /// be strong (and not reused when an account's policy keeps history), and every other
    /// session ends. A person with an authenticator app gives a code too, as for step-up.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: SecretString,
        code: Option<&str>,
        new: &str,
        client: &Client,
    ) -> Result<(), AppError> {
        self.reauthenticate(caller, current, code, client).await?;
        let user_id = person(caller)?.to_owned();
        let user = self
            .store
            .read(|tx| tx.get_user(&user_id))?
            .ok_or(AppError::Unauthenticated)?;
        let keep = caller.session.as_ref().map(|s| s.id.clone());
        self.set_password(&user, new, keep, Some(caller)).await
    }

    /// Checks and stores a new password for `user`, ends their sessions but `keep`, and
    /// records it.
    pub(crate) async fn set_password(
        &self,
        user: &UserRecord,
        new: &str,
        keep: Option<String>,
        caller: Option<&Caller>,
    ) -> Result<(), AppError> {
        let context = PasswordContext::for_user(&user.email, &user.name, &self.breached);
        let password = Password::parse(new, &context)
            .map_err(|e| AppError::invalid(e.code(), e.to_string(), "password"))?;
        let (user_id, previous) = (user.id.clone(), user.password_hash.clone());
        let history = self.store.read(|tx| {
            let mut keep_last = 0;
            for m in tx.list_memberships(&user_id)? {
                keep_last = keep_last.max(tx.people_policy(&m.account_id)?.password_history);
            }
            let mut former = tx.password_history(&user_id, keep_last)?;
            if keep_last > 0
                && let Some(current) = &previous
            {
                former.insert(0, current.clone());
            }
            Ok::<_, AppError>(former)
        })?;
        if !history.is_empty() && self.passwords.is_reused(&password, &history).await {
            return Err(AppError::invalid(
                "password_reused",
                "this password was used recently; choose another",
                "password",
            ));
        }
        let phc = self
            .passwords
            .hash(&password)
            .await
            .map_err(|e| AppError::Setup(format!("cannot hash a password: {e}")))?;
        let now = self.clock.now_ms();
        let audit = match caller {
            Some(caller) => AuditEvent::by(caller, Action::PasswordChanged, &user.id, now),
            None => self.person_event(
                Some(user.id.clone()),
                Action::PasswordReset,
                &user.id,
                &Client::default(),
                now,
            ),
        };
        self.store
            .write(move |tx| {
                if let Some(previous) = &previous {
                    tx.push_password_history(&user_id, previous, now)?;
                }
                tx.set_user_password(&user_id, &phc, now)?;
                tx.revoke_sessions_of(&user_id, keep.as_deref(), now)?;
                audit.record(tx)
            })
            .await?;
        Ok(())
    }

    /// An event about a person, outside any one account.
    pub(crate) fn person_event(
        &self,
        user_id: Option<String>,
        action: Action,
        target: impl Into<String>,
        client: &Client,
        at: Millis,
    ) -> AuditEvent {
        AuditEvent {
            actor: user_id.map_or(Actor::System, Actor::User),
            account_id: None,
            action,
            target: target.into(),
            client_ip: client.ip,
            outcome: super::audit::Outcome::Done,
            at,
        }
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

/// The signed-in person behind a caller.
pub(crate) fn person(caller: &Caller) -> Result<&str, AppError> {
    caller.user_id.as_deref().ok_or_else(|| {
        AppError::forbidden(
            "session_required",
            "this is for a signed-in person, not an API key",
        )
    })
}
