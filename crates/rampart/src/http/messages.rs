//! `/v1/messages`: send, read, list and cancel outbound messages.
//!
//! A send is acknowledged (202) only once its messages are committed to disk. The handler does
//! the cheap work itself (parse, encrypt) and leaves the fsync to the store's group commit.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Auth, page_limit, split_page};
use super::openapi::{
    self, BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::clock::{self, Millis};
use crate::identity::Scope;
use crate::messaging::{Encoding, MessageBody, MessageStatus, PhoneNumber, SenderId};
use crate::store::messages::{self as stored, Insertion, ListFilter, NewMessage, StoredMessage};

const MAX_SCHEDULE_AHEAD_MS: Millis = 35 * 24 * 3600 * 1000;
const MAX_VALIDITY_SECS: u64 = 7 * 24 * 3600;

/// One recipient or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Recipients {
    One(String),
    Many(Vec<String>),
}

/// A send request.
#[derive(Debug, Deserialize, ToSchema)]
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
    #[serde(default, deserialize_with = "super::whole_number::optional_u64")]
    pub validity_period: Option<u64>,
    /// Your own reference, up to 128 characters, echoed back and filterable.
    #[schema(schema_with = openapi::client_ref)]
    pub client_ref: Option<String>,
}

/// A message as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub to: String,
    pub from: String,
    pub body: String,
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
}

/// The answer to a send: one entry per recipient.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub messages: Vec<AcceptedMessage>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedMessage {
    pub id: String,
    pub to: String,
    pub status: MessageStatus,
    pub encoding: Encoding,
    pub segments: u32,
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub data: Vec<MessageView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Filters for listing messages.
#[derive(Debug, Deserialize, IntoParams)]
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
    /// another body is a 409. 1 to 255 visible ASCII characters (inner spaces allowed).
    #[param(rename = "Idempotency-Key", value_type = String, required = false,
        min_length = 1, max_length = 255, pattern = r"^[!-~](?:[ -~]*[!-~])?$")]
    pub idempotency_key: Option<String>,
}

fn parse_recipients(to: Recipients, max: usize) -> Result<Vec<PhoneNumber>, ApiError> {
    let (list, many) = match to {
        Recipients::One(one) => (vec![one], false),
        Recipients::Many(many) => (many, true),
    };
    if list.is_empty() {
        return Err(ApiError::unprocessable(
            "no_recipients",
            "`to` must name at least one recipient",
        )
        .with_field("to"));
    }
    if list.len() > max {
        return Err(ApiError::unprocessable(
            "too_many_recipients",
            format!("at most {max} recipients per request"),
        )
        .with_field("to"));
    }
    let mut seen = HashSet::with_capacity(list.len());
    let mut numbers = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let field = if many {
            format!("to[{i}]")
        } else {
            "to".to_owned()
        };
        let number = PhoneNumber::parse(raw).map_err(|e| {
            ApiError::unprocessable("invalid_phone_number", e.to_string()).with_field(&field)
        })?;
        if !seen.insert(number.as_str().to_owned()) {
            return Err(ApiError::unprocessable(
                "duplicate_recipient",
                "a recipient appears twice in `to`",
            )
            .with_field(field));
        }
        numbers.push(number);
    }
    Ok(numbers)
}

fn parse_idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255);
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
    })
}

/// Send a message to one or more recipients.
#[utoipa::path(post, path = "/v1/messages", tag = "messages", request_body = SendMessage,
    params(SendHeaders),
    responses(
        (status = 202, description = "Accepted: the messages are stored and queued", body = Accepted,
            headers(("Idempotent-Replayed" = String, description = "`true` when this answers a retry with the same Idempotency-Key"))),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn send_message(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    request: ApiJson<SendMessage>,
) -> Result<Response, ApiError> {
    let principal = auth.require(Scope::MessagesSend)?;
    let idempotency_key = parse_idempotency_key(&headers)?;
    let ApiJson {
        value: request,
        raw,
    } = request;
    let limits = &state.config.messaging;
    let recipients = parse_recipients(request.to, limits.max_recipients)?;
    let sender = SenderId::parse(&request.from)
        .map_err(|e| ApiError::unprocessable("invalid_sender", e.to_string()).with_field("from"))?;
    let body = MessageBody::parse(request.body, limits.max_segments)
        .map_err(|e| ApiError::unprocessable("invalid_body", e.to_string()).with_field("body"))?;
    let now = state.clock.now_ms();
    let send_at = match request.send_at.as_deref() {
        None => None,
        Some(text) => {
            let at = clock::parse_rfc3339(text).ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_send_at",
                    "`send_at` must be an RFC 3339 timestamp",
                )
                .with_field("send_at")
            })?;
            if at > now + MAX_SCHEDULE_AHEAD_MS {
                return Err(ApiError::unprocessable(
                    "invalid_send_at",
                    "`send_at` may be at most 35 days ahead",
                )
                .with_field("send_at"));
            }
            (at > now).then_some(at)
        }
    };
    let valid_until = match request.validity_period {
        None => None,
        Some(secs) if (60..=MAX_VALIDITY_SECS).contains(&secs) => {
            Some(send_at.unwrap_or(now) + (secs as Millis) * 1000)
        }
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_validity_period",
                "`validity_period` must be 60 to 604800 seconds",
            )
            .with_field("validity_period"));
        }
    };
    if let Some(r) = &request.client_ref
        && (r.chars().count() > 128 || r.chars().any(char::is_control))
    {
        return Err(ApiError::unprocessable(
            "invalid_client_ref",
            "`client_ref` must be at most 128 printable characters",
        )
        .with_field("client_ref"));
    }
    let info = body.info();
    let mut rows = Vec::with_capacity(recipients.len());
    for to in &recipients {
        let id = crate::store::new_id("msg");
        rows.push(NewMessage {
            to_index: state.keyring.blind_index(b"phone", to.as_str().as_bytes()),
            to_sealed: state
                .keyring
                .encrypt(to.as_str().as_bytes(), format!("to:{id}").as_bytes())?,
            body_sealed: state
                .keyring
                .encrypt(body.as_str().as_bytes(), format!("body:{id}").as_bytes())?,
            id,
            account_id: principal.account_id.clone(),
            sender: sender.as_str().to_owned(),
            encoding: info.encoding,
            segments: info.segments as u32,
            client_ref: request.client_ref.clone(),
            send_at,
            valid_until,
            created_at: now,
        });
    }
    let fingerprint: Option<(String, Vec<u8>)> =
        idempotency_key.map(|key| (key, Sha256::digest(&raw).to_vec()));
    let accepted: Vec<AcceptedMessage> = rows
        .iter()
        .zip(&recipients)
        .map(|(row, to)| AcceptedMessage {
            id: row.id.clone(),
            to: to.as_str().to_owned(),
            status: MessageStatus::Queued,
            encoding: info.encoding,
            segments: row.segments,
        })
        .collect();
    let insertion = state
        .store
        .write(move |c| {
            stored::insert(
                c,
                &rows,
                fingerprint
                    .as_ref()
                    .map(|(k, h)| (k.as_str(), h.as_slice())),
            )
        })
        .await?;
    match insertion {
        Insertion::Created => {
            metrics::counter!("rampart_messages_accepted_total").increment(accepted.len() as u64);
            if send_at.is_none() {
                state.delivery.wake();
            }
            Ok((StatusCode::ACCEPTED, Json(Accepted { messages: accepted })).into_response())
        }
        Insertion::Replayed(ids) => replay(&state, &principal.account_id, ids),
        Insertion::KeyReused => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request",
        )),
    }
}

fn replay(state: &AppState, account_id: &str, ids: Vec<String>) -> Result<Response, ApiError> {
    let mut messages = Vec::with_capacity(ids.len());
    for id in ids {
        let m = state
            .store
            .read(|c| stored::get(c, account_id, &id))?
            .ok_or_else(ApiError::internal)?;
        let view = state.view(m)?;
        messages.push(AcceptedMessage {
            id: view.id,
            to: view.to,
            status: view.status,
            encoding: view.encoding,
            segments: view.segments,
        });
    }
    let mut response = (StatusCode::ACCEPTED, Json(Accepted { messages })).into_response();
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

impl AppState {
    pub fn view(&self, m: StoredMessage) -> Result<MessageView, ApiError> {
        let to = self
            .keyring
            .decrypt_string(&m.to_sealed, format!("to:{}", m.id).as_bytes())?;
        let body = self
            .keyring
            .decrypt_string(&m.body_sealed, format!("body:{}", m.id).as_bytes())?;
        Ok(MessageView {
            to,
            body,
            from: m.sender,
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
            id: m.id,
        })
    }
}

/// Read one message.
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
    let principal = auth.require(Scope::MessagesRead)?;
    let message = state
        .store
        .read(|c| stored::get(c, &principal.account_id, &id))?
        .ok_or_else(|| ApiError::not_found("message"))?;
    Ok(Json(state.view(message)?))
}

/// List messages, newest first, with filters and cursor pagination.
#[utoipa::path(get, path = "/v1/messages", tag = "messages", params(ListParams),
    responses((status = 200, description = "A page of messages", body = MessagePage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn list_messages(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<MessagePage>, ApiError> {
    let principal = auth.require(Scope::MessagesRead)?;
    let limit = page_limit(params.limit)?;
    let time = |field: &str, value: Option<String>| -> Result<Option<Millis>, ApiError> {
        value
            .map(|v| {
                clock::parse_rfc3339(&v).ok_or_else(|| {
                    ApiError::bad_request("invalid_query", format!("`{field}` must be RFC 3339"))
                        .with_field(field)
                })
            })
            .transpose()
    };
    let status = params
        .status
        .map(|s| {
            MessageStatus::parse(&s).ok_or_else(|| {
                ApiError::bad_request("invalid_query", format!("unknown status `{s}`"))
                    .with_field("status")
            })
        })
        .transpose()?;
    let to_index = params
        .to
        .map(|to| {
            PhoneNumber::parse(&to)
                .map(|n| state.keyring.blind_index(b"phone", n.as_str().as_bytes()))
                .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()).with_field("to"))
        })
        .transpose()?;
    let filter = ListFilter {
        status,
        to_index,
        client_ref: params.client_ref,
        created_after: time("created_after", params.created_after)?,
        created_before: time("created_before", params.created_before)?,
        before_id: params.cursor,
        limit: limit + 1,
    };
    let account = principal.account_id.clone();
    let rows = state
        .store
        .read_blocking(move |c| stored::list(c, &account, &filter))
        .await?;
    let (rows, next_cursor) = split_page(rows, limit, |m| &m.id);
    let data = rows
        .into_iter()
        .map(|m| state.view(m))
        .collect::<Result<_, _>>()?;
    Ok(Json(MessagePage { data, next_cursor }))
}

/// Cancel a message that has not been sent yet (scheduled, or waiting to retry).
#[utoipa::path(post, path = "/v1/messages/{id}/cancel", tag = "messages",
    params(("id" = String, Path, description = "The message id (`msg_...`)")),
    responses((status = 200, description = "Canceled; the message as it is now", body = MessageView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 409, response = Conflict)),
    security(("api_key" = [])))]
pub async fn cancel_message(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, ApiError> {
    let principal = auth.require(Scope::MessagesSend)?;
    let (account, now, msg_id) = (
        principal.account_id.clone(),
        state.clock.now_ms(),
        id.clone(),
    );
    let canceled = state
        .store
        .write(move |c| stored::cancel(c, &account, &msg_id, now))
        .await?;
    let message = state
        .store
        .read(|c| stored::get(c, &principal.account_id, &id))?
        .ok_or_else(|| ApiError::not_found("message"))?;
    if !canceled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_cancelable",
            format!(
                "the message is {} and can no longer be canceled",
                message.status.as_str()
            ),
        ));
    }
    Ok(Json(state.view(message)?))
}
