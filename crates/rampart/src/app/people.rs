//! Use cases of people: operators create and disable users; account owners and admins invite
//! members by one-time link, change their roles and remove them; anyone can ask for a
//! password reset link; the very first operator is made with a one-time setup code.
//!
//! "An intern gets into the building, not the boardroom": a member's role is checked on every
//! request (removal takes effect on the next one, and revokes the keys they made there), no
//! one gives a role above their own, and an account always keeps an owner.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::audit::{Action, Actor, AuditEvent, Caller};
use super::sessions::{Client, NewSession};
use super::sign_in::normalise_email;
use super::{App, AppError};
use crate::clock::Millis;
use crate::identity::Scope;
use crate::identity::codes::LinkToken;
use crate::identity::roles::{Role, RoleKind};
pub use crate::store::people::{MembershipRecord, UserRecord};
use crate::store::sessions::ChallengeRecord;

/// Longest display name of a person.
pub const MAX_PERSON_NAME: usize = 100;
/// How long a password reset link stays valid (OWASP ASVS 4.0 V2.3.1: short-lived).
pub const RESET_TTL_MS: Millis = 60 * 60 * 1000;
/// How long the first start's setup code stays valid.
pub const SETUP_TTL_MS: Millis = 7 * 24 * 60 * 60 * 1000;
/// Token prefixes: invitation, reset and setup links.
pub const INVITE_PREFIX: &str = "ri";
pub const RESET_PREFIX: &str = "rr";
pub const SETUP_PREFIX: &str = "rsu";
/// The file, in the data directory, the setup code is written to when no terminal shows it.
pub const SETUP_FILE: &str = "setup-code";

/// A person to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    /// `None`: the person sets one through the link they are given.
    pub password: Option<String>,
    /// An operator role, or a member role with `account`.
    pub role: Role,
    pub account: Option<String>,
}

/// A person just created, and the link to set their password when none was given.
#[derive(Debug)]
pub struct CreatedUser {
    pub user: UserRecord,
    pub link: Option<LinkToken>,
}

/// A member as listed.
#[derive(Debug, Clone)]
pub struct Member {
    pub user: UserRecord,
    pub membership: MembershipRecord,
}

/// An invitation just made: the link to hand to the person, shown once.
#[derive(Debug)]
pub struct Invitation {
    pub token: LinkToken,
    pub expires_at: Millis,
    pub user_id: String,
}

/// Checks an email's shape, exactly as the OpenAPI document states it (`EMAIL_PATTERN`):
/// something, `@`, something with a dot inside; no white space, control character or second
/// `@`; at most 254 characters. Returns it lowercased.
pub(crate) fn validate_email(raw: &str) -> Result<String, AppError> {
    let refused = |c: char| c.is_whitespace() || c.is_control() || c == '\u{feff}';
    let ok = raw.chars().count() <= 254
        && !raw.chars().any(refused)
        && raw.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain
                    .char_indices()
                    .any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len())
        });
    if ok {
        Ok(normalise_email(raw))
    } else {
        Err(AppError::invalid(
            "invalid_email",
            "`email` must be an email address",
            "email",
        ))
    }
}

/// A role a member can hold in an account (not an operator's).
fn parse_member_role(raw: &str) -> Result<Role, AppError> {
    match Role::parse(raw) {
        Some(role) if role.kind() == RoleKind::Member => Ok(role),
        _ => Err(AppError::invalid(
            "invalid_role",
            "a member's role is owner, admin, developer, billing, analyst or viewer",
            "role",
        )),
    }
}

impl App {
    /// Creates a person (the local operator, or an operator with `accounts:manage`). With a
    /// member role, the person joins `account` with it.
    pub async fn create_user(
        &self,
        caller: &Caller,
        request: NewUser,
    ) -> Result<CreatedUser, AppError> {
        caller.require(Scope::AccountsManage)?;
        self.require_recent_authentication(caller)?;
        let email = validate_email(&request.email)?;
        let name = super::validate_name(&request.name, MAX_PERSON_NAME)?;
        let account = match (request.role.kind(), request.account.as_deref()) {
            (RoleKind::Member, Some(account)) => Some(self.account_or_only(Some(account))?),
            (RoleKind::Member, None) => Some(self.account_or_only(None)?),
            (RoleKind::Operator, _) => None,
        };
        let now = self.clock.now_ms();
        let operator_role = (request.role.kind() == RoleKind::Operator).then_some(request.role);
        let user = new_user(email, name, operator_role, now);
        let phc = match &request.password {
            Some(raw) => Some(self.hash_new_password(&user, raw).await?),
            None => None,
        };
        let link = request
            .password
            .is_none()
            .then(|| LinkToken::generate(RESET_PREFIX));
        let mut record = user.clone();
        record.password_hash = phc;
        record.password_changed_at = record.password_hash.as_ref().map(|_| now);
        let challenge = link
            .as_ref()
            .map(|token| self.challenge(token, "reset", &user.id, now + SETUP_TTL_MS));
        let membership = account.map(|account_id| MembershipRecord {
            account_id,
            user_id: user.id.clone(),
            role: request.role.as_str().to_owned(),
            created_at: now,
        });
        let mut audit = AuditEvent::by(caller, Action::UserCreated, &user.id, now);
        audit.account_id = membership.as_ref().map(|m| m.account_id.clone());
        let email = user.email.clone();
        self.store
            .write(move |tx| {
                if tx.find_user_by_email(&email)?.is_some() {
                    return Err(AppError::Conflict {
                        code: "email_taken",
                        message: "a person with this email exists".into(),
                    });
                }
                tx.insert_user(&record)?;
                if let Some(m) = &membership {
                    tx.put_membership(m)?;
                }
                if let Some(c) = &challenge {
                    tx.insert_challenge(c)?;
                }
                audit.record(tx)?;
                Ok(())
            })
            .await?;
        let user = self
            .store
            .read(|tx| tx.get_user(&user.id))?
            .ok_or(AppError::NotFound("user"))?;
        Ok(CreatedUser { user, link })
    }

    /// Every person (operators with `accounts:manage`).
    pub fn list_users(&self, caller: &Caller) -> Result<Vec<UserRecord>, AppError> {
        caller.require(Scope::AccountsManage)?;
        Ok(self.store.read(|tx| tx.list_users())?)
    }

    /// Disables a person (their sessions and keys stop working on the next request) or
    /// enables them again. The last owner of an account cannot be disabled.
    pub async fn set_user_disabled(
        &self,
        caller: &Caller,
        user_id: &str,
        disabled: bool,
    ) -> Result<UserRecord, AppError> {
        caller.require(Scope::AccountsManage)?;
        self.require_recent_authentication(caller)?;
        let now = self.clock.now_ms();
        let action = if disabled {
            Action::UserDisabled
        } else {
            Action::UserEnabled
        };
        let audit = AuditEvent::by(caller, action, user_id, now);
        let id = user_id.to_owned();
        self.store
            .write(move |tx| {
                let Some(user) = tx.get_user(&id)? else {
                    return Err(AppError::NotFound("user"));
                };
                if disabled {
                    for m in tx.list_memberships(&id)? {
                        if m.role == Role::Owner.as_str()
                            && user.disabled_at.is_none()
                            && tx.count_owners(&m.account_id)? <= 1
                        {
                            return Err(last_owner());
                        }
                    }
                    tx.revoke_sessions_of(&id, None, now)?;
                    tx.revoke_api_keys_of_user(&id, None, now)?;
                }
                tx.set_user_disabled(&id, disabled.then_some(now))?;
                audit.record(tx)?;
                Ok(())
            })
            .await?;
        self.announce_key_change()?;
        self.store
            .read(|tx| tx.get_user(user_id))?
            .ok_or(AppError::NotFound("user"))
    }

    /// The members of an account and their roles.
    pub fn list_members(&self, caller: &Caller, account_id: &str) -> Result<Vec<Member>, AppError> {
        self.member_scope(caller, account_id, Scope::MembersRead)?;
        self.store.read(|tx| {
            let mut members = Vec::new();
            for membership in tx.list_members(account_id)? {
                if let Some(user) = tx.get_user(&membership.user_id)? {
                    members.push(Member { user, membership });
                }
            }
            Ok::<_, AppError>(members)
        })
    }

    /// Invites a person to an account with a role, by a one-time link valid for
    /// `people.invite_hours`. A person not yet known is created without a password; they set
    /// one when they accept.
    pub async fn invite_member(
        &self,
        caller: &Caller,
        account_id: &str,
        email: &str,
        role: &str,
    ) -> Result<Invitation, AppError> {
        self.member_scope(caller, account_id, Scope::MembersManage)?;
        let role = parse_member_role(role)?;
        self.require_may_manage(caller, role)?;
        self.require_recent_authentication(caller)?;
        let email = validate_email(email)?;
        let now = self.clock.now_ms();
        let expires_at = now + Millis::from(self.config.people.invite_hours) * 3_600_000;
        let token = LinkToken::generate(INVITE_PREFIX);
        let name = email.split('@').next().unwrap_or_default().to_owned();
        let fresh = new_user(email.clone(), name, None, now);
        let mut challenge = self.challenge(&token, "invite", &fresh.id, expires_at);
        challenge.account_id = Some(account_id.to_owned());
        challenge.role = Some(role.as_str().to_owned());
        let audit = AuditEvent::by(caller, Action::MemberInvited, &fresh.id, now);
        let user_id = self
            .store
            .write(move |tx| {
                let user_id = match tx.find_user_by_email(&email)? {
                    Some(user) => {
                        if tx
                            .get_membership(
                                challenge.account_id.as_deref().unwrap_or_default(),
                                &user.id,
                            )?
                            .is_some()
                        {
                            return Err(AppError::Conflict {
                                code: "already_member",
                                message: "this person is already a member".into(),
                            });
                        }
                        user.id
                    }
                    None => {
                        tx.insert_user(&fresh)?;
                        fresh.id.clone()
                    }
                };
                challenge.user_id = Some(user_id.clone());
                let mut audit = audit;
                audit.target = user_id.clone();
                tx.insert_challenge(&challenge)?;
                audit.record(tx)?;
                Ok(user_id)
            })
            .await?;
        Ok(Invitation {
            token,
            expires_at,
            user_id,
        })
    }

    /// Accepts an invitation: the person joins with the role (setting their password first
    /// if they have none) and is signed in.
    pub async fn accept_invitation(
        &self,
        presented: &str,
        password: Option<&str>,
        client: &Client,
    ) -> Result<NewSession, AppError> {
        self.limit_client(client)?;
        let (challenge, user) = self.open_challenge(INVITE_PREFIX, "invite", presented)?;
        if user.password_hash.is_none() {
            let password = password.ok_or_else(|| {
                AppError::invalid(
                    "password_required",
                    "choose a password to join: 12 to 128 characters",
                    "password",
                )
            })?;
            self.set_password(&user, password, None, None).await?;
        }
        let now = self.clock.now_ms();
        let membership = MembershipRecord {
            account_id: challenge.account_id.clone().unwrap_or_default(),
            user_id: user.id.clone(),
            role: challenge.role.clone().unwrap_or_else(|| "viewer".into()),
            created_at: now,
        };
        let mut audit = self.person_event(
            Some(user.id.clone()),
            Action::MemberJoined,
            &user.id,
            client,
            now,
        );
        audit.account_id = Some(membership.account_id.clone());
        let id = challenge.id.clone();
        self.store
            .write(move |tx| {
                if !tx.use_challenge(&id, now)? {
                    return Err(AppError::Unauthenticated);
                }
                tx.put_membership(&membership)?;
                audit.record(tx)?;
                Ok(())
            })
            .await?;
        let user = self
            .store
            .read(|tx| tx.get_user(&user.id))?
            .ok_or(AppError::Unauthenticated)?;
        self.start_session(&user, client).await
    }

    /// Changes a member's role. No one gives or takes a role above their own, and the last
    /// owner stays an owner.
    pub async fn change_member_role(
        &self,
        caller: &Caller,
        account_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<MembershipRecord, AppError> {
        self.member_scope(caller, account_id, Scope::MembersManage)?;
        let role = parse_member_role(role)?;
        self.require_may_manage(caller, role)?;
        self.require_recent_authentication(caller)?;
        let now = self.clock.now_ms();
        let current = self
            .store
            .read(|tx| tx.get_membership(account_id, user_id))?
            .ok_or(AppError::NotFound("member"))?;
        if let Some(old) = Role::parse(&current.role) {
            self.require_may_manage(caller, old)?;
        }
        let audit = AuditEvent::by(caller, Action::MemberRoleChanged, user_id, now);
        let mut changed = current.clone();
        changed.role = role.as_str().to_owned();
        let record = changed.clone();
        self.store
            .write(move |tx| {
                if current.role == Role::Owner.as_str()
                    && role != Role::Owner
                    && tx.count_owners(&current.account_id)? <= 1
                {
                    return Err(last_owner());
                }
                tx.put_membership(&record)?;
                audit.record(tx)?;
                Ok(())
            })
            .await?;
        Ok(changed)
    }

    /// Removes a member: their sessions lose the account and the keys they made there are
    /// revoked, on the next request.
    pub async fn remove_member(
        &self,
        caller: &Caller,
        account_id: &str,
        user_id: &str,
    ) -> Result<(), AppError> {
        self.member_scope(caller, account_id, Scope::MembersManage)?;
        self.require_recent_authentication(caller)?;
        let current = self
            .store
            .read(|tx| tx.get_membership(account_id, user_id))?
            .ok_or(AppError::NotFound("member"))?;
        if let Some(old) = Role::parse(&current.role) {
            self.require_may_manage(caller, old)?;
        }
        let now = self.clock.now_ms();
        let audit = AuditEvent::by(caller, Action::MemberRemoved, user_id, now);
        self.store
            .write(move |tx| {
                if current.role == Role::Owner.as_str()
                    && tx.count_owners(&current.account_id)? <= 1
                {
                    return Err(last_owner());
                }
                tx.remove_membership(&current.account_id, &current.user_id)?;
                tx.revoke_api_keys_of_user(&current.user_id, Some(&current.account_id), now)?;
                audit.record(tx)?;
                Ok(())
            })
            .await?;
        self.announce_key_change()
    }

    /// Asks for a password reset link. The answer is the same whether the email is known or
    /// not (OWASP ASVS 4.0 V2.5.x, V3.x: no user enumeration); a known person with a verified
    /// phone gets the link by SMS. Returns the link only for the local operator's command.
    pub async fn request_password_reset(
        &self,
        email: &str,
        client: &Client,
    ) -> Result<Option<LinkToken>, AppError> {
        let email = normalise_email(email);
        let now = self.clock.now_ms();
        let Some(user) = self.store.read(|tx| tx.find_user_by_email(&email))? else {
            return Ok(None);
        };
        if user.disabled_at.is_some() {
            return Ok(None);
        }
        let token = LinkToken::generate(RESET_PREFIX);
        let challenge = self.challenge(&token, "reset", &user.id, now + RESET_TTL_MS);
        let audit = self.person_event(
            Some(user.id.clone()),
            Action::PasswordResetRequested,
            &user.id,
            client,
            now,
        );
        let user_id = user.id.clone();
        self.store
            .write(move |tx| {
                tx.end_challenges(&user_id, "reset", now)?;
                tx.insert_challenge(&challenge)?;
                audit.record(tx)
            })
            .await?;
        Ok(Some(token))
    }

    /// Asks for a password reset link over the API: a known person with a verified phone gets
    /// it by SMS; the answer never says whether the email is known.
    pub async fn send_password_reset(&self, email: &str, client: &Client) -> Result<(), AppError> {
        self.limit_client(client)?;
        validate_email(email)?;
        if let Some(token) = self.request_password_reset(email, client).await? {
            self.deliver_reset_link(&normalise_email(email), &token)
                .await?;
        }
        Ok(())
    }

    /// Sends a reset code by SMS to the person's verified phone, if they have one; without
    /// one nothing is sent (the operator makes a link with `rampart user reset-link`). A
    /// failure to queue the SMS is logged, never answered: the answer must not differ.
    async fn deliver_reset_link(&self, email: &str, token: &LinkToken) -> Result<(), AppError> {
        let Some(user) = self.store.read(|tx| tx.find_user_by_email(email))? else {
            return Ok(());
        };
        let Some(sealed) = user.phone_sealed.as_deref() else {
            return Ok(());
        };
        let phone = self.open_phone(&user.id, sealed)?;
        let body = format!(
            "Your Rampart password reset code: {} (valid 1 hour)",
            token.reveal()
        );
        if let Err(e) = self.send_notice(phone.as_str(), body).await {
            tracing::warn!(error = %e, to = %phone.masked(), "cannot queue a password reset code");
        }
        Ok(())
    }

    /// Sets a new password with a reset link: it is used up, the lock after failed sign-ins
    /// is lifted and every session ends.
    pub async fn complete_password_reset(
        &self,
        presented: &str,
        password: &str,
        client: &Client,
    ) -> Result<(), AppError> {
        self.limit_client(client)?;
        let (challenge, user) = self.open_challenge(RESET_PREFIX, "reset", presented)?;
        self.set_password(&user, password, None, None).await?;
        let now = self.clock.now_ms();
        let id = challenge.id.clone();
        self.store
            .write(move |tx| {
                tx.use_challenge(&id, now)?;
                Ok::<_, AppError>(())
            })
            .await
    }

    /// On first start with no operator: a one-time setup code for the first operator. Shown at
    /// a terminal (`to_terminal`), else written to an owner-only file in the data directory,
    /// whose path is returned with it.
    pub async fn prepare_setup(
        &self,
        to_terminal: bool,
    ) -> Result<Option<(LinkToken, Option<PathBuf>)>, AppError> {
        let now = self.clock.now_ms();
        if self.store.read(|tx| tx.count_operators())? > 0 {
            return Ok(None);
        }
        let token = LinkToken::generate(SETUP_PREFIX);
        // Not tied to a person yet: the empty user id groups the setup codes, so a new start
        // ends the previous code.
        let challenge = self.challenge(&token, "setup", "", now + SETUP_TTL_MS);
        self.store
            .write(move |tx| {
                tx.end_challenges("", "setup", now)?;
                tx.insert_challenge(&challenge)?;
                Ok::<_, AppError>(())
            })
            .await?;
        let path = self.config.data_dir.join(SETUP_FILE);
        let _ = fs::remove_file(&path);
        if to_terminal {
            return Ok(Some((token, None)));
        }
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{}", token.reveal()))
            .map_err(|e| AppError::Setup(format!("cannot write {}: {e}", path.display())))?;
        Ok(Some((token, Some(path))))
    }

    /// Makes the first operator (`operator-admin`) with the setup code, and signs them in.
    pub async fn complete_setup(
        &self,
        presented: &str,
        email: &str,
        name: &str,
        password: &str,
        client: &Client,
    ) -> Result<NewSession, AppError> {
        self.limit_client(client)?;
        let token = LinkToken::parse(SETUP_PREFIX, presented).ok_or(AppError::SignInRefused)?;
        let now = self.clock.now_ms();
        let challenge = self
            .store
            .read(|tx| tx.get_challenge(token.id()))?
            .filter(|c| self.challenge_matches(c, "setup", &token, now))
            .ok_or(AppError::SignInRefused)?;
        let email = validate_email(email)?;
        let name = super::validate_name(name, MAX_PERSON_NAME)?;
        let mut user = new_user(email, name, Some(Role::OperatorAdmin), now);
        user.password_hash = Some(self.hash_new_password(&user, password).await?);
        user.password_changed_at = Some(now);
        let audit = self.person_event(
            Some(user.id.clone()),
            Action::UserCreated,
            &user.id,
            client,
            now,
        );
        let (record, id) = (user.clone(), challenge.id.clone());
        self.store
            .write(move |tx| {
                if tx.count_operators()? > 0 || !tx.use_challenge(&id, now)? {
                    return Err(AppError::SignInRefused);
                }
                if tx.find_user_by_email(&record.email)?.is_some() {
                    return Err(AppError::Conflict {
                        code: "email_taken",
                        message: "a person with this email exists".into(),
                    });
                }
                tx.insert_user(&record)?;
                audit.record(tx)?;
                Ok(())
            })
            .await?;
        let _ = fs::remove_file(self.config.data_dir.join(SETUP_FILE));
        self.start_session(&user, client).await
    }

    /// A challenge record for a link token.
    pub(crate) fn challenge(
        &self,
        token: &LinkToken,
        purpose: &str,
        user_id: &str,
        expires_at: Millis,
    ) -> ChallengeRecord {
        ChallengeRecord {
            id: token.id().to_owned(),
            purpose: purpose.to_owned(),
            user_id: Some(user_id.to_owned()),
            account_id: None,
            role: None,
            hash: self.sealer.hash_api_key(token.reveal()).to_vec(),
            state_sealed: None,
            attempts: 0,
            created_at: self.clock.now_ms(),
            expires_at,
            used_at: None,
        }
    }

    /// Whether a stored challenge is live, of this purpose, and matches the presented token.
    pub(crate) fn challenge_matches(
        &self,
        challenge: &ChallengeRecord,
        purpose: &str,
        token: &LinkToken,
        now: Millis,
    ) -> bool {
        use subtle::ConstantTimeEq;
        let hash = self.sealer.hash_api_key(token.reveal());
        bool::from(challenge.hash.as_slice().ct_eq(&hash))
            && challenge.purpose == purpose
            && challenge.used_at.is_none()
            && challenge.expires_at > now
    }

    /// The live challenge behind a presented link, and its person; every failure is the same
    /// refusal.
    pub(crate) fn open_challenge(
        &self,
        prefix: &str,
        purpose: &str,
        presented: &str,
    ) -> Result<(ChallengeRecord, UserRecord), AppError> {
        let token = LinkToken::parse(prefix, presented).ok_or(AppError::SignInRefused)?;
        let now = self.clock.now_ms();
        self.store
            .read(|tx| {
                let Some(challenge) = tx.get_challenge(token.id())? else {
                    return Ok::<_, AppError>(None);
                };
                let user = match &challenge.user_id {
                    Some(id) => tx.get_user(id)?,
                    None => None,
                };
                Ok(user.map(|u| (challenge, u)))
            })?
            .filter(|(c, u)| {
                self.challenge_matches(c, purpose, &token, now) && u.disabled_at.is_none()
            })
            .ok_or(AppError::SignInRefused)
    }

    async fn hash_new_password(&self, user: &UserRecord, raw: &str) -> Result<String, AppError> {
        use crate::identity::password::{Password, PasswordContext};
        let context = PasswordContext::for_user(&user.email, &user.name, &self.breached);
        let password = Password::parse(raw, &context)
            .map_err(|e| AppError::invalid(e.code(), e.to_string(), "password"))?;
        self.passwords
            .hash(&password)
            .await
            .map_err(|e| AppError::Setup(format!("cannot hash a password: {e}")))
    }

    /// The caller may act on the members of `account_id` with `scope`: it acts in that
    /// account (another account's id is not found), or is an operator over the instance.
    pub(crate) fn member_scope(
        &self,
        caller: &Caller,
        account_id: &str,
        scope: Scope,
    ) -> Result<(), AppError> {
        if caller.is_instance() {
            caller.require(Scope::AccountsManage)?;
            return match self.store.read(|tx| tx.get_account(account_id))? {
                Some(_) => Ok(()),
                None => Err(AppError::NotFound("account")),
            };
        }
        if caller.account_id != account_id {
            return Err(AppError::NotFound("account"));
        }
        caller.require(scope)
    }

    /// No one gives, changes or takes away a role above their own: an admin manages everyone
    /// but owners; an owner, the local operator and an operator with `accounts:manage` manage
    /// everyone; a key acts as an admin.
    fn require_may_manage(&self, caller: &Caller, role: Role) -> Result<(), AppError> {
        let ok = match (&caller.actor, caller.role) {
            (Actor::Operator | Actor::System, _) => true,
            _ if caller.is_instance() => caller.scopes.contains(Scope::AccountsManage),
            (_, Some(own)) => own.may_manage(role),
            (_, None) => Role::Admin.may_manage(role),
        };
        if ok {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "role_escalation",
                format!("you cannot give, change or remove the `{role}` role"),
            ))
        }
    }
}

/// A new person with no password yet.
fn new_user(email: String, name: String, operator_role: Option<Role>, now: Millis) -> UserRecord {
    UserRecord {
        id: crate::store::new_id("usr"),
        email,
        name,
        operator_role: operator_role.map(|r| r.as_str().to_owned()),
        password_hash: None,
        password_changed_at: None,
        failed_logins: 0,
        locked_at: None,
        disabled_at: None,
        phone_sealed: None,
        created_at: now,
    }
}

fn last_owner() -> AppError {
    AppError::Conflict {
        code: "last_owner",
        message: "an account keeps at least one owner: make another owner first".into(),
    }
}
