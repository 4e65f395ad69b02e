//! Use cases of people's sessions: start one (after `sign_in.rs`), authenticate each request,
//! list, revoke, sign out, step-up re-authentication, and changing one's password.
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
use crate::network::ip::AccountNetworks;
use crate::store::people::{MembershipRecord, UserRecord};
pub use crate::store::sessions::SessionRecord;

/// The prefix of session tokens.
pub const SESSION_PREFIX: &str = "rs";
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

impl App {
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
            client_cert_sha256: None,
        };
        // Operators acting over the instance must come from the operators' networks; everyone
        // else from the account's (OWASP ASVS 4.0 V1.4.3: enforced here, on every request).
        let allowed = |ip| {
            if caller.is_instance() && caller.role.is_some() {
                self.operator_networks.allows(ip)
            } else {
                networks.allows(ip)
            }
        };
        if let Some(ip) = client_ip
            && !allowed(ip)
        {
            metrics::counter!("rampart_ip_refusals_total", "reason" => "not_allowed").increment(1);
            let target = caller
                .session
                .as_ref()
                .map(|s| s.id.clone())
                .unwrap_or_default();
            self.record_refusal(
                AuditEvent::by(&caller, Action::RequestRefused, target, now)
                    .denied("ip_not_allowed"),
            );
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

/// The signed-in person behind a caller.
pub(crate) fn person(caller: &Caller) -> Result<&str, AppError> {
    caller.user_id.as_deref().ok_or_else(|| {
        AppError::forbidden(
            "session_required",
            "this is for a signed-in person, not an API key",
        )
    })
}
