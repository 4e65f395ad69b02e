//! `/v1/messages`: send, read, list and cancel outbound messages.
//!
//! A send is acknowledged (202) only once its messages are committed to disk; the use cases
//! live in `app::messages`, these handlers only translate HTTP to them and back.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::deadline::Committing;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Auth};
use super::openapi::{
    self, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, PaymentRequired,
    Unauthorized, Unprocessable, UnsupportedMediaType,
};
use crate::app::messages::{
    self as use_case, Idempotency, Message, MessageQuery, SendOutcome, SendRequest,
};
use crate::clock;
use crate::messaging::{Encoding, MessageStatus};
use crate::policy::Category;

/// One recipient or several.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Recipients {
    One(String),
    Many(Vec<String>),
}

/// A send request. (No `Debug`: it holds numbers and text, which must not reach logs.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"to": "+447911123456", "from": "Rampart", "body": "Your code is 123456"}))]
pub struct SendMessage {
    /// One E.164 number, or a list of them (one message each).
    #[schema(schema_with = openapi::recipients)]
    pub to: Recipients,
    /// Sender ID: a name of up to 11 characters, a short code, or an E.164 number.
    #[schema(schema_with = openapi::sender_id)]
    pub from: String,
    /// The text; GSM-7 when every character allows, else UCS-2.
    #[schema(schema_with = openapi::message_body)]
    pub body: String,
    /// Send later (RFC 3339), up to 35 days ahead; a time in the past sends now.
    #[schema(format = DateTime)]
    pub send_at: Option<String>,
    /// Seconds after which an unsent or undelivered message expires (60 to 604800).
    #[schema(minimum = 60, maximum = 604800)]
    #[serde(default, deserialize_with = "crate::whole_number::optional_u64")]
    pub validity_period: Option<u64>,
    /// Your own reference, up to 128 characters, echoed back and filterable.
    #[schema(schema_with = openapi::client_ref)]
    pub client_ref: Option<String>,
    /// Why the message is sent: `transactional` by default. `marketing` meets the account's
    /// opt-out footer and quiet hours (docs/policy.md).
    pub category: Option<MessageCategory>,
}

/// Why a message is sent.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageCategory {
    Transactional,
    Marketing,
    Otp,
}

impl From<Category> for MessageCategory {
    fn from(c: Category) -> Self {
        match c {
            Category::Transactional => Self::Transactional,
            Category::Marketing => Self::Marketing,
            Category::Otp => Self::Otp,
        }
    }
}

impl MessageCategory {
    fn as_str(self) -> &'static str {
        match self {
            Self::Transactional => Category::Transactional.as_str(),
            Self::Marketing => Category::Marketing.as_str(),
            Self::Otp => Category::Otp.as_str(),
        }
    }
}

/// A message as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub to: String,
    pub from: String,
    /// The text; absent for a key that holds `messages:status` but not `messages:read`, and
    /// null once the account's retention erased it (`body_erased_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub body: Option<Option<String>>,
    /// When the account's retention erased the body; absent while it is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub body_erased_at: Option<String>,
    pub status: MessageStatus,
    pub encoding: Encoding,
    pub segments: u32,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub send_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub valid_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
    /// Absent for messages sent before categories existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<MessageCategory>,
}

/// A canceled message's id and status: what a cancel shows a key that may send but not read
/// messages (`messages:read`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageStatusView {
    pub id: String,
    pub status: MessageStatus,
}

/// The answer to a cancel: the whole message for a key holding `messages:read`, else its id
/// and status only.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum CanceledView {
    Message(Box<MessageView>),
    Status(MessageStatusView),
}

impl From<use_case::Canceled> for CanceledView {
    fn from(c: use_case::Canceled) -> Self {
        match c {
            use_case::Canceled::Message(m) => Self::Message(Box::new((*m).into())),
            use_case::Canceled::Status { id, status } => {
                Self::Status(MessageStatusView { id, status })
            }
        }
    }
}

/// The answer to a send: one entry per recipient.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    pub messages: Vec<AcceptedMessage>,
}

#[derive(Serialize, ToSchema)]
pub struct AcceptedMessage {
    pub id: String,
    pub to: String,
    pub status: MessageStatus,
    pub encoding: Encoding,
    pub segments: u32,
}

/// A page of messages, newest first.
#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    pub data: Vec<MessageView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters for listing messages.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only messages with this status.
    #[param(value_type = Option<MessageStatus>)]
    pub status: Option<String>,
    /// Recipient in E.164.
    #[param(pattern = r"^\+[1-9][0-9]{6,14}$")]
    pub to: Option<String>,
    /// Only messages sent with this `client_ref`.
    pub client_ref: Option<String>,
    /// RFC 3339; messages created at or after.
    #[param(format = DateTime)]
    pub created_after: Option<String>,
    /// RFC 3339; messages created before.
    #[param(format = DateTime)]
    pub created_before: Option<String>,
    /// Page size: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Headers of a send request.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct SendHeaders {
    /// Makes retries safe: the same key and body return the same messages; the same key with
    /// another body is a 409, for `messaging.idempotency_hours` (24 by default); after that the
    /// key is new again. 1 to 255 visible ASCII characters (inner spaces allowed).
    #[param(rename = "Idempotency-Key", value_type = String, required = false,
        min_length = 1, max_length = 255, pattern = r"^[!-~](?:[ -~]*[!-~])?$")]
    pub idempotency_key: Option<String>,
}

/// Send a message to one or more recipients.
#[utoipa::path(post, path = "/v1/messages", tag = "messages", request_body = SendMessage,
    params(SendHeaders),
    responses(
        (status = 202, description = "Accepted: the messages are stored and queued", body = Accepted,
            headers(("Idempotent-Replayed" = String, description = "`true` when this answers a retry with the same Idempotency-Key"))),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 402, response = PaymentRequired),
        (status = 403, response = Forbidden), (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn send_message(
    State(state): State<AppState>,
    auth: Auth,
    Extension(committing): Extension<Committing>,
    headers: HeaderMap,
    request: ApiJson<SendMessage>,
) -> Result<Response, ApiError> {
    let ApiJson { value, raw } = request;
    let idempotency = match headers.get("idempotency-key") {
        None => None,
        Some(key) => Some(Idempotency::new(key.to_str().unwrap_or(""), &raw)?),
    };
    let request = value.into_request(idempotency);
    // From here on the outcome is decided by the store, not by how long the client waits.
    committing.begin();
    let (messages, replayed) = match state.app.send_messages(&auth.0, request).await? {
        SendOutcome::Accepted(messages) => (messages, false),
        SendOutcome::Replayed(messages) => (messages, true),
    };
    let messages = messages.into_iter().map(AcceptedMessage::from).collect();
    let mut response = (StatusCode::ACCEPTED, Json(Accepted { messages })).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

impl SendMessage {
    pub(super) fn into_request(self, idempotency: Option<Idempotency>) -> SendRequest {
        let (to, to_is_list) = match self.to {
            Recipients::One(one) => (vec![one], false),
            Recipients::Many(many) => (many, true),
        };
        SendRequest {
            to,
            to_is_list,
            from: self.from,
            body: self.body,
            send_at: self.send_at,
            validity_period: self.validity_period,
            client_ref: self.client_ref,
            category: self.category.map(|c| c.as_str().to_owned()),
            idempotency,
        }
    }
}

impl From<use_case::AcceptedMessage> for AcceptedMessage {
    fn from(m: use_case::AcceptedMessage) -> Self {
        Self {
            id: m.id,
            to: m.to,
            status: m.status,
            encoding: m.encoding,
            segments: m.segments,
        }
    }
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            to: m.to,
            from: m.from,
            body: match (m.body, m.body_erased_at) {
                (Some(body), _) => Some(Some(body)),
                (None, Some(_)) => Some(None),
                (None, None) => None,
            },
            body_erased_at: m.body_erased_at.map(clock::rfc3339),
            status: m.status,
            encoding: m.encoding,
            segments: m.segments,
            attempts: m.attempts,
            client_ref: m.client_ref,
            error_code: m.error_code,
            error_detail: m.error_detail,
            created_at: clock::rfc3339(m.created_at),
            updated_at: clock::rfc3339(m.updated_at),
            send_at: m.send_at.map(clock::rfc3339),
            valid_until: m.valid_until.map(clock::rfc3339),
            sent_at: m.sent_at.map(clock::rfc3339),
            completed_at: m.completed_at.map(clock::rfc3339),
            category: m.category.map(MessageCategory::from),
        }
    }
}

/// Read one message (`messages:read`; with `messages:status` alone, without its body).
#[utoipa::path(get, path = "/v1/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "The message id (`msg_...`)")),
    responses((status = 200, description = "The message", body = MessageView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 404, response = NotFound)),
    security(("api_key" = [])))]
pub async fn get_message(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, ApiError> {
    Ok(Json(state.app.get_message(&auth.0, &id)?.into()))
}

/// List messages, newest first, with filters and cursor pagination (`messages:read`; with
/// `messages:status` alone, without their bodies). A cursor is valid only in the account that
/// was given it; any other gives an empty page.
#[utoipa::path(get, path = "/v1/messages", tag = "messages", params(ListParams),
    responses((status = 200, description = "A page of messages", body = MessagePage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn list_messages(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<MessagePage>, ApiError> {
    let query = MessageQuery {
        status: params.status,
        to: params.to,
        client_ref: params.client_ref,
        created_after: params.created_after,
        created_before: params.created_before,
        limit: params.limit,
        cursor: params.cursor,
    };
    let page = state.app.list_messages(&auth.0, query).await?;
    Ok(Json(MessagePage {
        data: page.data.into_iter().map(MessageView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Cancel a message that has not been sent yet (scheduled, or waiting to retry).
///
/// Needs `messages:send`. The answer shows the whole message to a key that also holds
/// `messages:read`, and only its id and status to any other.
#[utoipa::path(post, path = "/v1/messages/{id}/cancel", tag = "messages",
    params(("id" = String, Path, description = "The message id (`msg_...`)")),
    responses((status = 200, description = "Canceled; the message as it is now (id and status only without `messages:read`)", body = CanceledView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict)),
    security(("api_key" = [])))]
pub async fn cancel_message(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<CanceledView>, ApiError> {
    Ok(Json(state.app.cancel_message(&auth.0, &id).await?.into()))
}
