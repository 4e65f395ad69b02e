//! Reading the audit trail (`GET /v1/audit-events`): an account's caller with `audit:read`
//! sees its account's events; an operator with `accounts:manage` sees the whole instance's.

use super::audit::Caller;
use super::messages::page_size;
use super::{App, AppError};
use crate::clock::{self, Millis};
use crate::identity::Scope;
use crate::store::audit::AuditQuery;
pub use crate::store::audit::AuditRecord;

/// Longest actor id or action name accepted as a filter.
const MAX_FILTER_LEN: usize = 100;

/// Filters, as the caller gave them.
#[derive(Debug, Clone, Default)]
pub struct AuditEventsQuery {
    /// An actor's id (`rk_...`, `usr_...`), or `operator` / `system`.
    pub actor: Option<String>,
    /// An action such as `api_key.issue`.
    pub action: Option<String>,
    /// RFC 3339: events at or after.
    pub since: Option<String>,
    /// RFC 3339: events before.
    pub until: Option<String>,
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page (a sequence number).
    pub cursor: Option<String>,
}

/// A page of events, newest first.
#[derive(Debug)]
pub struct AuditEventsPage {
    pub data: Vec<AuditRecord>,
    pub next_cursor: Option<String>,
}

fn time(field: &'static str, value: Option<String>) -> Result<Option<Millis>, AppError> {
    value
        .map(|text| {
            clock::parse_rfc3339(&text).ok_or_else(|| {
                AppError::invalid_filter(
                    "invalid_query",
                    format!("`{field}` must be an RFC 3339 date-time"),
                    field,
                )
            })
        })
        .transpose()
}

fn text(field: &'static str, value: Option<String>) -> Result<Option<String>, AppError> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > MAX_FILTER_LEN => {
            Err(AppError::invalid_filter(
                "invalid_query",
                format!("`{field}` must be 1 to {MAX_FILTER_LEN} characters"),
                field,
            ))
        }
        other => Ok(other),
    }
}

impl App {
    /// The audit events the caller may see, newest first, filtered and paged by sequence.
    pub async fn list_audit_events(
        &self,
        caller: &Caller,
        query: AuditEventsQuery,
    ) -> Result<AuditEventsPage, AppError> {
        let account_id = if caller.is_instance() {
            caller.require(Scope::AccountsManage)?;
            None
        } else {
            caller.require(Scope::AuditRead)?;
            Some(caller.account_id.clone())
        };
        let limit = page_size(query.limit)?;
        let since = time("since", query.since)?;
        let until = time("until", query.until)?;
        // `since` at or after `until` is an empty window, answered with an empty page: the
        // schema cannot say that one must come before the other.
        let before_seq = query
            .cursor
            .map(|c| {
                // Exactly the documented form (`^[1-9][0-9]{0,17}$`): `parse` alone would also
                // take `+5` or `007`.
                let canonical = (1..=18).contains(&c.len())
                    && !c.starts_with('0')
                    && c.bytes().all(|b| b.is_ascii_digit());
                canonical
                    .then(|| c.parse::<i64>().ok())
                    .flatten()
                    .ok_or_else(|| {
                        AppError::invalid_filter(
                            "invalid_query",
                            "`cursor` must be the `next_cursor` of a previous page",
                            "cursor",
                        )
                    })
            })
            .transpose()?;
        let filter = AuditQuery {
            account_id,
            actor: text("actor", query.actor)?,
            action: text("action", query.action)?,
            since,
            until,
            before_seq,
            limit: limit + 1,
        };
        let mut data = self
            .store
            .read_blocking(move |tx| tx.query_audit(&filter))
            .await?;
        let more = data.len() > limit;
        data.truncate(limit);
        let next_cursor = more
            .then(|| data.last().map(|e| e.seq.to_string()))
            .flatten();
        Ok(AuditEventsPage { data, next_cursor })
    }
}
