//! `/v1/opt-outs`: numbers that get no more messages from the account (or from one of its
//! senders), whether they sent STOP or were listed through the API, the CLI or an import; and
//! the account's opt-out settings. Read with `messages:read`, change with `account:manage`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Auth, payload_too_large};
use super::openapi;
use super::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::app::opt_out_settings::{OptOutSettings, OptOutSettingsChange};
use crate::app::opt_outs::{OptOut, csv_numbers, export_csv};
use crate::clock;

/// An opted-out number.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptOutView {
    pub id: String,
    /// The number, in E.164.
    pub number: String,
    /// `account` (no message of the account reaches it) or `sender` (none from `sender`).
    pub scope: String,
    /// The sender it is limited to; absent for the whole account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// `keyword` (the handset sent STOP), `api` or `import`.
    pub source: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<OptOut> for OptOutView {
    fn from(o: OptOut) -> Self {
        Self {
            id: o.id,
            number: o.number,
            scope: if o.sender.is_some() {
                "sender"
            } else {
                "account"
            }
            .to_owned(),
            sender: o.sender,
            source: o.source,
            created_at: clock::rfc3339(o.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OptOutPage {
    pub data: Vec<OptOutView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OptOutParams {
    /// Page size: 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A number to opt out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"number": "+447700900123"}))]
pub struct NewOptOut {
    #[schema(schema_with = openapi::phone_number)]
    pub number: String,
    /// Limit the opt-out to this sender; absent for every message of the account.
    #[serde(default, deserialize_with = "string_if_present")]
    #[schema(schema_with = openapi::sender_id)]
    pub sender: Option<String>,
}

/// Numbers to opt out, as JSON (`text/csv` is taken too: one number per line, in the first
/// column, an optional `number` header line).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"numbers": ["+447700900123", "+447700900124"]}))]
pub struct OptOutImport {
    /// In E.164; at most 10,000.
    #[schema(schema_with = openapi::phone_numbers)]
    pub numbers: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    /// Numbers newly opted out.
    pub added: usize,
    /// Numbers that were already.
    pub unchanged: usize,
}

/// The account's opt-out settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct OptOutSettingsView {
    /// Whether STOP, START and HELP are acted on; listed opt-outs refuse sends either way.
    pub enabled: bool,
    /// `account`: STOP opts out of every message of the account; `per_sender`: of messages
    /// from the number it was sent to.
    pub scope: String,
    pub help_text: String,
    pub stop_text: String,
    pub start_text: String,
}

impl From<OptOutSettings> for OptOutSettingsView {
    fn from(s: OptOutSettings) -> Self {
        Self {
            enabled: s.enabled,
            scope: s.scope.as_str().to_owned(),
            help_text: s.help_text,
            stop_text: s.stop_text,
            start_text: s.start_text,
        }
    }
}

/// A change of the settings; what is absent stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"scope": "per_sender", "help_text": "Acme alerts. Reply STOP to end."}))]
pub struct OptOutSettingsUpdate {
    pub enabled: Option<bool>,
    /// `account` or `per_sender`.
    #[schema(pattern = "^(account|per_sender)$")]
    pub scope: Option<String>,
    #[serde(default, deserialize_with = "string_if_present")]
    #[schema(schema_with = openapi::reply_text)]
    pub help_text: Option<String>,
    #[serde(default, deserialize_with = "string_if_present")]
    #[schema(schema_with = openapi::reply_text)]
    pub stop_text: Option<String>,
    #[serde(default, deserialize_with = "string_if_present")]
    #[schema(schema_with = openapi::reply_text)]
    pub start_text: Option<String>,
}

/// A field that may be absent but, when present, is a string (null is refused, as the schema
/// says).
fn string_if_present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// List the account's opt-outs, newest first (`messages:read`).
#[utoipa::path(get, path = "/v1/opt-outs", tag = "opt-outs", params(OptOutParams),
    responses((status = 200, description = "A page of opt-outs", body = OptOutPage),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn list_opt_outs(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(params): ApiQuery<OptOutParams>,
) -> Result<Json<OptOutPage>, ApiError> {
    let page = state
        .app
        .list_opt_outs(&auth.0, params.limit, params.cursor.as_deref())?;
    Ok(Json(OptOutPage {
        data: page.data.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Opt a number out (`account:manage`); later sends to it are refused with
/// `recipient_opted_out`. 201 when new, 200 when it already was.
#[utoipa::path(post, path = "/v1/opt-outs", tag = "opt-outs", request_body = NewOptOut,
    responses((status = 201, description = "Opted out", body = OptOutView),
        (status = 200, description = "It already was", body = OptOutView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn add_opt_out(
    State(state): State<AppState>,
    auth: Auth,
    request: ApiJson<NewOptOut>,
) -> Result<(StatusCode, Json<OptOutView>), ApiError> {
    let new = request.value;
    let (opt_out, added) = state
        .app
        .add_opt_out(&auth.0, &new.number, new.sender.as_deref())
        .await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(opt_out.into())))
}

/// Opt a number back in (`account:manage`): every opt-out of it in the account goes.
#[utoipa::path(delete, path = "/v1/opt-outs/{number}", tag = "opt-outs",
    params(("number" = String, Path, pattern = r"^\+[1-9][0-9]{6,14}$",
        description = "The number, in E.164 (`+` as `%2B`)")),
    responses((status = 204, description = "Opted back in"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound), (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn remove_opt_out(
    State(state): State<AppState>,
    auth: Auth,
    Path(number): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.app.remove_opt_out(&auth.0, &number).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Opt a list of numbers out in one go (`account:manage`), as JSON or CSV; a number that does
/// not parse refuses the whole list (422, naming `numbers[i]`).
#[utoipa::path(post, path = "/v1/opt-outs/import", tag = "opt-outs",
    request_body(content((OptOutImport = "application/json"), (String = "text/csv"))),
    responses((status = 200, description = "Imported", body = ImportResult),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn import_opt_outs(
    State(state): State<AppState>,
    auth: Auth,
    request: Request,
) -> Result<Json<ImportResult>, ApiError> {
    let is_csv = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("text/csv"));
    let numbers = if is_csv {
        let raw = Bytes::from_request(request, &state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                payload_too_large()
            } else {
                ApiError::bad_request("unreadable_body", "the request body could not be read")
            }
        })?;
        let text = std::str::from_utf8(&raw)
            .map_err(|_| ApiError::bad_request("malformed_csv", "the CSV is not UTF-8"))?;
        csv_numbers(text)
    } else {
        ApiJson::<OptOutImport>::from_request(request, &state)
            .await?
            .value
            .numbers
    };
    let summary = state.app.import_opt_outs(&auth.0, &numbers).await?;
    Ok(Json(ImportResult {
        added: summary.added,
        unchanged: summary.unchanged,
    }))
}

/// Every opt-out of the account as CSV (`messages:read`):
/// `number,scope,sender,source,created_at`.
#[utoipa::path(get, path = "/v1/opt-outs/export", tag = "opt-outs",
    responses((status = 200, description = "The opt-outs", body = String, content_type = "text/csv"),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn export_opt_outs(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Response, ApiError> {
    let csv = export_csv(&state.app.export_opt_outs(&auth.0)?);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}

/// The account's opt-out settings (`messages:read`).
#[utoipa::path(get, path = "/v1/opt-outs/settings", tag = "opt-outs",
    responses((status = 200, description = "The settings", body = OptOutSettingsView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden)),
    security(("api_key" = [])))]
pub async fn get_opt_out_settings(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<OptOutSettingsView>, ApiError> {
    Ok(Json(state.app.opt_out_settings_for(&auth.0)?.into()))
}

/// Change the account's opt-out settings (`account:manage`).
#[utoipa::path(put, path = "/v1/opt-outs/settings", tag = "opt-outs",
    request_body = OptOutSettingsUpdate,
    responses((status = 200, description = "The settings now", body = OptOutSettingsView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType), (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn set_opt_out_settings(
    State(state): State<AppState>,
    auth: Auth,
    request: ApiJson<OptOutSettingsUpdate>,
) -> Result<Json<OptOutSettingsView>, ApiError> {
    // Serde reads a struct from a JSON array too; with every field optional, `[null]` would
    // pass for an empty change. The schema says object.
    if request.raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::unprocessable(
            "invalid_field",
            "the body must be a JSON object",
        ));
    }
    let u = request.value;
    let change = OptOutSettingsChange {
        enabled: u.enabled,
        scope: u.scope,
        help_text: u.help_text,
        stop_text: u.stop_text,
        start_text: u.start_text,
    };
    Ok(Json(
        state
            .app
            .set_opt_out_settings(&auth.0, change)
            .await?
            .into(),
    ))
}
