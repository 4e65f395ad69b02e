//! People over the API: the first operator's setup, password resets, invitations
//! (`/v1/auth/…`), users (`/v1/users…`, operators) and the members of an account
//! (`/v1/accounts/{id}/members…`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{ClientInfo, LoginResult, signed_in};
use super::error::ApiError;
use super::extract::{ApiJson, Auth};
use super::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, TooManyRequests, Unauthorized,
    Unprocessable, UnsupportedMediaType,
};
use crate::app::people::UserRecord;
use crate::app::people::{Member, NewUser};
use crate::clock;
use crate::identity::roles::Role;

/// A person as others see them.
#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_role: Option<String>,
    /// Whether the person has set a password yet.
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub disabled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub locked_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            operator_role: u.operator_role.clone(),
            active: u.password_hash.is_some(),
            disabled_at: u.disabled_at.map(clock::rfc3339),
            locked_at: u.locked_at.map(clock::rfc3339),
            created_at: clock::rfc3339(u.created_at),
        }
    }
}

/// The first operator, made with the setup code of the first start.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupRequest {
    /// The code from the terminal or the `setup-code` file in the data directory.
    #[schema(value_type = String, max_length = 200)]
    pub setup_code: SecretString,
    #[schema(schema_with = super::openapi::email)]
    pub email: String,
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 1024)]
    pub password: SecretString,
}

/// Make the first operator with the setup code, and sign in.
#[utoipa::path(post, path = "/v1/auth/setup", tag = "auth", request_body = SetupRequest,
    responses((status = 200, description = "The first operator exists and is signed in", body = LoginResult),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests)))]
pub async fn setup(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    request: ApiJson<SetupRequest>,
) -> Result<Response, ApiError> {
    let r = request.value;
    let new = state
        .app
        .complete_setup(
            r.setup_code.expose_secret(),
            &r.email,
            &r.name,
            r.password.expose_secret(),
            &client,
        )
        .await?;
    Ok(signed_in(&state, &new))
}

/// An email that forgot its password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[schema(schema_with = super::openapi::email)]
    pub email: String,
}

/// Ask for a password reset link. The answer is the same whether or not the email is known.
#[utoipa::path(post, path = "/v1/auth/password-reset", tag = "auth", request_body = ResetRequest,
    responses((status = 202, description = "If the email is known, a link is on its way"),
        (status = 400, response = BadRequest), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests)))]
pub async fn request_reset(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    request: ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .app
        .send_password_reset(&request.value.email, &client)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// A reset link's token and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteReset {
    #[schema(value_type = String, max_length = 200)]
    pub token: SecretString,
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 1024)]
    pub password: SecretString,
}

/// Set a new password with a reset link; every session of the person ends.
#[utoipa::path(post, path = "/v1/auth/password-reset/complete", tag = "auth", request_body = CompleteReset,
    responses((status = 204, description = "The password is set; sign in with it"),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests)))]
pub async fn complete_reset(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    request: ApiJson<CompleteReset>,
) -> Result<StatusCode, ApiError> {
    let r = request.value;
    state
        .app
        .complete_password_reset(r.token.expose_secret(), r.password.expose_secret(), &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An invitation's token, and a password for a person who has none yet.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    #[schema(value_type = String, max_length = 200)]
    pub token: SecretString,
    #[schema(value_type = Option<String>, format = Password, min_length = 12, max_length = 1024)]
    pub password: Option<SecretString>,
}

/// Accept an invitation: join the account and sign in.
#[utoipa::path(post, path = "/v1/auth/invitations/accept", tag = "auth", request_body = AcceptInvitation,
    responses((status = 200, description = "Joined and signed in", body = LoginResult),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
        (status = 429, response = TooManyRequests)))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    ClientInfo(client): ClientInfo,
    request: ApiJson<AcceptInvitation>,
) -> Result<Response, ApiError> {
    let r = request.value;
    let new = state
        .app
        .accept_invitation(
            r.token.expose_secret(),
            r.password.as_ref().map(|p| p.expose_secret()),
            &client,
        )
        .await?;
    Ok(signed_in(&state, &new))
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    pub data: Vec<UserView>,
}

/// Every person (operators with `accounts:manage`).
#[utoipa::path(get, path = "/v1/users", tag = "users",
    responses((status = 200, description = "Every person", body = UserList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<UserList>, ApiError> {
    let users = state.app.list_users(&auth.0)?;
    Ok(Json(UserList {
        data: users.iter().map(UserView::from).collect(),
    }))
}

/// A person to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(schema_with = super::openapi::email)]
    pub email: String,
    #[schema(
        example = "Ada Lovelace",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// `operator-admin`, `operator-viewer`, or a member role with `account_id`.
    #[schema(schema_with = super::openapi::role_names)]
    pub role: String,
    pub account_id: Option<String>,
}

/// A person just created, with the link to set their password (shown once).
#[derive(Serialize, ToSchema)]
pub struct CreatedUser {
    #[serde(flatten)]
    pub user: UserView,
    /// The one-time token for `POST /v1/auth/password-reset/complete`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_setup_token: Option<String>,
}

/// Create a person (operators with `accounts:manage`); they set their password with the
/// token returned.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, description = "Created", body = CreatedUser),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    auth: Auth,
    request: ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let r = request.value;
    let role = Role::parse(&r.role).ok_or_else(|| {
        ApiError::unprocessable("invalid_role", "unknown role").with_field("role")
    })?;
    let created = state
        .app
        .create_user(
            &auth.0,
            NewUser {
                email: r.email,
                name: r.name,
                password: None,
                role,
                account: r.account_id,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: (&created.user).into(),
            password_setup_token: created.link.map(|l| l.reveal().to_owned()),
        }),
    ))
}

/// Disable a person: their sessions and keys stop working on the next request.
#[utoipa::path(post, path = "/v1/users/{id}/disable", tag = "users",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 200, description = "Disabled", body = UserView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict)),
    security(("api_key" = [])))]
pub async fn disable_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        (&state.app.set_user_disabled(&auth.0, &id, true).await?).into(),
    ))
}

/// Enable a disabled person again.
#[utoipa::path(post, path = "/v1/users/{id}/enable", tag = "users",
    params(("id" = String, Path, description = "The user id")),
    responses((status = 200, description = "Enabled", body = UserView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound)),
    security(("api_key" = [])))]
pub async fn enable_user(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        (&state.app.set_user_disabled(&auth.0, &id, false).await?).into(),
    ))
}

/// A member of an account.
#[derive(Serialize, ToSchema)]
pub struct MemberView {
    pub user_id: String,
    pub email: String,
    pub name: String,
    #[schema(example = "developer")]
    pub role: String,
    /// Whether the person has accepted (set a password).
    pub active: bool,
    #[schema(format = DateTime)]
    pub joined_at: String,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        Self {
            user_id: m.user.id.clone(),
            email: m.user.email.clone(),
            name: m.user.name.clone(),
            role: m.membership.role.clone(),
            active: m.user.password_hash.is_some() && m.user.disabled_at.is_none(),
            joined_at: clock::rfc3339(m.membership.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub data: Vec<MemberView>,
}

/// The account's members and their roles.
#[utoipa::path(get, path = "/v1/accounts/{id}/members", tag = "members",
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "Members", body = MemberList),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound)),
    security(("api_key" = [])))]
pub async fn list_members(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
) -> Result<Json<MemberList>, ApiError> {
    let members = state.app.list_members(&auth.0, &account)?;
    Ok(Json(MemberList {
        data: members.iter().map(MemberView::from).collect(),
    }))
}

/// Whom to invite, with which role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteMember {
    #[schema(schema_with = super::openapi::email)]
    pub email: String,
    /// owner, admin, developer, billing, analyst or viewer.
    #[schema(schema_with = super::openapi::member_role_names)]
    pub role: String,
}

/// An invitation: hand the token to the person (it is shown once).
#[derive(Serialize, ToSchema)]
pub struct InvitationView {
    pub user_id: String,
    /// For `POST /v1/auth/invitations/accept`; single use.
    pub token: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// Invite a person to the account with a role, by a one-time link.
#[utoipa::path(post, path = "/v1/accounts/{id}/members", tag = "members", request_body = InviteMember,
    params(("id" = String, Path, description = "The account id")),
    responses((status = 201, description = "Invited", body = InvitationView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn invite_member(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
    request: ApiJson<InviteMember>,
) -> Result<(StatusCode, Json<InvitationView>), ApiError> {
    let r = request.value;
    let invitation = state
        .app
        .invite_member(&auth.0, &account, &r.email, &r.role)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(InvitationView {
            user_id: invitation.user_id,
            token: invitation.token.reveal().to_owned(),
            expires_at: clock::rfc3339(invitation.expires_at),
        }),
    ))
}

/// A member's new role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeRole {
    #[schema(schema_with = super::openapi::member_role_names)]
    pub role: String,
}

/// The membership after a change.
#[derive(Serialize, ToSchema)]
pub struct MembershipView {
    pub account_id: String,
    pub user_id: String,
    pub role: String,
}

/// Change a member's role.
#[utoipa::path(patch, path = "/v1/accounts/{id}/members/{user_id}", tag = "members", request_body = ChangeRole,
    params(("id" = String, Path, description = "The account id"),
        ("user_id" = String, Path, description = "The member's user id")),
    responses((status = 200, description = "Changed", body = MembershipView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, response = Conflict), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn change_role(
    State(state): State<AppState>,
    auth: Auth,
    Path((account, user)): Path<(String, String)>,
    request: ApiJson<ChangeRole>,
) -> Result<Json<MembershipView>, ApiError> {
    let m = state
        .app
        .change_member_role(&auth.0, &account, &user, &request.value.role)
        .await?;
    Ok(Json(MembershipView {
        account_id: m.account_id,
        user_id: m.user_id,
        role: m.role,
    }))
}

/// Remove a member: their sessions lose the account and their keys here are revoked.
#[utoipa::path(delete, path = "/v1/accounts/{id}/members/{user_id}", tag = "members",
    params(("id" = String, Path, description = "The account id"),
        ("user_id" = String, Path, description = "The member's user id")),
    responses((status = 204, description = "Removed"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict)),
    security(("api_key" = [])))]
pub async fn remove_member(
    State(state): State<AppState>,
    auth: Auth,
    Path((account, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.app.remove_member(&auth.0, &account, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An account's allowlists: the operator's, and the account's own within it.
#[derive(Serialize, ToSchema)]
pub struct AccountNetworksView {
    /// Set by the operator (`rampart account allow-ips`); empty: any address.
    pub operator_allowed_ips: Vec<String>,
    /// Set by the account's admins, within the operator's; empty: no further rule.
    pub allowed_ips: Vec<String>,
}

impl From<crate::network::ip::AccountNetworks> for AccountNetworksView {
    fn from(n: crate::network::ip::AccountNetworks) -> Self {
        Self {
            operator_allowed_ips: n.operator.names(),
            allowed_ips: n.account.names(),
        }
    }
}

/// The account's own allowlist.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAccountNetworks {
    /// Addresses or CIDR networks (IPv4 or IPv6) every key and person of the account must come
    /// from, within the operator's list; empty: no rule beyond the operator's. It must include
    /// the address the change is made from.
    #[schema(max_items = 64, inline)]
    pub allowed_ips: Vec<super::api_keys::NetworkEntry>,
}

/// Where the account may be used from (`account:manage`).
#[utoipa::path(get, path = "/v1/accounts/{id}/allowed-ips", tag = "members",
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "Both allowlists", body = AccountNetworksView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound)),
    security(("api_key" = [])))]
pub async fn get_allowed_ips(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
) -> Result<Json<AccountNetworksView>, ApiError> {
    Ok(Json(state.app.account_networks(&auth.0, &account)?.into()))
}

/// Set the account's own allowlist, within the operator's (`account:manage`; a session needs
/// a recent re-authentication). Keys and sessions from elsewhere get 403 `ip_not_allowed` on
/// their next request.
#[utoipa::path(put, path = "/v1/accounts/{id}/allowed-ips", tag = "members", request_body = SetAccountNetworks,
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "Both allowlists now", body = AccountNetworksView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn set_allowed_ips(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
    request: ApiJson<SetAccountNetworks>,
) -> Result<Json<AccountNetworksView>, ApiError> {
    let entries: Vec<String> = request.value.allowed_ips.into_iter().map(|e| e.0).collect();
    let set = state
        .app
        .set_account_member_allowed_ips(&auth.0, &account, &entries)
        .await?;
    Ok(Json(set.into()))
}

/// The operator's allowlist of an account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOperatorNetworks {
    /// Addresses or CIDR networks (IPv4 or IPv6) every key and person of the account must come
    /// from; empty: any address.
    #[schema(max_items = 64, inline)]
    pub operator_allowed_ips: Vec<super::api_keys::NetworkEntry>,
}

/// Set the operator's allowlist of an account (an operator's `accounts:manage`; a session needs
/// a recent re-authentication), as `rampart account allow-ips` does. The account's own list
/// counts only within it.
#[utoipa::path(put, path = "/v1/accounts/{id}/operator-allowed-ips", tag = "members",
    request_body = SetOperatorNetworks,
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "Both allowlists now", body = AccountNetworksView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn set_operator_allowed_ips(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
    request: ApiJson<SetOperatorNetworks>,
) -> Result<Json<AccountNetworksView>, ApiError> {
    let entries: Vec<String> = request
        .value
        .operator_allowed_ips
        .into_iter()
        .map(|e| e.0)
        .collect();
    let set = state
        .app
        .set_operator_allowed_ips(&auth.0, &account, &entries)
        .await?;
    Ok(Json(set.into()))
}
