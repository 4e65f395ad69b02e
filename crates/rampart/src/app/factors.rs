//! Use cases of second factors: enrolling an authenticator app (TOTP), a phone for codes by
//! SMS, recovery codes, removing factors, and the second step of signing in with any of them.
//!
//! Every code is kept only as a keyed hash (or, for TOTP, a sealed secret) and compared in
//! constant time; every code is accepted once (OWASP ASVS 4.0 V2.7.x, V2.8.4, V2.6.1). NIST
//! SP 800-63B 5.1.3.3 calls SMS a restricted authenticator, so an account may forbid it.

use secrecy::{ExposeSecret, SecretString};

use super::audit::{Action, AuditEvent, Caller};
use super::sessions::{Client, NewSession, person};
use super::{App, AppError};
use crate::clock::Millis;
use crate::data::sealing::Field;
use crate::identity::codes::{
    CodeRejection, OneTimeCode, SMS_CODE_TTL_MS, generate_recovery_codes, match_recovery_code,
    normalise_recovery_code,
};
use crate::identity::totp::{self, TotpSecret};
use crate::messaging::phone::PhoneNumber;
use crate::store::people::UserRecord;
use crate::store::sessions::ChallengeRecord;
/// Re-exported for the adapters, which reach the store only through the use cases.
pub use crate::store::sessions::FactorRecord;
use crate::store::{StoreError, Tx};

/// The purpose of a code sent to check a new phone number.
pub const PHONE_VERIFY: &str = "phone_verify";
/// The purpose of a code sent to sign in.
pub const SMS_SIGN_IN: &str = "sms_sign_in";
/// A new code to the same person waits this long after the previous one: each costs an SMS,
/// and a flood of them is a toll-fraud vector (OWASP ASVS 4.0 V2.2.1 anti-automation).
pub const CODE_RESEND_AFTER_MS: Millis = 30_000;
/// Digits of a code sent by SMS (NIST SP 800-63B 5.1.3.1: at least six).
const SMS_CODE_DIGITS: u8 = 6;
/// What an authenticator app shows the factor as, until the person names it.
const TOTP_FACTOR_NAME: &str = "Authenticator app";

/// A TOTP enrolment waiting for its first code: what the person's app needs (shown once).
pub struct TotpEnrolment {
    pub factor_id: String,
    pub secret_base32: zeroize::Zeroizing<String>,
    pub provisioning_uri: String,
    pub qr_png_base64: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment")
            .field("factor_id", &self.factor_id)
            .finish_non_exhaustive()
    }
}

/// A factor just confirmed, with the recovery codes issued when it was the person's first
/// (shown once).
pub struct ConfirmedFactor {
    pub factor: Option<FactorRecord>,
    pub recovery_codes: Option<Vec<String>>,
}

impl std::fmt::Debug for ConfirmedFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmedFactor")
            .field("factor", &self.factor.as_ref().map(|f| &f.id))
            .field(
                "recovery_codes",
                &self.recovery_codes.as_ref().map(|c| c.len()),
            )
            .finish()
    }
}

/// A person's second factors as they see them (never a secret).
#[derive(Debug)]
pub struct FactorOverview {
    pub factors: Vec<FactorRecord>,
    pub recovery_codes_left: i64,
    /// The verified phone, masked (`+4479******56`).
    pub phone: Option<String>,
}

/// A code on its way by SMS.
#[derive(Debug)]
pub struct CodeSent {
    pub expires_at: Millis,
}

/// What the accounts a person belongs to ask of their factors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FactorRules {
    /// Some account requires a second factor.
    pub require_2fa: bool,
    /// No account forbids codes by SMS.
    pub sms_allowed: bool,
}

pub(crate) fn factor_rules(tx: &Tx<'_>, user_id: &str) -> Result<FactorRules, StoreError> {
    let mut rules = FactorRules {
        require_2fa: false,
        sms_allowed: true,
    };
    for m in tx.list_memberships(user_id)? {
        let policy = tx.people_policy(&m.account_id)?;
        rules.require_2fa |= policy.require_2fa;
        rules.sms_allowed &= policy.allow_sms_factor;
    }
    Ok(rules)
}

fn factor_required() -> AppError {
    AppError::conflict(
        "factor_required",
        "an account you belong to requires a second factor: enrol another one first",
    )
}

fn sms_not_allowed() -> AppError {
    AppError::forbidden(
        "factor_not_allowed",
        "an account you belong to does not allow codes by SMS (NIST SP 800-63B 5.1.3.3); \
         use another factor",
    )
}

fn invalid_code() -> AppError {
    AppError::invalid(
        "invalid_code",
        "the code is wrong, expired or already used",
        "code",
    )
}

/// Confirmed factors that count for the two-factor rule: authenticator apps and passkeys,
/// and the phone when SMS is allowed.
fn counted_factors(factors: &[FactorRecord], user: &UserRecord, rules: FactorRules) -> usize {
    factors.iter().filter(|f| f.confirmed_at.is_some()).count()
        + usize::from(user.phone_sealed.is_some() && rules.sms_allowed)
}

impl App {
    /// Starts enrolling an authenticator app: a fresh secret, sealed, waiting for its first
    /// code. An enrolment left unconfirmed is replaced by the next one.
    pub async fn start_totp_enrolment(&self, caller: &Caller) -> Result<TotpEnrolment, AppError> {
        let user = self.own_user(caller)?;
        self.require_recent_authentication(caller)?;
        let secret = TotpSecret::generate();
        let provisioning_uri = totp::provisioning_uri(&secret, &user.email)
            .map_err(|e| AppError::Setup(e.to_string()))?;
        let qr_png_base64 = totp::qr_png_base64(&secret, &user.email)
            .map_err(|e| AppError::Setup(e.to_string()))?;
        let now = self.clock.now_ms();
        let id = crate::store::new_id("fac");
        let record = FactorRecord {
            id: id.clone(),
            user_id: user.id.clone(),
            kind: "totp".into(),
            name: TOTP_FACTOR_NAME.into(),
            secret_sealed: self
                .sealer
                .seal(Field::FactorSecret, "", &id, &secret.to_bytes())?,
            last_step: None,
            confirmed_at: None,
            created_at: now,
        };
        self.store
            .write(move |tx| {
                for stale in tx.list_factors(&record.user_id)? {
                    if stale.kind == "totp" && stale.confirmed_at.is_none() {
                        tx.delete_factor(&record.user_id, &stale.id)?;
                    }
                }
                tx.insert_factor(&record)?;
                Ok::<_, AppError>(())
            })
            .await?;
        Ok(TotpEnrolment {
            factor_id: id,
            secret_base32: secret.to_base32(),
            provisioning_uri,
            qr_png_base64,
        })
    }

    /// Confirms an authenticator app with a code from it. The code's time step is kept, so
    /// the same code cannot be used again to sign in (ASVS 4.0 V2.8.4).
    pub async fn confirm_totp(
        &self,
        caller: &Caller,
        factor_id: &str,
        code: &str,
    ) -> Result<ConfirmedFactor, AppError> {
        let user = self.own_user(caller)?;
        let factor = self
            .store
            .read(|tx| tx.list_factors(&user.id))?
            .into_iter()
            .find(|f| f.id == factor_id && f.kind == "totp")
            .ok_or(AppError::NotFound("factor"))?;
        if factor.confirmed_at.is_some() {
            return Err(AppError::conflict(
                "already_confirmed",
                "this factor is already confirmed",
            ));
        }
        let secret = self.open_totp_secret(&factor)?;
        let now = self.clock.now_ms();
        let step = totp::verify_totp(&secret, code.trim(), now, factor.last_step)
            .map_err(|_| invalid_code())?;
        let codes = generate_recovery_codes();
        let hashes = self.recovery_hashes(&user.id, &codes);
        let audit = AuditEvent::by(caller, Action::FactorAdded, &factor.id, now);
        let issued = AuditEvent::by(caller, Action::RecoveryCodesIssued, &user.id, now);
        let (id, user_id) = (factor.id.clone(), user.id.clone());
        let first = self
            .store
            .write(move |tx| {
                let first = has_no_factor(tx, &user_id)?;
                if !tx.advance_factor_step(&id, step)? {
                    return Err(invalid_code());
                }
                tx.confirm_factor(&id, now)?;
                audit.record(tx)?;
                if first {
                    tx.replace_recovery_codes(&user_id, &hashes)?;
                    issued.record(tx)?;
                }
                Ok(first)
            })
            .await?;
        let factor = self
            .store
            .read(|tx| tx.list_factors(&user.id))?
            .into_iter()
            .find(|f| f.id == factor.id);
        Ok(ConfirmedFactor {
            factor,
            recovery_codes: first.then_some(codes),
        })
    }

    /// The caller's factors (never their secrets), recovery codes left and verified phone.
    pub fn list_own_factors(&self, caller: &Caller) -> Result<FactorOverview, AppError> {
        let user = self.own_user(caller)?;
        let (factors, left) = self.store.read(|tx| {
            Ok::<_, AppError>((
                tx.list_factors(&user.id)?,
                tx.count_recovery_codes(&user.id)?,
            ))
        })?;
        let phone = match &user.phone_sealed {
            Some(sealed) => Some(self.open_phone(&user.id, sealed)?.masked()),
            None => None,
        };
        Ok(FactorOverview {
            factors,
            recovery_codes_left: left,
            phone,
        })
    }

    /// Removes one of the caller's factors; refused when an account of theirs requires a
    /// second factor and it is their last. Without any factor left, the recovery codes go too.
    pub async fn remove_factor(&self, caller: &Caller, factor_id: &str) -> Result<(), AppError> {
        let user = self.own_user(caller)?;
        self.require_recent_authentication(caller)?;
        let now = self.clock.now_ms();
        let audit = AuditEvent::by(caller, Action::FactorRemoved, factor_id, now);
        let (id, user_id) = (factor_id.to_owned(), user.id.clone());
        self.store
            .write(move |tx| {
                let user = tx.get_user(&user_id)?.ok_or(AppError::Unauthenticated)?;
                let factors = tx.list_factors(&user_id)?;
                let factor = factors
                    .iter()
                    .find(|f| f.id == id)
                    .ok_or(AppError::NotFound("factor"))?;
                let rules = factor_rules(tx, &user_id)?;
                let left = counted_factors(&factors, &user, rules)
                    - usize::from(factor.confirmed_at.is_some());
                if factor.confirmed_at.is_some() && rules.require_2fa && left == 0 {
                    return Err(factor_required());
                }
                tx.delete_factor(&user_id, &id)?;
                forget_recovery_codes_if_no_factor(tx, &user_id)?;
                audit.record(tx)?;
                Ok(())
            })
            .await
    }

    /// Replaces the caller's recovery codes with ten new ones (shown once).
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
    ) -> Result<Vec<String>, AppError> {
        let user = self.own_user(caller)?;
        self.require_recent_authentication(caller)?;
        let codes = generate_recovery_codes();
        let hashes = self.recovery_hashes(&user.id, &codes);
        let audit = AuditEvent::by(
            caller,
            Action::RecoveryCodesIssued,
            &user.id,
            self.clock.now_ms(),
        );
        self.store
            .write(move |tx| {
                tx.replace_recovery_codes(&user.id, &hashes)?;
                audit.record(tx)
            })
            .await?;
        Ok(codes)
    }

    /// Sends a code to a phone number the caller wants to get codes at; the number is kept
    /// (sealed) with the code until it is confirmed.
    pub async fn start_phone_verification(
        &self,
        caller: &Caller,
        phone: &str,
    ) -> Result<CodeSent, AppError> {
        let user = self.own_user(caller)?;
        self.require_recent_authentication(caller)?;
        let phone = PhoneNumber::parse(phone)
            .map_err(|e| AppError::invalid("invalid_phone_number", e.to_string(), "phone"))?;
        self.refuse_quick_resend(&user.id, PHONE_VERIFY)?;
        let now = self.clock.now_ms();
        let id = crate::store::new_id("otp");
        let code = new_sms_code()?;
        let mut challenge = self.code_challenge(&id, PHONE_VERIFY, &user.id, &id, &code, now);
        challenge.state_sealed =
            Some(
                self.sealer
                    .seal(Field::ChallengeState, "", &id, phone.as_str().as_bytes())?,
            );
        self.replace_code(challenge, &phone, &code, now).await
    }

    /// Confirms the phone with the code sent to it: from now on it gets codes (and reset
    /// links). Five minutes, one use, three wrong tries.
    pub async fn verify_phone(
        &self,
        caller: &Caller,
        code: &str,
    ) -> Result<ConfirmedFactor, AppError> {
        let user = self.own_user(caller)?;
        let challenge = self
            .store
            .read(|tx| tx.latest_challenge(&user.id, PHONE_VERIFY))?
            .ok_or_else(invalid_code)?;
        if !self
            .check_code(&challenge, &self.code_hash(&challenge.id, code.trim()))
            .await?
        {
            return Err(invalid_code());
        }
        let phone = challenge
            .state_sealed
            .as_deref()
            .map(|sealed| {
                self.sealer
                    .open_string(Field::ChallengeState, "", &challenge.id, sealed)
            })
            .transpose()?
            .ok_or(AppError::NotFound("phone"))?;
        let sealed = self
            .sealer
            .seal(Field::UserPhone, "", &user.id, phone.as_bytes())?;
        let now = self.clock.now_ms();
        let codes = generate_recovery_codes();
        let hashes = self.recovery_hashes(&user.id, &codes);
        let audit = AuditEvent::by(caller, Action::FactorAdded, &user.id, now);
        let issued = AuditEvent::by(caller, Action::RecoveryCodesIssued, &user.id, now);
        let user_id = user.id.clone();
        let first = self
            .store
            .write(move |tx| {
                let first = has_no_factor(tx, &user_id)?;
                tx.set_user_phone(&user_id, Some(&sealed))?;
                audit.record(tx)?;
                if first {
                    tx.replace_recovery_codes(&user_id, &hashes)?;
                    issued.record(tx)?;
                }
                Ok::<_, AppError>(first)
            })
            .await?;
        Ok(ConfirmedFactor {
            factor: None,
            recovery_codes: first.then_some(codes),
        })
    }

    /// Forgets the caller's phone; refused when it is their last factor and an account of
    /// theirs requires one.
    pub async fn remove_phone(&self, caller: &Caller) -> Result<(), AppError> {
        let user = self.own_user(caller)?;
        self.require_recent_authentication(caller)?;
        let now = self.clock.now_ms();
        let audit = AuditEvent::by(caller, Action::FactorRemoved, &user.id, now);
        let user_id = user.id.clone();
        self.store
            .write(move |tx| {
                let user = tx.get_user(&user_id)?.ok_or(AppError::Unauthenticated)?;
                if user.phone_sealed.is_none() {
                    return Err(AppError::NotFound("phone"));
                }
                let rules = factor_rules(tx, &user_id)?;
                let factors = tx.list_factors(&user_id)?;
                if rules.sms_allowed
                    && rules.require_2fa
                    && counted_factors(&factors, &user, rules) <= 1
                {
                    return Err(factor_required());
                }
                tx.set_user_phone(&user_id, None)?;
                tx.end_challenges(&user_id, SMS_SIGN_IN, now)?;
                forget_recovery_codes_if_no_factor(tx, &user_id)?;
                audit.record(tx)?;
                Ok(())
            })
            .await
    }

    /// Second step of signing in with a code from an authenticator app.
    pub async fn sign_in_with_totp(
        &self,
        pending: &str,
        code: &str,
        client: &Client,
    ) -> Result<NewSession, AppError> {
        let (challenge, user) = self.pending_sign_in(pending)?;
        if self.accept_totp(&user.id, code).await? {
            return self.finish_sign_in(&challenge, &user, client).await;
        }
        Err(self
            .fail_second_factor(&challenge, &user, "totp", client)
            .await)
    }

    /// Sends a sign-in code to the person's verified phone. One code is live at a time: a
    /// new one replaces the last.
    pub async fn send_sign_in_code(&self, pending: &str) -> Result<CodeSent, AppError> {
        let (challenge, user) = self.pending_sign_in(pending)?;
        let rules = self.store.read(|tx| factor_rules(tx, &user.id))?;
        if !rules.sms_allowed {
            return Err(sms_not_allowed());
        }
        let sealed = user.phone_sealed.as_deref().ok_or_else(|| {
            AppError::conflict(
                "phone_not_verified",
                "there is no verified phone to send a code to",
            )
        })?;
        let phone = self.open_phone(&user.id, sealed)?;
        self.refuse_quick_resend(&user.id, SMS_SIGN_IN)?;
        let now = self.clock.now_ms();
        let id = crate::store::new_id("otp");
        let code = new_sms_code()?;
        // Bound to this pending sign-in: a code does not serve another one.
        let binding = format!("{id}/{}", challenge.id);
        let record = self.code_challenge(&id, SMS_SIGN_IN, &user.id, &binding, &code, now);
        self.replace_code(record, &phone, &code, now).await
    }

    /// Stores a code's challenge in place of the person's earlier ones of its purpose, then
    /// sends the code.
    async fn replace_code(
        &self,
        challenge: ChallengeRecord,
        phone: &PhoneNumber,
        code: &SecretString,
        now: Millis,
    ) -> Result<CodeSent, AppError> {
        let expires_at = challenge.expires_at;
        self.store
            .write(move |tx| {
                let user_id = challenge.user_id.clone().unwrap_or_default();
                tx.end_challenges(&user_id, &challenge.purpose, now)?;
                tx.insert_challenge(&challenge)?;
                Ok::<_, AppError>(())
            })
            .await?;
        self.send_code(phone, code).await?;
        Ok(CodeSent { expires_at })
    }

    /// Second step of signing in with the code sent by SMS.
    pub async fn sign_in_with_sms(
        &self,
        pending: &str,
        code: &str,
        client: &Client,
    ) -> Result<NewSession, AppError> {
        let (challenge, user) = self.pending_sign_in(pending)?;
        let (rules, sent) = self.store.read(|tx| {
            Ok::<_, AppError>((
                factor_rules(tx, &user.id)?,
                tx.latest_challenge(&user.id, SMS_SIGN_IN)?,
            ))
        })?;
        if !rules.sms_allowed {
            return Err(sms_not_allowed());
        }
        let accepted = match (&sent, &user.phone_sealed) {
            (Some(sent), Some(_)) => {
                let binding = format!("{}/{}", sent.id, challenge.id);
                self.check_code(sent, &self.code_hash(&binding, code.trim()))
                    .await?
            }
            _ => false,
        };
        if accepted {
            return self.finish_sign_in(&challenge, &user, client).await;
        }
        Err(self
            .fail_second_factor(&challenge, &user, "sms", client)
            .await)
    }

    /// Second step of signing in with a recovery code, which is used up.
    pub async fn sign_in_with_recovery_code(
        &self,
        pending: &str,
        code: &str,
        client: &Client,
    ) -> Result<NewSession, AppError> {
        let (challenge, user) = self.pending_sign_in(pending)?;
        if self.accept_recovery_code(&user.id, code).await? {
            return self.finish_sign_in(&challenge, &user, client).await;
        }
        Err(self
            .fail_second_factor(&challenge, &user, "recovery_code", client)
            .await)
    }

    /// Whether `code` is a current, unused code of one of the person's confirmed
    /// authenticator apps; the step it matched is recorded, so it is accepted once only.
    pub(crate) async fn accept_totp(&self, user_id: &str, code: &str) -> Result<bool, AppError> {
        let now = self.clock.now_ms();
        let factors = self.store.read(|tx| tx.list_factors(user_id))?;
        for factor in factors
            .iter()
            .filter(|f| f.kind == "totp" && f.confirmed_at.is_some())
        {
            let secret = self.open_totp_secret(factor)?;
            if let Ok(step) = totp::verify_totp(&secret, code.trim(), now, factor.last_step) {
                let id = factor.id.clone();
                return self
                    .store
                    .write(move |tx| Ok::<_, AppError>(tx.advance_factor_step(&id, step)?))
                    .await;
            }
        }
        Ok(false)
    }

    /// Whether `code` is one of the person's unused recovery codes; it is used up.
    pub(crate) async fn accept_recovery_code(
        &self,
        user_id: &str,
        code: &str,
    ) -> Result<bool, AppError> {
        let presented = self.recovery_hash(user_id, code);
        let stored: Vec<[u8; 32]> = self
            .store
            .read(|tx| tx.list_recovery_codes(user_id))?
            .into_iter()
            .filter_map(|h| h.try_into().ok())
            .collect();
        let Some(found) = match_recovery_code(&stored, &presented) else {
            return Ok(false);
        };
        let (user_id, hash, now) = (user_id.to_owned(), stored[found], self.clock.now_ms());
        self.store
            .write(move |tx| Ok::<_, AppError>(tx.use_recovery_code(&user_id, &hash, now)?))
            .await
    }

    /// Whether the person has a confirmed authenticator app (step-up then asks for a code).
    pub(crate) fn has_totp(&self, user_id: &str) -> Result<bool, AppError> {
        Ok(self
            .store
            .read(|tx| tx.list_factors(user_id))?
            .iter()
            .any(|f| f.kind == "totp" && f.confirmed_at.is_some()))
    }

    /// Checks a presented code's hash against a challenge and records the outcome: used up
    /// when right; when wrong, one more attempt, and dead after three (NIST SP 800-63B 5.2.2).
    async fn check_code(
        &self,
        challenge: &ChallengeRecord,
        presented: &[u8; 32],
    ) -> Result<bool, AppError> {
        let now = self.clock.now_ms();
        let mut record = OneTimeCode {
            hash: challenge.hash.as_slice().try_into().unwrap_or([0; 32]),
            expires_at: challenge.expires_at,
            used: challenge.used_at.is_some(),
            attempts: challenge.attempts,
        };
        let verdict = record.verify(presented, now);
        let id = challenge.id.clone();
        match verdict {
            Ok(()) => {
                self.store
                    .write(move |tx| Ok::<_, AppError>(tx.use_challenge(&id, now)?))
                    .await
            }
            Err(CodeRejection::Wrong | CodeRejection::TooManyAttempts)
                if record.attempts > challenge.attempts =>
            {
                let dead = matches!(verdict, Err(CodeRejection::TooManyAttempts));
                self.store
                    .write(move |tx| {
                        tx.note_challenge_attempt(&id)?;
                        if dead {
                            tx.use_challenge(&id, now)?;
                        }
                        Ok::<_, AppError>(false)
                    })
                    .await
            }
            Err(_) => Ok(false),
        }
    }

    /// Refuses a new code while the last one to this person for `purpose` is fresh.
    fn refuse_quick_resend(&self, user_id: &str, purpose: &str) -> Result<(), AppError> {
        let now = self.clock.now_ms();
        let last = self
            .store
            .read(|tx| tx.latest_challenge(user_id, purpose))?;
        match last {
            Some(c) if c.created_at + CODE_RESEND_AFTER_MS > now => Err(AppError::Throttled {
                retry_after_ms: c.created_at + CODE_RESEND_AFTER_MS - now,
            }),
            _ => Ok(()),
        }
    }

    /// A challenge for a code sent by SMS, kept as a keyed hash bound to `binding`.
    fn code_challenge(
        &self,
        id: &str,
        purpose: &str,
        user_id: &str,
        binding: &str,
        code: &SecretString,
        now: Millis,
    ) -> ChallengeRecord {
        ChallengeRecord {
            id: id.to_owned(),
            purpose: purpose.to_owned(),
            user_id: Some(user_id.to_owned()),
            account_id: None,
            role: None,
            hash: self.code_hash(binding, code.expose_secret()).to_vec(),
            state_sealed: None,
            attempts: 0,
            created_at: now,
            expires_at: now + SMS_CODE_TTL_MS,
            used_at: None,
        }
    }

    async fn send_code(&self, phone: &PhoneNumber, code: &SecretString) -> Result<(), AppError> {
        let body = format!(
            "Your Rampart code is {}. It expires in 5 minutes.",
            code.expose_secret()
        );
        self.send_notice(phone.as_str(), body).await?;
        Ok(())
    }

    /// The keyed hash of a code sent by SMS: bound to its challenge (and sign-in), so a code
    /// is worth nothing anywhere else.
    fn code_hash(&self, binding: &str, code: &str) -> [u8; 32] {
        self.sealer.hash_api_key(&format!("code:{binding}:{code}"))
    }

    /// The keyed hash of a recovery code, in its normal form, bound to its person.
    fn recovery_hash(&self, user_id: &str, code: &str) -> [u8; 32] {
        self.sealer.hash_api_key(&format!(
            "recovery:{user_id}:{}",
            normalise_recovery_code(code)
        ))
    }

    fn recovery_hashes(&self, user_id: &str, codes: &[String]) -> Vec<Vec<u8>> {
        codes
            .iter()
            .map(|c| self.recovery_hash(user_id, c).to_vec())
            .collect()
    }

    fn open_totp_secret(&self, factor: &FactorRecord) -> Result<TotpSecret, AppError> {
        let bytes = zeroize::Zeroizing::new(self.sealer.open(
            Field::FactorSecret,
            "",
            &factor.id,
            &factor.secret_sealed,
        )?);
        TotpSecret::from_bytes(&bytes).ok_or_else(|| {
            AppError::Store(StoreError::Corrupt(format!(
                "factor {} has a secret of the wrong size",
                factor.id
            )))
        })
    }

    /// A person's verified phone, opened.
    pub(crate) fn open_phone(&self, user_id: &str, sealed: &[u8]) -> Result<PhoneNumber, AppError> {
        let phone = self
            .sealer
            .open_string(Field::UserPhone, "", user_id, sealed)?;
        PhoneNumber::parse(&phone).map_err(|_| {
            AppError::Store(StoreError::Corrupt(format!(
                "user {user_id} has an unreadable phone number"
            )))
        })
    }

    /// The signed-in person behind the caller, as stored now.
    fn own_user(&self, caller: &Caller) -> Result<UserRecord, AppError> {
        let id = person(caller)?;
        self.store
            .read(|tx| tx.get_user(id))?
            .ok_or(AppError::Unauthenticated)
    }
}

fn new_sms_code() -> Result<SecretString, AppError> {
    OneTimeCode::generate(SMS_CODE_DIGITS).map_err(|e| AppError::Setup(e.to_string()))
}

/// Whether the person has no confirmed factor and no verified phone.
fn has_no_factor(tx: &Tx<'_>, user_id: &str) -> Result<bool, StoreError> {
    let phone = tx
        .get_user(user_id)?
        .is_some_and(|u| u.phone_sealed.is_some());
    let factor = tx
        .list_factors(user_id)?
        .iter()
        .any(|f| f.confirmed_at.is_some());
    Ok(!phone && !factor)
}

/// Recovery codes only stand in for a factor: with none left, they go too.
fn forget_recovery_codes_if_no_factor(tx: &Tx<'_>, user_id: &str) -> Result<(), StoreError> {
    if has_no_factor(tx, user_id)? {
        tx.replace_recovery_codes(user_id, &[])?;
    }
    Ok(())
}
