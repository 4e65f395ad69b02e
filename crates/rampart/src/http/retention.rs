//! `/v1/accounts/{id}/retention`: how long the account keeps message bodies and messages.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, Auth};
use super::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unprocessable,
    UnsupportedMediaType,
};
use crate::messaging::retention::Retention;

/// How long the account keeps messages (outbound and inbound). Only messages in a final
/// state (delivered, undelivered, failed, expired, canceled) and inbound messages are
/// touched; their age counts from when they were made or received. Null: kept for ever.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"erase_bodies_after_days": 30, "purge_after_days": 365}))]
pub struct RetentionView {
    /// Days after which a message's body is erased; the rest of the message (recipient,
    /// status, timings) is kept. 1 to 36500, or null.
    #[serde(default, deserialize_with = "crate::whole_number::optional_u32")]
    #[schema(minimum = 1, maximum = 36500)]
    pub erase_bodies_after_days: Option<u32>,
    /// Days after which the whole message is deleted. 1 to 36500, or null; not shorter than
    /// `erase_bodies_after_days` (422 `invalid_retention`).
    #[serde(default, deserialize_with = "crate::whole_number::optional_u32")]
    #[schema(minimum = 1, maximum = 36500)]
    pub purge_after_days: Option<u32>,
}

impl From<Retention> for RetentionView {
    fn from(r: Retention) -> Self {
        Self {
            erase_bodies_after_days: r.erase_bodies_after_days(),
            purge_after_days: r.purge_after_days(),
        }
    }
}

/// The account's retention (`account:manage`, or an operator's `accounts:manage`).
#[utoipa::path(get, path = "/v1/accounts/{id}/retention", tag = "members",
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "The retention in force", body = RetentionView),
        (status = 401, response = Unauthorized), (status = 403, response = Forbidden),
        (status = 404, response = NotFound)),
    security(("api_key" = [])))]
pub async fn get_retention(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
) -> Result<Json<RetentionView>, ApiError> {
    Ok(Json(state.app.account_retention(&auth.0, &account)?.into()))
}

/// Set the account's retention (`account:manage`, or an operator's `accounts:manage`; a
/// session needs a recent re-authentication), as `rampart account retention` does. The server
/// applies it within the hour; erased bodies and deleted messages cannot be brought back.
#[utoipa::path(put, path = "/v1/accounts/{id}/retention", tag = "members",
    request_body = RetentionView,
    params(("id" = String, Path, description = "The account id")),
    responses((status = 200, description = "The retention now", body = RetentionView),
        (status = 400, response = BadRequest), (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden), (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge), (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable)),
    security(("api_key" = [])))]
pub async fn set_retention(
    State(state): State<AppState>,
    auth: Auth,
    Path(account): Path<String>,
    request: ApiJson<RetentionView>,
) -> Result<Json<RetentionView>, ApiError> {
    let wanted = request.value;
    let set = state
        .app
        .set_account_retention(
            &auth.0,
            &account,
            wanted.erase_bodies_after_days,
            wanted.purge_after_days,
        )
        .await?;
    Ok(Json(set.into()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::inbound::InboundView;
    use super::super::messages::MessageView;
    use crate::app::inbound::InboundMessage;
    use crate::app::messages::Message;
    use crate::messaging::{Encoding, MessageStatus};

    fn message(body: Option<&str>, body_erased_at: Option<i64>) -> Message {
        Message {
            id: "msg_1".into(),
            to: "+447911123456".into(),
            from: "Rampart".into(),
            body: body.map(str::to_owned),
            body_erased_at,
            status: MessageStatus::Delivered,
            encoding: Encoding::Gsm7,
            segments: 1,
            attempts: 1,
            client_ref: None,
            error_code: None,
            error_detail: None,
            created_at: 0,
            updated_at: 0,
            send_at: None,
            valid_until: None,
            sent_at: None,
            completed_at: None,
            category: None,
        }
    }

    #[test]
    fn an_erased_body_is_shown_as_null_with_when_it_was_erased() {
        let erased = serde_json::to_value(MessageView::from(message(None, Some(0)))).unwrap();
        assert_eq!(erased["body"], json!(null));
        assert!(erased.as_object().unwrap().contains_key("body"));
        assert_eq!(erased["body_erased_at"], json!(crate::clock::rfc3339(0)));

        let kept = serde_json::to_value(MessageView::from(message(Some("hi"), None))).unwrap();
        assert_eq!(kept["body"], json!("hi"));
        assert!(!kept.as_object().unwrap().contains_key("body_erased_at"));
        // Without `messages:read` the body is absent, as before.
        let status_only = serde_json::to_value(MessageView::from(message(None, None))).unwrap();
        assert!(!status_only.as_object().unwrap().contains_key("body"));

        let inbound = InboundView::from(InboundMessage {
            id: "inb_1".into(),
            from: "+447400123456".into(),
            to: "+447911123456".into(),
            body: None,
            body_erased_at: Some(0),
            connector: "smsc".into(),
            received_at: 0,
        });
        let inbound = serde_json::to_value(inbound).unwrap();
        assert_eq!(inbound["body"], json!(null));
        assert_eq!(inbound["body_erased_at"], json!(crate::clock::rfc3339(0)));
    }
}
