//! Each account's opt-out settings: whether keywords are acted on, the scope of a STOP and
//! the texts Rampart replies with; the defaults where the account set none.

use super::audit::{Action, AuditEvent, Caller};
use super::{App, AppError};
use crate::identity::Scope;
use crate::messaging::MessageBody;
use crate::policy::opt_out_list::OptOutScope;
use crate::store::opt_outs::OptOutSettingsRecord;

/// Longest reply text, in characters (two GSM-7 segments).
pub const MAX_REPLY_CHARS: usize = 306;

/// The stock replies: they name nothing but the keywords, so they suit any account.
pub const DEFAULT_STOP_TEXT: &str =
    "You are unsubscribed and will get no more messages from us. Reply START to resubscribe.";
pub const DEFAULT_START_TEXT: &str =
    "You are subscribed again. Reply STOP to unsubscribe, HELP for help.";
pub const DEFAULT_HELP_TEXT: &str = "Reply STOP to unsubscribe, START to resubscribe.";

/// An account's opt-out settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutSettings {
    /// Whether STOP, START and HELP are acted on (opt-outs already listed refuse sends either
    /// way).
    pub enabled: bool,
    pub scope: OptOutScope,
    pub help_text: String,
    pub stop_text: String,
    pub start_text: String,
}

impl Default for OptOutSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            scope: OptOutScope::Account,
            help_text: DEFAULT_HELP_TEXT.to_owned(),
            stop_text: DEFAULT_STOP_TEXT.to_owned(),
            start_text: DEFAULT_START_TEXT.to_owned(),
        }
    }
}

/// A change of settings: what is `None` stays as it is.
#[derive(Debug, Default)]
pub struct OptOutSettingsChange {
    pub enabled: Option<bool>,
    pub scope: Option<String>,
    pub help_text: Option<String>,
    pub stop_text: Option<String>,
    pub start_text: Option<String>,
}

impl App {
    /// The account's opt-out settings (`messages:read`).
    pub fn opt_out_settings_for(&self, caller: &Caller) -> Result<OptOutSettings, AppError> {
        caller.require(Scope::MessagesRead)?;
        self.opt_out_settings(&caller.account_id)
    }

    /// Changes the account's opt-out settings (`account:manage`).
    pub async fn set_opt_out_settings(
        &self,
        caller: &Caller,
        change: OptOutSettingsChange,
    ) -> Result<OptOutSettings, AppError> {
        caller.require(Scope::AccountManage)?;
        let mut settings = self.opt_out_settings(&caller.account_id)?;
        if let Some(enabled) = change.enabled {
            settings.enabled = enabled;
        }
        if let Some(scope) = change.scope {
            settings.scope = OptOutScope::parse(&scope).ok_or_else(|| {
                AppError::invalid(
                    "invalid_opt_out_scope",
                    "`scope` is `account` or `per_sender`",
                    "scope",
                )
            })?;
        }
        for (text, slot, field) in [
            (change.help_text, &mut settings.help_text, "help_text"),
            (change.stop_text, &mut settings.stop_text, "stop_text"),
            (change.start_text, &mut settings.start_text, "start_text"),
        ] {
            if let Some(text) = text {
                *slot = parse_reply(text, field)?;
            }
        }
        let now = self.clock.now_ms();
        let row = OptOutSettingsRecord {
            account_id: caller.account_id.clone(),
            enabled: settings.enabled,
            scope: settings.scope.as_str().to_owned(),
            help_text: Some(settings.help_text.clone()),
            stop_text: Some(settings.stop_text.clone()),
            start_text: Some(settings.start_text.clone()),
            updated_at: now,
        };
        let audit = AuditEvent::by(caller, Action::OptOutSettingsSet, &caller.account_id, now);
        self.write_audited(audit, move |tx| tx.set_opt_out_settings(&row), |_| true)
            .await?;
        Ok(settings)
    }

    /// The account's opt-out settings, the defaults where none were set.
    pub(crate) fn opt_out_settings(&self, account_id: &str) -> Result<OptOutSettings, AppError> {
        let stored = self.store.read(|tx| tx.opt_out_settings(account_id))?;
        let defaults = OptOutSettings::default();
        Ok(match stored {
            None => defaults,
            Some(row) => OptOutSettings {
                enabled: row.enabled,
                scope: OptOutScope::parse(&row.scope).unwrap_or(OptOutScope::Account),
                help_text: row.help_text.unwrap_or(defaults.help_text),
                stop_text: row.stop_text.unwrap_or(defaults.stop_text),
                start_text: row.start_text.unwrap_or(defaults.start_text),
            },
        })
    }
}

fn parse_reply(text: String, field: &str) -> Result<String, AppError> {
    if text.chars().count() > MAX_REPLY_CHARS {
        return Err(AppError::invalid(
            "invalid_reply_text",
            format!("a reply is at most {MAX_REPLY_CHARS} characters"),
            field,
        ));
    }
    MessageBody::parse(text, 2)
        .map(|b| b.as_str().to_owned())
        .map_err(|e| {
            let message = e.to_string().replace("`body`", &format!("`{field}`"));
            AppError::invalid("invalid_reply_text", message, field)
        })
}
