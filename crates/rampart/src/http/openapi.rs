//! What the OpenAPI document says beyond each handler's own attribute: the security scheme, the
//! reusable problem responses, the answers the protective layers can give on every route, and
//! the schemas of inputs whose rules are richer than their Rust types. Every rule stated here is
//! one the server enforces, so a client generated from the document refuses what the server
//! would refuse.

use utoipa::ToResponse;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{
    ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{OpenApi, Ref, RefOr};

use super::error::Problem;
use crate::config::Messaging;
use crate::identity::Scope;
use crate::messaging::encoding::{MULTIPART_SEPTETS, SINGLE_PART_SEPTETS};

/// The schemes authenticated operations name: `api_key` (a bearer key) and `session` (a
/// signed-in person's cookie, with `X-CSRF-Token` on state-changing requests).
pub struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rk_...")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-rampart_session",
                "A signed-in person's session (POST /v1/auth/login). Requests that change \
                 something also send the session's CSRF token as `X-CSRF-Token`.",
            ))),
        );
    }
}

// The problem responses: each is an RFC 9457 problem document whose `code` says which of the
// listed cases it is. (`ApiError` renders them; these types only document them.)

/// The request is malformed: a query parameter or header is invalid (`invalid_query`,
/// `invalid_idempotency_key`) or the body is not JSON (`malformed_json`, `unreadable_body`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct BadRequest(pub Problem);

/// The API key is missing, malformed, unknown, expired or revoked (`unauthorized`).
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"rampart\"`"))
)]
pub struct Unauthorized(pub Problem);

/// The API key lacks the scope this operation needs (`insufficient_scope`), asks to grant or
/// revoke a scope it does not hold itself (`scope_escalation`), or asks for a key that would
/// outlive it (`expiry_escalation`) or drop its client certificate binding
/// (`client_certificate_escalation`). A key bound to a client certificate used without it
/// (`client_certificate_required`) or with another one (`client_certificate_mismatch`); a key
/// used from an address it may not use (`ip_not_allowed`). For a session: the CSRF token is missing
/// (`csrf_token_invalid`), a sensitive change needs a fresh re-authentication
/// (`reauthentication_required`), or an account forbids the factor chosen
/// (`factor_not_allowed`: codes by SMS).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Forbidden(pub Problem);

/// No such resource in the caller's account (`not_found`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct NotFound(pub Problem);

/// The request conflicts with the resource's state: an `Idempotency-Key` reused with a
/// different body (`idempotency_key_reused`), a message past the point of cancelling
/// (`not_cancelable`), the last second factor of a person whose account requires one
/// (`factor_required`), a factor confirmed already (`already_confirmed`), a code by SMS
/// with no verified phone (`phone_not_verified`); billing: an account that is not prepaid
/// (`billing_not_enabled`), a refund of a message never charged (`not_refundable`), refunded
/// already (`already_refunded`) or charged longer ago than the refund window
/// (`refund_window_closed`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Conflict(pub Problem);

/// A prepaid account cannot pay for the send: its balance does not cover it
/// (`insufficient_balance`) or it would pass its daily or monthly spend cap
/// (`spend_cap_exceeded`). Nothing was stored.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct PaymentRequired(pub Problem);

/// The body is larger than the server's limit (`payload_too_large`; 256 KiB by default).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct PayloadTooLarge(pub Problem);

/// The body is not sent as JSON (`unsupported_media_type`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct UnsupportedMediaType(pub Problem);

/// The body is JSON but a value is wrong; `field` names it. Besides the schema's rules, values
/// meet rules a schema cannot state: a phone number must exist for its country
/// (`invalid_phone_number`, `invalid_sender`), a body must fit the segment limit
/// (`invalid_body`), `send_at` may be at most 35 days ahead (`invalid_send_at`), `expires_at`
/// must be in the future (`invalid_expires_at`), and a one-time code must be right, current
/// and unused (`invalid_code`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Unprocessable(pub Problem);

/// Over the rate limit of the API key or its account (`rate_limited`): wait the seconds in
/// `Retry-After`; `RateLimit-Policy` names the limit (requests per second and burst).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct TooManyRequests(pub Problem);

/// The request took longer than the server's deadline (`request_timeout`; 10 s by default).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct RequestTimeout(pub Problem);

/// An internal error; it has been logged (`internal`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct InternalError(pub Problem);

/// The server is at capacity, starting or shutting down (`overloaded`); retry after the
/// `Retry-After` delay.
#[derive(ToResponse)]
#[response(
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
)]
pub struct Unavailable(pub Problem);

/// Documents on every operation the answers of the layers every request passes (deadline,
/// load shedding, panic guard), which no handler names.
pub struct LayerAnswers;

impl utoipa::Modify for LayerAnswers {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                for (status, response) in [
                    ("408", <RequestTimeout as ToResponse>::response().0),
                    ("500", <InternalError as ToResponse>::response().0),
                    ("503", <Unavailable as ToResponse>::response().0),
                ] {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response)));
                }
                // Every operation open to an API key is open to a session too.
                if let Some(security) = operation.security.as_mut()
                    && security.iter().any(|s| {
                        serde_json::to_value(s)
                            .ok()
                            .is_some_and(|v| v.get("api_key").is_some())
                    })
                {
                    security.push(SecurityRequirement::new("session", Vec::<String>::new()));
                }
                // Rate limits apply to callers with an API key.
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    let response = <TooManyRequests as ToResponse>::response().0;
                    operation
                        .responses
                        .responses
                        .entry("429".to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(response)));
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

// Input schemas richer than their Rust types, for `#[schema(schema_with = ...)]`.

/// E.164 as the API takes it: `+`, then 7 to 15 digits, the first not 0.
pub const E164_PATTERN: &str = r"^\+[1-9][0-9]{6,14}$";

/// An email address as the server checks it (`app::people::validate_email`).
pub const EMAIL_PATTERN: &str = r"^[^@\s\u0000-\u001F\u007F-\u009F\uFEFF]+@[^@\s\u0000-\u001F\u007F-\u009F\uFEFF]+\.[^@\s\u0000-\u001F\u007F-\u009F\uFEFF]+$";

/// No control characters (Unicode category Cc).
pub const NO_CONTROL_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";

/// A message body: at least one character that is not white space, and no control characters
/// but tab, line feed and carriage return.
const BODY_PATTERN: &str = concat!(
    r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*",
    r"[^\s\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]",
    r"[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$",
);

/// An alphanumeric sender ID: letters, digits, space, `.`, `&`, `_`, `-`, at least one letter,
/// no space at either end.
pub(super) const SENDER_NAME_PATTERN: &str =
    r"^(?:[0-9.&_-][ 0-9.&_-]*)?[A-Za-z](?:[ A-Za-z0-9.&_-]*[A-Za-z0-9.&_-])?$";

pub(super) fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn nullable(schema: ObjectBuilder) -> ObjectBuilder {
    schema.schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

/// Any role, by name.
pub fn role_names() -> Object {
    string()
        .enum_values(Some(crate::identity::roles::Role::ALL.map(|r| r.as_str())))
        .examples(["owner"])
        .build()
}

/// A role a member holds in an account.
pub fn member_role_names() -> Object {
    use crate::identity::roles::{Role, RoleKind};
    string()
        .enum_values(Some(
            Role::ALL
                .into_iter()
                .filter(|r| r.kind() == RoleKind::Member)
                .map(Role::as_str),
        ))
        .examples(["developer"])
        .build()
}

/// An email address, as the server checks it.
pub fn email() -> Object {
    string()
        .pattern(Some(EMAIL_PATTERN))
        .max_length(Some(254))
        .examples(["ada@example.com"])
        .build()
}

/// A phone number in E.164.
pub fn phone_number() -> Object {
    string()
        .pattern(Some(E164_PATTERN))
        .description(Some("E.164: `+`, country code and number, 7 to 15 digits."))
        .examples(["+447911123456"])
        .build()
}

/// `to` of a send: one number, or a list of distinct numbers (one message each), at most the
/// server's recipient limit (1000 by default).
pub fn recipients() -> Schema {
    let max = Messaging::default().max_recipients;
    OneOfBuilder::new()
        .item(phone_number())
        .item(
            ArrayBuilder::new()
                .items(phone_number())
                .min_items(Some(1))
                .max_items(Some(max))
                .unique_items(true),
        )
        .description(Some(format!(
            "One E.164 number, or a list of 1 to {max} distinct ones (one message each)."
        )))
        .examples(["+447911123456"])
        .build()
        .into()
}

/// `from` of a send.
pub fn sender_id() -> Schema {
    OneOfBuilder::new()
        .item(phone_number())
        .item(
            string()
                .pattern(Some(r"^[0-9]{3,8}$"))
                .description(Some("A short code: 3 to 8 digits.")),
        )
        .item(
            string()
                .pattern(Some(SENDER_NAME_PATTERN))
                .max_length(Some(11))
                .description(Some(
                    "A name: up to 11 letters, digits, spaces, `.`, `&`, `_` or `-`, with at \
                     least one letter.",
                )),
        )
        .description(Some(
            "Sender ID: a name of up to 11 characters, a short code, or an E.164 number.",
        ))
        .examples(["Rampart"])
        .build()
        .into()
}

/// A reply Rampart sends for the account (opt-out confirmations, the help text).
pub fn reply_text() -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(crate::app::opt_out_settings::MAX_REPLY_CHARS))
        .pattern(Some(BODY_PATTERN))
        .description(Some(
            "Not blank; no control characters but tab, line feed and carriage return; at most \
             306 characters and 2 SMS segments (fewer characters in UCS-2).",
        ))
        .build()
}

/// An E.164 number, as a list of them takes it.
pub fn phone_numbers() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(phone_number())
        .max_items(Some(crate::app::opt_outs::MAX_IMPORT))
}

/// The most characters a body can have within the server's segment limit (10 by default): all
/// GSM-7, one septet each. Whether a shorter body fits depends on its characters (see 422).
fn max_body_chars() -> usize {
    match Messaging::default().max_segments {
        0 | 1 => SINGLE_PART_SEPTETS,
        segments => segments * MULTIPART_SEPTETS,
    }
}

/// `body` of a send.
pub fn message_body() -> Object {
    let segments = Messaging::default().max_segments;
    string()
        .min_length(Some(1))
        .max_length(Some(max_body_chars()))
        .pattern(Some(BODY_PATTERN))
        .description(Some(format!(
            "The text; GSM-7 when every character allows, else UCS-2. Not blank; no control \
             characters but tab, line feed and carriage return; at most {segments} SMS \
             segments ({} GSM-7 characters, fewer in UCS-2).",
            max_body_chars()
        )))
        .examples(["Your code is 123456"])
        .build()
}

/// `client_ref` of a send.
pub fn client_ref() -> Object {
    nullable(string())
        .max_length(Some(128))
        .pattern(Some(NO_CONTROL_PATTERN))
        .description(Some(
            "Your own reference, up to 128 characters without control characters, echoed back \
             and filterable.",
        ))
        .build()
}

/// Scope names as a key shows them.
pub fn scope_names() -> ArrayBuilder {
    ArrayBuilder::new().items(
        string()
            .enum_values(Some(Scope::ALL.map(Scope::as_str)))
            .build(),
    )
}

/// Scope names as a new key asks for them: at least one, `*` meaning everything the maker may
/// pass on.
pub fn requested_scopes() -> ArrayBuilder {
    let names = Scope::ALL.map(Scope::as_str).into_iter().chain(["*"]);
    ArrayBuilder::new()
        .items(string().enum_values(Some(names)).build())
        .min_items(Some(1))
        .description(Some(
            "Scopes of the new key, at least one; `*` means every scope the calling key may \
             pass on. A key can only grant scopes it holds itself. An account's key holds \
             account scopes only; `metrics:read`, `connectors:read`, `bans:manage` and \
             `accounts:manage` are server-wide, for operators' keys only.",
        ))
        .examples([serde_json::json!(["messages:send"])])
}
