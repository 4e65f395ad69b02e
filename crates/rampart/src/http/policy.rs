//! `/v1/accounts/{id}/policy`: the account's business rules (docs/policy.md), and
//! `POST /v1/messages/dry-run`: what a send would meet, with nothing stored or sent.

use std::borrow::Cow;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ViolationView};
use super::extract::{ApiJson, Auth};
use super::messages::SendMessage;
use super::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, SENDER_NAME_PATTERN, Unauthorized,
    Unprocessable, UnsupportedMediaType, string,
};
use crate::app::policies::StoredPolicy;
use crate::clock;
use crate::config::Messaging;
use crate::messaging::Encoding;
use crate::policy::PolicyDocument;
use crate::policy::document::MAX_LIST;

/// The account's policy document (docs/policy.md). Every section is optional: a missing one
/// takes its defaults, and unknown fields are refused.
pub struct PolicyDocumentView;

impl utoipa::PartialSchema for PolicyDocumentView {
    fn schema() -> RefOr<Schema> {
        document_schema().into()
    }
}

impl ToSchema for PolicyDocumentView {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("PolicyDocument")
    }
}

fn closed(object: ObjectBuilder) -> ObjectBuilder {
    object
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

fn list(items: ObjectBuilder, description: &str) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(items)
        .max_items(Some(MAX_LIST))
        .description(Some(description))
}

/// The field may be null, as absent (serde reads both as `None`).
fn nullable(of: Type) -> SchemaType {
    SchemaType::from_iter([of, Type::Null])
}

fn integer(min: u64, max: u64, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min as f64))
        .maximum(Some(max as f64))
        .description(Some(description))
}

fn hh_mm(description: &str) -> ObjectBuilder {
    string()
        .pattern(Some(r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$"))
        .description(Some(description))
}

fn document_schema() -> ObjectBuilder {
    let destinations = closed(ObjectBuilder::new())
        .property(
            "allowed_countries",
            list(
                string().pattern(Some("^[A-Z]{2}$")),
                "ISO 3166 alpha-2 codes: only these countries. Absent or null: every country \
                 but the built-in high-risk set.",
            )
            .schema_type(nullable(Type::Array)),
        )
        .property(
            "allow_high_risk",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .description(Some(
                    "Allows the built-in high-risk set too (default false).",
                )),
        )
        .property(
            "blocked_prefixes",
            list(
                string().pattern(Some(r"^\+[1-9][0-9]{0,14}$")),
                "E.164 prefixes never sent to (`+4470`).",
            ),
        );
    let senders = closed(ObjectBuilder::new()).property(
        "sender_ids",
        list(
            string()
                .max_length(Some(11))
                .pattern(Some(SENDER_NAME_PATTERN)),
            "Alphanumeric sender IDs of the account. Empty (the default): any sender; one \
             entry turns the rule on, and numbers must then be assigned to the account.",
        ),
    );
    let text = |description: &str| {
        string()
            .min_length(Some(1))
            .max_length(Some(64))
            .pattern(Some(r"\S"))
            .description(Some(description))
    };
    let max_segments = Messaging::default().max_segments as u64;
    let content = closed(ObjectBuilder::new())
        .property(
            "max_segments",
            integer(
                1,
                max_segments,
                "Most segments per message, up to the server's limit; null: that limit.",
            )
            .schema_type(nullable(Type::Integer)),
        )
        .property(
            "blocked_words",
            list(
                text("A word or phrase"),
                "Refused anywhere in a body: whole words, any case.",
            ),
        )
        .property(
            "block_url_shorteners",
            ObjectBuilder::new()
                .schema_type(Type::Boolean)
                .description(Some("Refuses bit.ly, tinyurl.com, t.co and the like.")),
        )
        .property(
            "marketing_opt_out_footer",
            text("Text every marketing message must contain; `STOP` by default."),
        );
    let quiet = closed(ObjectBuilder::new())
        .property("start", hh_mm("Start, recipient's local time"))
        .property(
            "end",
            hh_mm("End (different from start; may pass midnight)"),
        )
        .property(
            "action",
            string()
                .enum_values(Some(["defer", "refuse"]))
                .description(Some("`defer` (default): schedule for the end; `refuse`.")),
        )
        .required("start")
        .required("end");
    let cap = closed(ObjectBuilder::new())
        .property("max_messages", integer(1, 10_000, "Messages per recipient"))
        .property(
            "window_seconds",
            integer(60, 31 * 24 * 3600, "Per this many seconds"),
        )
        .required("max_messages")
        .required("window_seconds");
    closed(ObjectBuilder::new())
        .property("destinations", destinations)
        .property("senders", senders)
        .property("content", content)
        .property(
            "quiet_hours",
            quiet
                .schema_type(nullable(Type::Object))
                .description(Some("Marketing is held in this window; none by default.")),
        )
        .property(
            "frequency_cap",
            cap.schema_type(nullable(Type::Object))
                .description(Some("Per recipient and account; none by default.")),
        )
        .description(Some(
            "The account's business rules; every section optional (docs/policy.md).",
        ))
}

/// The account's policy and its version (0: never set, the defaults).
#[derive(Serialize, ToSchema)]
pub struct PolicyView {
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    #[schema(value_type = PolicyDocumentView)]
    pub document: PolicyDocument,
}

impl PolicyView {
    fn answer(stored: StoredPolicy) -> Response {
        let etag = HeaderValue::from_str(&format!("\"{}\"", stored.version)).ok();
        let mut response = Json(Self {
            version: stored.version,
            updated_at: stored.updated_at.map(clock::rfc3339),
            document: (*stored.document).clone(),
        })
        .into_response();
        if let Some(etag) = etag {
            response.headers_mut().insert(header::ETAG, etag);
        }
        response
    }
}

/// Headers of a policy change.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct PolicyHeaders {
    /// The version the change is made over, as the `ETag` of a read gave it (`"3"`; `"0"`
    /// while the account has none). Another version in force: 409 `policy_version_conflict`.
    #[param(rename = "If-Match", value_type = String, required = false,
        pattern = r#"^"[0-9]{1,15}"$"#)]
    pub if_match: Option<String>,
}

fn expected_version(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_matches('"'))
        .filter(|v| (1..=15).contains(&v.len()))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_if_match",
                "If-Match must be the policy's version in quotes, like \"3\"",
            )
            .with_field("If-Match")
        })
}

/// The account's policy (`members:read`, or an operator's `accounts:manage`), with its
/// version as the `ETag`.
#[utoipa::path(get, path = "/v1/accounts/{id}/policy", tag = "members",
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "The policy in force", body = PolicyView,
            headers(("ETag" = String, description = "The version, in quotes"))),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound)),
    security(("api_key" = [])))]
pub async fn get_policy(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
) -> Result<Response, ApiError> {
    Ok(PolicyView::answer(
        state.app.account_policy(&auth.0, &account)?,
    ))
}

/// Replace the account's policy (`account:manage`, or an operator's `accounts:manage`; a
/// session needs a recent re-authentication), as `rampart policy set` does. Applies from the
/// next send. A document that breaks a rule: 422 `invalid_policy` naming the field.
#[utoipa::path(put, path = "/v1/accounts/{id}/policy", tag = "members",
    request_body = PolicyDocumentView,
    params(("id" = String, Path, description = "The account id"), PolicyHeaders),
    responses((status = 200, description = "The policy now, with its new version", body = PolicyView,
            headers(("ETag" = String, description = "The new version, in quotes"))),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn set_policy(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
    headers: HeaderMap,
    request: ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let expected = expected_version(&headers)?;
    let stored = state
        .app
        .set_account_policy(&auth.0, &account, request.value, expected)
        .await?;
    Ok(PolicyView::answer(stored))
}

/// What a send would meet.
#[derive(Serialize, ToSchema)]
pub struct DryRunView {
    /// Whether the send would be accepted.
    pub allowed: bool,
    /// Every rule it would break (empty when allowed).
    pub violations: Vec<ViolationView>,
    pub segments: u32,
    pub encoding: Encoding,
    /// When quiet hours would hold the messages until; absent when they would leave as asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub deferred_until: Option<String>,
}

/// Check a send against the account's policy without sending it (`messages:send`): the same
/// body as `POST /v1/messages`; nothing is stored, sent or counted. A body that is not a
/// valid send answers as the send would (422 with the field).
#[utoipa::path(post, path = "/v1/messages/dry-run", tag = "messages", request_body = SendMessage,
    responses((status = 200, description = "What the send would meet", body = DryRunView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn dry_run(
    State(state): State<AppState>,
    auth: Auth,
    request: ApiJson<SendMessage>,
) -> Result<Json<DryRunView>, ApiError> {
    let found = state
        .app
        .dry_run(&auth.0, request.value.into_request(None))?;
    Ok(Json(DryRunView {
        allowed: found.violations.is_empty(),
        violations: found
            .violations
            .into_iter()
            .map(ViolationView::from)
            .collect(),
        segments: found.segments,
        encoding: found.encoding,
        deferred_until: found.deferred_until.map(clock::rfc3339),
    }))
}
