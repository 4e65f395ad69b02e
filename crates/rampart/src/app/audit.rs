//! Who is calling, and the audit trail: every use case that changes state records a typed
//! event (actor, action, target, client IP, outcome) in the same transaction as the change,
//! so the trail and the data cannot disagree.

use std::net::IpAddr;

use super::AppError;
use crate::clock::Millis;
use crate::identity::roles::Role;
use crate::identity::{Scope, Scopes};
use crate::network::client_cert::CertFingerprint;
use crate::network::ip::IpList;
use crate::store::audit::NewAuditRecord;
use crate::store::{StoreError, Tx};

/// Who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A request authenticated by this API key (its public id).
    ApiKey(String),
    /// A person signed in with a session (the user's id).
    User(String),
    /// The local operator, through the `rampart` command on the server's machine.
    Operator,
    /// Rampart itself (start-up bootstrap).
    System,
}

impl Actor {
    /// How the ledger names the actor: `api_key:<id>`, `user:<id>`, `operator`, `system`.
    pub fn label(&self) -> String {
        match self.kind_and_id() {
            (kind, Some(id)) => format!("{kind}:{id}"),
            (kind, None) => kind.to_owned(),
        }
    }

    fn kind_and_id(&self) -> (&'static str, Option<&str>) {
        match self {
            Self::ApiKey(id) => ("api_key", Some(id)),
            Self::User(id) => ("user", Some(id)),
            Self::Operator => ("operator", None),
            Self::System => ("system", None),
        }
    }
}

/// An authenticated caller acting within one account, or over the instance.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    /// The account the caller acts in. Empty for an operator acting over the instance: such
    /// a caller holds server-wide scopes only, so no use case of an account lets it through.
    pub account_id: String,
    pub scopes: Scopes,
    pub client_ip: Option<IpAddr>,
    /// Networks the caller may act from; a key it makes can be no wider.
    pub allowed_ips: IpList,
    /// The person behind the request: the signed-in user, or the owner of the key.
    pub user_id: Option<String>,
    /// The role the person holds where the caller acts (sessions only).
    pub role: Option<Role>,
    /// When the caller's own credential ends (a key's expiry, a session's absolute end): a
    /// key it makes ends no later.
    pub expires_at: Option<Millis>,
    /// For a session: its id and when the person last proved who they are (step-up).
    pub session: Option<SessionCaller>,
    /// The client certificate the caller's key requires (and the request presented): a key
    /// it makes requires the same one.
    pub client_cert_sha256: Option<CertFingerprint>,
}

/// The session behind a caller.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    pub id: String,
    pub authenticated_at: Millis,
}

impl Caller {
    /// The local operator acting on `account_id`, with every scope.
    pub fn operator(account_id: impl Into<String>) -> Self {
        Self {
            actor: Actor::Operator,
            account_id: account_id.into(),
            scopes: Scopes::all(),
            client_ip: None,
            allowed_ips: IpList::default(),
            user_id: None,
            role: None,
            expires_at: None,
            session: None,
            client_cert_sha256: None,
        }
    }

    /// Whether the caller acts over the instance rather than in an account.
    pub fn is_instance(&self) -> bool {
        self.account_id.is_empty()
    }

    /// Deny by default: each use case names the scope it needs.
    pub fn require(&self, scope: Scope) -> Result<(), AppError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "insufficient_scope",
                format!("the caller lacks the `{}` permission", scope.as_str()),
            ))
        }
    }
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    MessagesSent,
    MessageCanceled,
    ApiKeyIssued,
    ApiKeyRevoked,
    AccountCreated,
    ConnectorAdded,
    ConnectorRemoved,
    RouteSet,
    RouteRemoved,
    NumberAssigned,
    NumberRemoved,
    AccountNetworksSet,
    AccountRateLimitsSet,
    AccountRetentionSet,
    AccountPolicySet,
    /// Retention erased or purged messages of an account (the target holds the counts).
    RetentionApplied,
    RequestRefused,
    AddressBanned,
    BanLifted,
    UserCreated,
    UserDisabled,
    UserEnabled,
    LoginSucceeded,
    LoginFailed,
    UserLocked,
    SignedOut,
    SessionRevoked,
    PasswordChanged,
    PasswordResetRequested,
    PasswordReset,
    FactorAdded,
    FactorRemoved,
    RecoveryCodesIssued,
    MemberInvited,
    MemberJoined,
    MemberRoleChanged,
    MemberRemoved,
    PeoplePolicySet,
    /// The scheduled integrity check found the audit trail tampered with.
    IntegrityFailed,
    BackupCreated,
    KeyRotated,
    MasterKeyRotated,
    KeyRetired,
    KeysReencrypted,
    AccountDeleted,
    AccountModeSet,
    BillingEnabled,
    PricesLoaded,
    CreditAdded,
    MessageRefunded,
    /// A prepaid account's balance fell under its threshold (once until topped up).
    LowBalance,
    OptOutAdded,
    OptOutRemoved,
    /// A list of numbers was opted out (the target holds how many were new).
    OptOutsImported,
    OptOutSettingsSet,
    /// A destination prefix was blocked for suspected SMS pumping (the target holds the
    /// masked prefix and the counts).
    PumpingBlocked,
    PumpingBlockLifted,
    PumpingSafeAdded,
    PumpingSafeRemoved,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessagesSent => "messages.send",
            Self::MessageCanceled => "message.cancel",
            Self::ApiKeyIssued => "api_key.issue",
            Self::ApiKeyRevoked => "api_key.revoke",
            Self::AccountCreated => "account.create",
            Self::ConnectorAdded => "connector.add",
            Self::ConnectorRemoved => "connector.remove",
            Self::RouteSet => "route.set",
            Self::RouteRemoved => "route.remove",
            Self::NumberAssigned => "number.assign",
            Self::NumberRemoved => "number.remove",
            Self::AccountNetworksSet => "account.allowed_ips",
            Self::AccountRateLimitsSet => "account.rate_limits",
            Self::AccountRetentionSet => "account.retention",
            Self::AccountPolicySet => "account.policy",
            Self::RetentionApplied => "retention.applied",
            Self::RequestRefused => "request.refused",
            Self::AddressBanned => "address.ban",
            Self::BanLifted => "address.unban",
            Self::UserCreated => "user.create",
            Self::UserDisabled => "user.disable",
            Self::UserEnabled => "user.enable",
            Self::LoginSucceeded => "login.ok",
            Self::LoginFailed => "login.failed",
            Self::UserLocked => "user.lock",
            Self::SignedOut => "session.sign_out",
            Self::SessionRevoked => "session.revoke",
            Self::PasswordChanged => "password.change",
            Self::PasswordResetRequested => "password.reset_request",
            Self::PasswordReset => "password.reset",
            Self::FactorAdded => "factor.add",
            Self::FactorRemoved => "factor.remove",
            Self::RecoveryCodesIssued => "recovery_codes.issue",
            Self::MemberInvited => "member.invite",
            Self::MemberJoined => "member.join",
            Self::MemberRoleChanged => "member.role",
            Self::MemberRemoved => "member.remove",
            Self::PeoplePolicySet => "account.people_policy",
            Self::IntegrityFailed => "security.integrity_failed",
            Self::BackupCreated => "backup.create",
            Self::KeyRotated => "key.rotate",
            Self::MasterKeyRotated => "key.rotate_master",
            Self::KeyRetired => "key.retire",
            Self::KeysReencrypted => "key.reencrypt",
            Self::AccountDeleted => "account.delete",
            Self::AccountModeSet => "account.mode",
            Self::BillingEnabled => "billing.enable",
            Self::PricesLoaded => "billing.prices_load",
            Self::CreditAdded => "billing.credit",
            Self::MessageRefunded => "billing.refund",
            Self::LowBalance => "billing.low_balance",
            Self::OptOutAdded => "opt_out.add",
            Self::OptOutRemoved => "opt_out.remove",
            Self::OptOutsImported => "opt_out.import",
            Self::OptOutSettingsSet => "account.opt_out_settings",
            Self::PumpingBlocked => "security.pumping_blocked",
            Self::PumpingBlockLifted => "pumping.lift",
            Self::PumpingSafeAdded => "pumping.safe_add",
            Self::PumpingSafeRemoved => "pumping.safe_remove",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Refused, with the error code the caller got.
    Denied(&'static str),
}

/// One audit event. Targets are ids, never phone numbers or message text.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: Actor,
    pub account_id: Option<String>,
    pub action: Action,
    pub target: String,
    pub client_ip: Option<IpAddr>,
    pub outcome: Outcome,
    pub at: Millis,
}

impl AuditEvent {
    /// A change made by `caller` in its account.
    pub fn by(caller: &Caller, action: Action, target: impl Into<String>, at: Millis) -> Self {
        Self {
            actor: caller.actor.clone(),
            account_id: (!caller.is_instance()).then(|| caller.account_id.clone()),
            action,
            target: target.into(),
            client_ip: caller.client_ip,
            outcome: Outcome::Done,
            at,
        }
    }

    /// A change to the instance itself (connectors, routes, numbers) by `actor`.
    pub fn instance(actor: &Actor, action: Action, target: impl Into<String>, at: Millis) -> Self {
        Self {
            actor: actor.clone(),
            account_id: None,
            action,
            target: target.into(),
            client_ip: None,
            outcome: Outcome::Done,
            at,
        }
    }

    pub fn denied(mut self, code: &'static str) -> Self {
        self.outcome = Outcome::Denied(code);
        self
    }

    /// Writes the event inside the caller's transaction.
    pub fn record(&self, tx: &Tx<'_>) -> Result<(), StoreError> {
        let (actor_kind, actor_id) = self.actor.kind_and_id();
        let denied;
        let outcome = match self.outcome {
            Outcome::Done => "ok",
            Outcome::Denied(code) => {
                denied = format!("denied:{code}");
                &denied
            }
        };
        let client_ip = self.client_ip.map(|ip| ip.to_string());
        tx.record_audit(&NewAuditRecord {
            at: self.at,
            actor_kind,
            actor_id,
            account_id: self.account_id.as_deref(),
            action: self.action.as_str(),
            target: &self.target,
            client_ip: client_ip.as_deref(),
            outcome,
        })
    }
}
