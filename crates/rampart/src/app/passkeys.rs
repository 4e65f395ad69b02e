//! Use cases of passkeys (WebAuthn): a signed-in person registers, lists and removes theirs,
//! and signs in with one as the second factor after the password step.
//!
//! Ceremony state never leaves the server: it is sealed into a `challenges` row that lives
//! five minutes and answers once (used or deleted at the first finish, whatever the outcome).
//! A registration's row is bound to the person; a sign-in's row to the pending sign-in, so a
//! response made for another challenge, another person or another sign-in is refused.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::audit::{Action, AuditEvent, Caller};
use super::sessions::{Client, NewSession, person};
use super::{App, AppError, validate_name};
use crate::clock::Millis;
use crate::config::Config;
use crate::data::sealing::Field;
use crate::identity::passkeys::{
    PasskeyError, Passkeys, stored_credential_id, update_stored_passkey,
};
use crate::store::people::UserRecord;
use crate::store::sessions::{ChallengeRecord, FactorRecord};

/// How long a passkey ceremony may take.
pub const PASSKEY_CEREMONY_TTL_MS: Millis = 5 * 60 * 1000;
/// The longest name of a passkey.
pub const MAX_PASSKEY_NAME: usize = 64;
/// Passkeys one person may hold (each is offered at every sign-in).
pub const MAX_PASSKEYS: usize = 20;
/// The factor kind of a passkey.
pub const PASSKEY: &str = "passkey";

const REGISTER_PURPOSE: &str = "passkey_register";
const SIGN_IN_PURPOSE: &str = "passkey_sign_in";

/// The relying party of a configuration: `people.public_url`, or
/// `https://localhost:{port of listen}` without one.
pub fn relying_party(config: &Config) -> Result<Passkeys, String> {
    let url = config
        .people
        .public_url
        .clone()
        .unwrap_or_else(|| format!("https://localhost:{}", config.listen.port()));
    Passkeys::for_public_url(&url).map_err(|e| format!("people.public_url {url}: {e}"))
}

/// A ceremony begun: the options for the browser, and (for a registration) the id to finish
/// it with.
#[derive(Debug)]
pub struct PasskeyCeremony {
    pub ceremony_id: String,
    pub options: serde_json::Value,
    pub expires_at: Millis,
}

/// A registered passkey as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
}

impl From<&FactorRecord> for PasskeyInfo {
    fn from(f: &FactorRecord) -> Self {
        Self {
            id: f.id.clone(),
            name: f.name.clone(),
            created_at: f.created_at,
        }
    }
}

/// What a registration row carries, sealed.
#[derive(Serialize, Deserialize)]
struct RegistrationState {
    name: String,
    state: String,
}

/// The opaque, stable WebAuthn user handle of a person (no personal data in it).
fn user_handle(user_id: &str) -> [u8; 16] {
    let digest = Sha256::digest(format!("rampart passkey user:{user_id}").as_bytes());
    let mut handle = [0u8; 16];
    handle.copy_from_slice(&digest[..16]);
    handle
}

/// The sign-in ceremony row of a pending sign-in.
fn sign_in_ceremony_id(pending_id: &str) -> String {
    format!("{pending_id}.passkey")
}

fn refused_registration(e: &PasskeyError) -> AppError {
    match e {
        PasskeyError::CorruptState(_) | PasskeyError::Config(_) => {
            AppError::Setup(format!("passkey registration: {e}"))
        }
        PasskeyError::MalformedResponse(_) | PasskeyError::Refused(_) => AppError::invalid(
            "passkey_refused",
            "the authenticator's response was not accepted; start the registration again",
            "credential",
        ),
    }
}

fn unknown_ceremony() -> AppError {
    AppError::invalid(
        "invalid_ceremony",
        "this registration is unknown, used or expired; start again",
        "ceremony_id",
    )
}

impl App {
    fn relying_party(&self) -> Result<&Passkeys, AppError> {
        self.passkeys.as_ref().map_err(|_| {
            AppError::conflict(
                "passkeys_unavailable",
                "passkeys need `people.public_url` to be the server's https address with a \
                 domain name",
            )
        })
    }

    /// The user's confirmed passkeys with their stored (opened) form.
    fn stored_passkeys(&self, user_id: &str) -> Result<Vec<(FactorRecord, String)>, AppError> {
        let factors = self.store.read(|tx| tx.list_factors(user_id))?;
        factors
            .into_iter()
            .filter(|f| f.kind == PASSKEY && f.confirmed_at.is_some())
            .map(|f| {
                let stored =
                    self.sealer
                        .open_string(Field::FactorSecret, "", &f.id, &f.secret_sealed)?;
                Ok((f, stored))
            })
            .collect()
    }

    fn signed_in_person(&self, caller: &Caller) -> Result<UserRecord, AppError> {
        let user_id = person(caller)?;
        self.store
            .read(|tx| tx.get_user(user_id))?
            .ok_or(AppError::Unauthenticated)
    }

    /// Begins registering a passkey for the signed-in person (step-up required). Passkeys
    /// they already have are excluded, so one authenticator is not registered twice.
    pub async fn start_passkey_registration(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<PasskeyCeremony, AppError> {
        let user = self.signed_in_person(caller)?;
        self.require_recent_authentication(caller)?;
        let name = validate_name(name, MAX_PASSKEY_NAME)?;
        let rp = self.relying_party()?;
        let existing = self.stored_passkeys(&user.id)?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(AppError::conflict(
                "too_many_passkeys",
                format!("a person may register {MAX_PASSKEYS} passkeys; remove one first"),
            ));
        }
        let exclude = existing
            .iter()
            .map(|(_, stored)| stored_credential_id(stored))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refused_registration(&e))?;
        let (options, state) = rp
            .start_registration(user_handle(&user.id), &user.email, &user.name, &exclude)
            .map_err(|e| refused_registration(&e))?;
        let now = self.clock.now_ms();
        let id = crate::store::new_id("pkr");
        let state = serde_json::to_vec(&RegistrationState { name, state })
            .map_err(|e| AppError::Setup(format!("passkey registration state: {e}")))?;
        let challenge = ChallengeRecord {
            id: id.clone(),
            purpose: REGISTER_PURPOSE.into(),
            user_id: Some(user.id.clone()),
            account_id: None,
            role: None,
            hash: Vec::new(),
            state_sealed: Some(self.sealer.seal(Field::ChallengeState, "", &id, &state)?),
            attempts: 0,
            created_at: now,
            expires_at: now + PASSKEY_CEREMONY_TTL_MS,
            used_at: None,
        };
        let user_id = user.id.clone();
        self.store
            .write(move |tx| {
                // One registration at a time: a new one ends those left unfinished.
                tx.end_challenges(&user_id, REGISTER_PURPOSE, now)?;
                tx.insert_challenge(&challenge)
            })
            .await?;
        Ok(PasskeyCeremony {
            ceremony_id: id,
            options,
            expires_at: now + PASSKEY_CEREMONY_TTL_MS,
        })
    }

    /// Completes a registration with the browser's response: the passkey becomes a confirmed
    /// factor of the person. The ceremony answers once, whatever the outcome.
    pub async fn finish_passkey_registration(
        &self,
        caller: &Caller,
        ceremony_id: &str,
        credential: &str,
    ) -> Result<PasskeyInfo, AppError> {
        let user = self.signed_in_person(caller)?;
        self.require_recent_authentication(caller)?;
        let rp = self.relying_party()?;
        let now = self.clock.now_ms();
        let ceremony = self
            .store
            .read(|tx| tx.get_challenge(ceremony_id))?
            .filter(|c| {
                c.purpose == REGISTER_PURPOSE
                    && c.user_id.as_deref() == Some(user.id.as_str())
                    && c.used_at.is_none()
                    && c.expires_at > now
            })
            .ok_or_else(unknown_ceremony)?;
        let id = ceremony.id.clone();
        let fresh = self
            .store
            .write(move |tx| Ok::<_, AppError>(tx.use_challenge(&id, now)?))
            .await?;
        let Some(sealed) = ceremony.state_sealed.as_deref().filter(|_| fresh) else {
            return Err(unknown_ceremony());
        };
        let state = self
            .sealer
            .open(Field::ChallengeState, "", &ceremony.id, sealed)?;
        let RegistrationState { name, state } = serde_json::from_slice(&state)
            .map_err(|e| AppError::Setup(format!("passkey registration state: {e}")))?;
        let registered = rp
            .finish_registration(&state, credential)
            .map_err(|e| refused_registration(&e))?;
        for (_, stored) in self.stored_passkeys(&user.id)? {
            if stored_credential_id(&stored).map_err(|e| refused_registration(&e))?
                == registered.credential_id
            {
                return Err(AppError::conflict(
                    "passkey_exists",
                    "this passkey is already registered",
                ));
            }
        }
        let factor = FactorRecord {
            id: crate::store::new_id("fac"),
            user_id: user.id.clone(),
            kind: PASSKEY.into(),
            name,
            secret_sealed: Vec::new(),
            last_step: None,
            confirmed_at: Some(now),
            created_at: now,
        };
        let mut record = factor.clone();
        record.secret_sealed = self.sealer.seal(
            Field::FactorSecret,
            "",
            &factor.id,
            registered.stored.as_bytes(),
        )?;
        let audit = AuditEvent::by(caller, Action::FactorAdded, &factor.id, now);
        self.store
            .write(move |tx| {
                tx.insert_factor(&record)?;
                audit.record(tx)
            })
            .await?;
        Ok(PasskeyInfo::from(&factor))
    }

    /// The signed-in person's passkeys, oldest first.
    pub fn list_passkeys(&self, caller: &Caller) -> Result<Vec<PasskeyInfo>, AppError> {
        let user_id = person(caller)?;
        let factors = self.store.read(|tx| tx.list_factors(user_id))?;
        Ok(factors
            .iter()
            .filter(|f| f.kind == PASSKEY && f.confirmed_at.is_some())
            .map(PasskeyInfo::from)
            .collect())
    }

    /// Removes one of the signed-in person's passkeys (step-up required); it no longer signs
    /// in, even in a sign-in already begun.
    pub async fn remove_passkey(&self, caller: &Caller, id: &str) -> Result<(), AppError> {
        let user_id = person(caller)?.to_owned();
        self.require_recent_authentication(caller)?;
        let is_passkey = self
            .store
            .read(|tx| tx.list_factors(&user_id))?
            .iter()
            .any(|f| f.id == id && f.kind == PASSKEY);
        if !is_passkey {
            return Err(AppError::NotFound("passkey"));
        }
        let now = self.clock.now_ms();
        let audit = AuditEvent::by(caller, Action::FactorRemoved, id, now);
        let id = id.to_owned();
        let removed = self
            .write_audited(audit, move |tx| tx.delete_factor(&user_id, &id), |x| *x)
            .await?;
        if removed {
            Ok(())
        } else {
            Err(AppError::NotFound("passkey"))
        }
    }

    /// Begins the passkey step of a pending sign-in: the options for the browser. A new start
    /// replaces the previous one of the same sign-in.
    pub async fn start_passkey_sign_in(
        &self,
        presented: &str,
    ) -> Result<PasskeyCeremony, AppError> {
        let (pending, user) = self.pending_sign_in(presented)?;
        let rp = self.relying_party()?;
        let stored: Vec<String> = self
            .stored_passkeys(&user.id)?
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        if stored.is_empty() {
            return Err(AppError::SignInRefused);
        }
        let (options, state) = rp.start_authentication(&stored).map_err(|e| match e {
            PasskeyError::Refused(_) | PasskeyError::MalformedResponse(_) => {
                AppError::SignInRefused
            }
            other => AppError::Setup(format!("passkey sign-in: {other}")),
        })?;
        let now = self.clock.now_ms();
        let id = sign_in_ceremony_id(&pending.id);
        let expires_at = (now + PASSKEY_CEREMONY_TTL_MS).min(pending.expires_at);
        let challenge = ChallengeRecord {
            id: id.clone(),
            purpose: SIGN_IN_PURPOSE.into(),
            user_id: Some(user.id.clone()),
            account_id: None,
            role: None,
            hash: pending.hash.clone(),
            state_sealed: Some(self.sealer.seal(
                Field::ChallengeState,
                "",
                &id,
                state.as_bytes(),
            )?),
            attempts: 0,
            created_at: now,
            expires_at,
            used_at: None,
        };
        self.store
            .write(move |tx| {
                tx.delete_challenge(&challenge.id)?;
                tx.insert_challenge(&challenge)
            })
            .await?;
        Ok(PasskeyCeremony {
            ceremony_id: id,
            options,
            expires_at,
        })
    }

    /// Completes a pending sign-in with the browser's passkey response: a session starts and
    /// the passkey's signature counter is brought up to date. A wrong or foreign response
    /// counts as a wrong second factor. The ceremony answers once, whatever the outcome.
    pub async fn finish_passkey_sign_in(
        &self,
        presented: &str,
        credential: &str,
        client: &Client,
    ) -> Result<NewSession, AppError> {
        let (pending, user) = self.pending_sign_in(presented)?;
        let rp = self.relying_party()?;
        let now = self.clock.now_ms();
        let id = sign_in_ceremony_id(&pending.id);
        let ceremony = self
            .store
            .write(move |tx| {
                let ceremony = tx.get_challenge(&id)?;
                tx.delete_challenge(&id)?;
                Ok::<_, AppError>(ceremony)
            })
            .await?
            .filter(|c| {
                c.purpose == SIGN_IN_PURPOSE
                    && c.user_id.as_deref() == Some(user.id.as_str())
                    && c.hash == pending.hash
                    && c.used_at.is_none()
                    && c.expires_at > now
            });
        let Some((ceremony, sealed)) =
            ceremony.and_then(|c| c.state_sealed.clone().map(|s| (c, s)))
        else {
            return Err(self
                .fail_second_factor(&pending, &user, PASSKEY, client)
                .await);
        };
        let state = self
            .sealer
            .open_string(Field::ChallengeState, "", &ceremony.id, &sealed)?;
        let outcome = match rp.finish_authentication(&state, credential) {
            Ok(outcome) => outcome,
            Err(PasskeyError::CorruptState(e)) => {
                return Err(AppError::Setup(format!("passkey sign-in state: {e}")));
            }
            Err(e) => {
                tracing::debug!(error = %e, "a passkey response was refused");
                return Err(self
                    .fail_second_factor(&pending, &user, PASSKEY, client)
                    .await);
            }
        };
        // The passkey must still be the person's: one removed since the start is refused.
        let mut used = None;
        for (factor, stored) in self.stored_passkeys(&user.id)? {
            let matches =
                stored_credential_id(&stored).is_ok_and(|cred_id| cred_id == outcome.credential_id);
            if matches {
                used = Some((factor, stored));
                break;
            }
        }
        let Some((factor, stored)) = used else {
            return Err(self
                .fail_second_factor(&pending, &user, PASSKEY, client)
                .await);
        };
        if let Some(updated) = update_stored_passkey(&stored, &outcome)
            .map_err(|e| AppError::Setup(format!("stored passkey: {e}")))?
        {
            let sealed =
                self.sealer
                    .seal(Field::FactorSecret, "", &factor.id, updated.as_bytes())?;
            let factor_id = factor.id.clone();
            self.store
                .write(move |tx| Ok::<_, AppError>(tx.update_factor_secret(&factor_id, &sealed)?))
                .await?;
        }
        self.finish_sign_in(&pending, &user, client).await
    }
}
