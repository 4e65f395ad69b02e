//! Use cases of API keys: authenticate a request, issue, list, read and revoke keys.
//!
//! Keys form a hierarchy (OWASP ASVS 4.0 V4.1.3, least privilege): a key belongs to the person
//! (or operator) who made it, holds at most its maker's scopes, ends no later than the key or
//! session that made it, and is revoked with it. Revoking a key needs every scope it holds.
//! An account's keys never hold server-wide scopes; those are for operators' keys.

use std::net::IpAddr;

use super::audit::{Action, Actor, AuditEvent, Caller};
use super::{App, AppError};
use crate::clock::Millis;
use crate::identity::api_keys::{self, KeyRejection, StoredApiKey};
use crate::identity::{ApiKeyToken, Scope, Scopes, key_cache};
use crate::network::client_cert::CertFingerprint;
use crate::network::ip::IpList;

/// Longest key name, in characters.
pub const MAX_KEY_NAME: usize = 100;

/// A key to issue.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    /// Scope names, e.g. `messages:send`, or `*` for all.
    pub scopes: Vec<String>,
    pub expires_at: Option<Millis>,
    /// Networks the key may be used from (addresses or CIDR); empty for the creator's own.
    pub allowed_ips: Vec<String>,
    /// The SHA-256 of the client certificate the key must be used with (64 hex digits,
    /// colons allowed); `None` for the creator's own requirement (none for most creators).
    pub client_cert_sha256: Option<String>,
}

/// A key just issued: the only time its secret exists outside the caller's hands.
#[derive(Debug)]
pub struct IssuedApiKey {
    pub token: ApiKeyToken,
    pub key: StoredApiKey,
}

impl App {
    /// Establishes who calls from a presented `Authorization` token. Every failure is the same
    /// [`AppError::Unauthenticated`]; the reason is only counted.
    /// A key that requires a client certificate is refused here (403): no request without
    /// one can use it.
    pub fn authenticate(
        &self,
        presented: Option<&str>,
        client_ip: Option<IpAddr>,
    ) -> Result<Caller, AppError> {
        self.authenticate_with_certificate(presented, client_ip, None)
    }

    /// [`App::authenticate`] for a request that came over a connection whose client presented
    /// the (verified) certificate `client_cert`. A key bound to a certificate must come with
    /// that one: 403 `client_certificate_required` without a certificate,
    /// `client_certificate_mismatch` with another; both are audited.
    pub fn authenticate_with_certificate(
        &self,
        presented: Option<&str>,
        client_ip: Option<IpAddr>,
        client_cert: Option<CertFingerprint>,
    ) -> Result<Caller, AppError> {
        let Some(ip) = client_ip else {
            return self.authenticate_from(presented, None, client_cert);
        };
        self.refuse_if_banned(ip)?;
        let outcome = self.authenticate_from(presented, Some(ip), client_cert);
        if matches!(outcome, Err(AppError::Unauthenticated)) {
            self.note_failed_authentication(ip);
        }
        outcome
    }

    fn authenticate_from(
        &self,
        presented: Option<&str>,
        client_ip: Option<IpAddr>,
        client_cert: Option<CertFingerprint>,
    ) -> Result<Caller, AppError> {
        if let Some(ip) = client_ip
            && self.denied_ips.contains(ip)
        {
            metrics::counter!("rampart_ip_refusals_total", "reason" => "denied").increment(1);
            return Err(AppError::forbidden(
                "ip_denied",
                "requests from this address are refused",
            ));
        }
        let token = presented
            .and_then(ApiKeyToken::parse)
            .ok_or_else(|| rejected(KeyRejection::Malformed))?;
        let hash = self.sealer.hash_api_key(token.reveal());
        let stored = self
            .keys
            .find(&self.store, token.id())?
            .ok_or_else(|| rejected(KeyRejection::Unknown))?;
        let now = self.clock.now_ms();
        let principal = api_keys::verify(&stored, &hash, now).map_err(rejected)?;
        let caller = Caller {
            actor: Actor::ApiKey(principal.key_id),
            account_id: principal.account_id.unwrap_or_default(),
            scopes: principal.scopes,
            client_ip,
            allowed_ips: stored.allowed_ips.clone(),
            user_id: stored.user_id.clone(),
            role: None,
            expires_at: stored.expires_at,
            session: None,
            client_cert_sha256: stored.client_cert_sha256,
        };
        if let Some(ip) = client_ip
            && !(stored.allowed_ips.allows(ip)
                && stored.account_networks.allows(ip)
                && (!caller.is_instance() || self.operator_networks.allows(ip)))
        {
            // OWASP ASVS 4.0 V1.4.3/V4.1.1: access rules enforced on the trusted side, and
            // every refusal leaves a trace.
            metrics::counter!("rampart_ip_refusals_total", "reason" => "not_allowed").increment(1);
            let target = stored.id.clone();
            self.record_refusal(
                AuditEvent::by(&caller, Action::RequestRefused, target, now)
                    .denied("ip_not_allowed"),
            );
            return Err(AppError::forbidden(
                "ip_not_allowed",
                "this API key may not be used from this address",
            ));
        }
        if let Some(required) = &stored.client_cert_sha256 {
            let refusal = match &client_cert {
                None => Some((
                    "client_certificate_required",
                    "this API key must be used with its client certificate (mutual TLS)",
                )),
                Some(presented) if !required.matches(presented) => Some((
                    "client_certificate_mismatch",
                    "this API key must be used with another client certificate",
                )),
                Some(_) => None,
            };
            if let Some((code, detail)) = refusal {
                metrics::counter!("rampart_client_cert_refusals_total", "reason" => code)
                    .increment(1);
                let target = stored.id.clone();
                self.record_refusal(
                    AuditEvent::by(&caller, Action::RequestRefused, target, now).denied(code),
                );
                return Err(AppError::forbidden(code, detail));
            }
        }
        self.rate_limits
            .check(
                &stored.id,
                stored.account_id.as_deref().unwrap_or_default(),
                &stored.account_rates,
            )
            .map_err(|limited| {
                metrics::counter!("rampart_rate_limited_total", "scope" => limited.scope)
                    .increment(1);
                AppError::RateLimited(limited)
            })?;
        self.note_key_used(&stored.id, stored.last_used_at, now);
        Ok(caller)
    }

    /// Issues a key where the caller acts (its account, or the instance for an operator), with
    /// at most the caller's scopes and ending no later than the caller's own credential.
    pub async fn issue_api_key(
        &self,
        caller: &Caller,
        request: NewApiKey,
    ) -> Result<IssuedApiKey, AppError> {
        // Over the instance, making keys is managing operators' keys: the scope that lists and
        // revokes them, so a scraper's key cannot mint more keys.
        caller.require(if caller.is_instance() {
            Scope::AccountsManage
        } else {
            Scope::KeysManage
        })?;
        self.require_recent_authentication(caller)?;
        let name = super::validate_name(&request.name, MAX_KEY_NAME)?;
        let held = if caller.is_instance() {
            caller.scopes.server_wide_only()
        } else {
            caller.scopes.account_only()
        };
        // `*`: everything the maker may pass on.
        let star = request.scopes.iter().any(|s| s.trim() == "*");
        let named = Scopes::parse(
            request
                .scopes
                .iter()
                .map(String::as_str)
                .filter(|s| s.trim() != "*"),
        )
        .map_err(|e| AppError::invalid("invalid_scope", e.to_string(), "scopes"))?;
        let scopes = if star { held.union(named) } else { named };
        if scopes.is_empty() {
            return Err(AppError::invalid(
                "invalid_scope",
                "a key needs at least one scope",
                "scopes",
            ));
        }
        let now = self.clock.now_ms();
        let escalation = if !held.covers(scopes) {
            Some((
                "scope_escalation",
                if caller.is_instance() {
                    "an operator's key holds server-wide scopes only, and no more than its maker's"
                } else {
                    "a key cannot hold scopes its maker lacks, nor server-wide scopes"
                },
            ))
        } else if let (Some(limit), Some(asked)) = (caller.expires_at, request.expires_at)
            && asked > limit
        {
            Some((
                "expiry_escalation",
                "a key cannot outlive the key or session that makes it",
            ))
        } else {
            None
        };
        if let Some((code, detail)) = escalation {
            let denied = AuditEvent::by(caller, Action::ApiKeyIssued, &name, now).denied(code);
            self.store.write(move |tx| denied.record(tx)).await?;
            return Err(AppError::forbidden(code, detail));
        }
        if request.expires_at.is_some_and(|at| at <= now) {
            return Err(AppError::invalid(
                "invalid_expires_at",
                "`expires_at` must be in the future",
                "expires_at",
            ));
        }
        let mut allowed_ips = IpList::parse(request.allowed_ips.iter().map(String::as_str))
            .map_err(|e| AppError::invalid("invalid_allowed_ips", e.to_string(), "allowed_ips"))?;
        if allowed_ips.is_empty() {
            allowed_ips = caller.allowed_ips.clone();
        } else if !caller.allowed_ips.covers(&allowed_ips) {
            return Err(AppError::forbidden(
                "allowlist_escalation",
                "a key cannot be usable from addresses its creator may not use",
            ));
        }
        let client_cert = self
            .client_cert_for_new_key(caller, request.client_cert_sha256.as_deref(), &name, now)
            .await?;
        let account = (!caller.is_instance()).then_some(caller.account_id.as_str());
        let (token, mut key) = api_keys::issue(
            &self.sealer,
            account,
            &name,
            scopes,
            request.expires_at.or(caller.expires_at),
            now,
        );
        key.allowed_ips = allowed_ips;
        key.client_cert_sha256 = client_cert;
        key.user_id = caller.user_id.clone();
        if let Actor::ApiKey(parent) = &caller.actor {
            key.parent_id = Some(parent.clone());
        }
        let (record, audit) = (
            key.to_record(),
            AuditEvent::by(caller, Action::ApiKeyIssued, &key.id, now),
        );
        self.store
            .write(move |tx| {
                tx.insert_api_key(&record)?;
                audit.record(tx)
            })
            .await?;
        self.announce_key_change()?;
        tracing::info!(key_id = %key.id, account = %caller.account_id, "API key issued");
        Ok(IssuedApiKey { token, key })
    }

    /// The client certificate a new key requires: the one asked for, else its maker's. A key
    /// bound to a certificate makes keys bound to the same one (403
    /// `client_certificate_escalation` for another), so the binding cannot be shed by making a
    /// child key.
    async fn client_cert_for_new_key(
        &self,
        caller: &Caller,
        asked: Option<&str>,
        name: &str,
        now: Millis,
    ) -> Result<Option<CertFingerprint>, AppError> {
        let asked = asked.map(CertFingerprint::parse).transpose().map_err(|e| {
            AppError::invalid(
                "invalid_client_cert_sha256",
                e.to_string(),
                "client_cert_sha256",
            )
        })?;
        match (caller.client_cert_sha256, asked) {
            (Some(held), Some(asked)) if !held.matches(&asked) => {
                let code = "client_certificate_escalation";
                let denied = AuditEvent::by(caller, Action::ApiKeyIssued, name, now).denied(code);
                self.store.write(move |tx| denied.record(tx)).await?;
                Err(AppError::forbidden(
                    code,
                    "a key bound to a client certificate makes keys bound to the same one",
                ))
            }
            (held, asked) => Ok(asked.or(held)),
        }
    }

    /// The keys of the caller's account, or the operators' keys for an operator (never their
    /// secrets).
    pub fn list_api_keys(&self, caller: &Caller) -> Result<Vec<StoredApiKey>, AppError> {
        let keys = if caller.is_instance() {
            caller.require(Scope::AccountsManage)?;
            self.store.read(|tx| tx.list_operator_api_keys())?
        } else {
            caller.require(Scope::KeysManage)?;
            self.store.read(|tx| tx.list_api_keys(&caller.account_id))?
        };
        Ok(keys.into_iter().map(StoredApiKey::from).collect())
    }

    /// One key of the caller's account (or an operator's key, for an operator).
    pub fn get_api_key(&self, caller: &Caller, id: &str) -> Result<StoredApiKey, AppError> {
        let found = if caller.is_instance() {
            caller.require(Scope::AccountsManage)?;
            self.store
                .read(|tx| tx.find_api_key(id))?
                .filter(|k| k.account_id.is_none())
        } else {
            caller.require(Scope::KeysManage)?;
            self.store
                .read(|tx| tx.get_api_key(&caller.account_id, id))?
        };
        found
            .map(StoredApiKey::from)
            .ok_or(AppError::NotFound("API key"))
    }

    /// Revokes a key where the caller acts, and every key it made; they fail on their next
    /// request, in every running server. The caller must hold every scope the key holds.
    pub async fn revoke_api_key(&self, caller: &Caller, id: &str) -> Result<(), AppError> {
        let key = self.get_api_key(caller, id)?;
        let now = self.clock.now_ms();
        if key.revoked_at.is_some() {
            return Err(AppError::NotFound("API key"));
        }
        if !caller.scopes.covers(key.scopes) {
            let denied =
                AuditEvent::by(caller, Action::ApiKeyRevoked, id, now).denied("scope_escalation");
            self.store.write(move |tx| denied.record(tx)).await?;
            return Err(AppError::forbidden(
                "scope_escalation",
                "revoking a key needs every scope it holds",
            ));
        }
        let key_id = id.to_owned();
        let audit = AuditEvent::by(caller, Action::ApiKeyRevoked, id, now);
        let revoked = self
            .write_audited(
                audit,
                move |tx| tx.revoke_api_key_tree(&key_id, now),
                |n| *n > 0,
            )
            .await?;
        if revoked == 0 {
            return Err(AppError::NotFound("API key"));
        }
        self.announce_key_change()?;
        tracing::info!(key_id = %id, account = %caller.account_id, revoked, "API key revoked");
        Ok(())
    }

    /// The account a key belongs to (the operator revokes keys by id alone); empty for an
    /// operator's key.
    pub fn api_key_account(&self, id: &str) -> Result<String, AppError> {
        self.store
            .read(|tx| tx.find_api_key(id))?
            .map(|k| k.account_id.unwrap_or_default())
            .ok_or(AppError::NotFound("API key"))
    }

    /// Tells every running server that keys changed.
    pub(crate) fn announce_key_change(&self) -> Result<(), AppError> {
        key_cache::announce_change(&self.config.data_dir)
            .map_err(|e| AppError::Setup(format!("cannot announce a key change: {e}")))
    }
}

fn rejected(reason: KeyRejection) -> AppError {
    let reason = match reason {
        KeyRejection::Malformed => "malformed",
        KeyRejection::Unknown => "unknown",
        KeyRejection::WrongSecret => "wrong_secret",
        KeyRejection::Revoked => "revoked",
        KeyRejection::Expired => "expired",
    };
    metrics::counter!("rampart_auth_failures_total", "reason" => reason).increment(1);
    AppError::Unauthenticated
}
