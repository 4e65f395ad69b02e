//! Use cases of opt-outs: list, add, remove, import and export an account's opt-outs, read and
//! set its opt-out settings, keep the send path's copy in step with the store (the CLI changes
//! it there), and the send-time check that refuses an opted-out recipient.

use std::sync::PoisonError;

use super::audit::{Action, Actor, AuditEvent, Caller};
use super::messages::{Page, page_size};
use super::{App, AppError};
use crate::clock::Millis;
use crate::data::sealing::Field;
use crate::identity::Scope;
use crate::messaging::{MessageBody, PhoneNumber, SenderId};
use crate::policy::opt_out::{OptOutList, OptOutScope};
use crate::store::opt_outs::{OptOutRecord, OptOutSettingsRecord};

/// Most numbers one import may carry.
pub const MAX_IMPORT: usize = 10_000;
/// Longest reply text, in characters (two GSM-7 segments).
pub const MAX_REPLY_CHARS: usize = 306;

/// The stock replies: they name nothing but the keywords, so they suit any account.
pub const DEFAULT_STOP_TEXT: &str =
    "You are unsubscribed and will get no more messages from us. Reply START to resubscribe.";
pub const DEFAULT_START_TEXT: &str =
    "You are subscribed again. Reply STOP to unsubscribe, HELP for help.";
pub const DEFAULT_HELP_TEXT: &str = "Reply STOP to unsubscribe, START to resubscribe.";

/// How an opt-out came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutSource {
    /// The handset sent a STOP keyword.
    Keyword,
    /// Added through the API or the CLI.
    Api,
    /// Part of an import.
    Import,
}

impl OptOutSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keyword => "keyword",
            Self::Api => "api",
            Self::Import => "import",
        }
    }
}

/// An opt-out, opened for its account.
#[derive(Clone)]
pub struct OptOut {
    pub id: String,
    pub number: String,
    /// The sender it is limited to; `None` for the whole account.
    pub sender: Option<String>,
    pub source: String,
    pub created_at: Millis,
}

impl std::fmt::Debug for OptOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptOut")
            .field("id", &self.id)
            .field("number", &crate::messaging::phone::mask(&self.number))
            .finish_non_exhaustive()
    }
}

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

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    pub added: usize,
    /// Numbers already opted out.
    pub unchanged: usize,
}

impl App {
    /// A page of the account's opt-outs, newest first (`messages:read`).
    pub fn list_opt_outs(
        &self,
        caller: &Caller,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Page<OptOut>, AppError> {
        caller.require(Scope::MessagesRead)?;
        let limit = page_size(limit)?;
        let account = caller.account_id.as_str();
        let rows = self
            .store
            .read(|tx| tx.list_opt_outs(account, cursor, limit + 1))?;
        Page::cut(rows, limit, |r| &r.id).try_map(|r| self.open_opt_out(r))
    }

    /// Every opt-out of the account, newest first, for export (`messages:read`).
    pub fn export_opt_outs(&self, caller: &Caller) -> Result<Vec<OptOut>, AppError> {
        caller.require(Scope::MessagesRead)?;
        let account = caller.account_id.as_str();
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let rows = self
                .store
                .read(|tx| tx.list_opt_outs(account, cursor.as_deref(), 1000))?;
            let Some(last) = rows.last() else { break };
            cursor = Some(last.id.clone());
            for row in rows {
                all.push(self.open_opt_out(row)?);
            }
        }
        Ok(all)
    }

    /// Opts `number` out of the account, or of one `sender` of it (`account:manage`). The
    /// opt-out and whether it is new.
    pub async fn add_opt_out(
        &self,
        caller: &Caller,
        number: &str,
        sender: Option<&str>,
    ) -> Result<(OptOut, bool), AppError> {
        caller.require(Scope::AccountManage)?;
        let number = parse_number(number, "number")?;
        let sender = parse_sender(sender)?;
        self.opt_out(caller, &number, &sender, OptOutSource::Api)
            .await
    }

    /// Opts every number of a list out of the account, in one transaction (`account:manage`);
    /// a number that does not parse refuses the whole list, naming it (`numbers[i]`).
    pub async fn import_opt_outs(
        &self,
        caller: &Caller,
        numbers: &[String],
    ) -> Result<ImportSummary, AppError> {
        caller.require(Scope::AccountManage)?;
        if numbers.len() > MAX_IMPORT {
            return Err(AppError::invalid(
                "too_many_numbers",
                format!("an import holds at most {MAX_IMPORT} numbers"),
                "numbers",
            ));
        }
        let now = self.clock.now_ms();
        let account = caller.account_id.clone();
        let mut rows = Vec::with_capacity(numbers.len());
        for (i, raw) in numbers.iter().enumerate() {
            let number = parse_number(raw, &format!("numbers[{i}]"))?;
            rows.push(self.opt_out_row(&account, &number, "", OptOutSource::Import, now)?);
        }
        let audit = AuditEvent::by(caller, Action::OptOutsImported, &account, now);
        let added = self
            .store
            .write(move |tx| {
                let mut added = Vec::new();
                for row in rows {
                    if tx.insert_opt_out(&row)? {
                        added.push(row);
                    }
                }
                let mut audit = audit;
                audit.target = format!("added={}", added.len());
                audit.record(tx)?;
                Ok::<_, AppError>(added)
            })
            .await?;
        let mut list = self
            .opt_outs
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for row in &added {
            list.add(&row.account_id, &row.phone_index, &row.sender);
        }
        Ok(ImportSummary {
            added: added.len(),
            unchanged: numbers.len() - added.len(),
        })
    }

    /// Removes every opt-out of `number` in the account (`account:manage`).
    pub async fn remove_opt_out(&self, caller: &Caller, number: &str) -> Result<(), AppError> {
        caller.require(Scope::AccountManage)?;
        let number = parse_number(number, "number")?;
        let removed = self.opt_in(caller, &number, None).await?;
        if removed == 0 {
            return Err(AppError::NotFound("opt-out"));
        }
        Ok(())
    }

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

    /// Stores an opt-out (audited `opt_out.add` when new) and applies it to the send path.
    pub(crate) async fn opt_out(
        &self,
        caller: &Caller,
        number: &PhoneNumber,
        sender: &str,
        source: OptOutSource,
    ) -> Result<(OptOut, bool), AppError> {
        let now = self.clock.now_ms();
        let row = self.opt_out_row(&caller.account_id, number, sender, source, now)?;
        let audit = AuditEvent::by(caller, Action::OptOutAdded, &row.id, now);
        let stored = row.clone();
        let added = self
            .write_audited(audit, move |tx| tx.insert_opt_out(&stored), |added| *added)
            .await?;
        if added {
            self.opt_outs
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .add(&row.account_id, &row.phone_index, &row.sender);
        }
        let view = OptOut {
            id: row.id,
            number: number.as_str().to_owned(),
            sender: (!row.sender.is_empty()).then_some(row.sender),
            source: row.source,
            created_at: row.created_at,
        };
        Ok((view, added))
    }

    /// Removes the number's opt-outs (with `sender`: that sender's and the account-wide one),
    /// each audited `opt_out.remove`; how many went.
    pub(crate) async fn opt_in(
        &self,
        caller: &Caller,
        number: &PhoneNumber,
        sender: Option<&str>,
    ) -> Result<usize, AppError> {
        let now = self.clock.now_ms();
        let account = caller.account_id.clone();
        let tag = self.sealer.phone_index(&account, number.as_str()).to_vec();
        let audit = AuditEvent::by(caller, Action::OptOutRemoved, "", now);
        let (owned_sender, owned_tag) = (sender.map(str::to_owned), tag.clone());
        let removed = self
            .store
            .write(move |tx| {
                let ids = tx.delete_opt_outs(&account, &owned_tag, owned_sender.as_deref())?;
                for id in &ids {
                    let mut event = audit.clone();
                    event.target.clone_from(id);
                    event.record(tx)?;
                }
                Ok::<_, AppError>(ids.len())
            })
            .await?;
        self.opt_outs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&caller.account_id, &tag, sender);
        Ok(removed)
    }

    /// Takes the store's opt-outs as the send path's copy when they changed since the last
    /// look (the server calls this every second; `App::open` once).
    pub fn sync_opt_outs(&self) -> Result<(), AppError> {
        let version = self.store.read(|tx| tx.opt_outs_version())?;
        let mut seen = self
            .opt_outs_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *seen == Some(version) {
            return Ok(());
        }
        let entries = self.store.read(|tx| tx.all_opt_outs())?;
        let list = OptOutList::from_entries(
            entries
                .into_iter()
                .map(|e| (e.account_id, e.phone_index, e.sender)),
        );
        metrics::gauge!("rampart_opt_outs").set(list.len() as f64);
        *self
            .opt_outs
            .write()
            .unwrap_or_else(PoisonError::into_inner) = list;
        *seen = Some(version);
        Ok(())
    }

    /// The send-time check beside the policy: a recipient opted out of the account, or of this
    /// sender, is refused (422 `recipient_opted_out`, naming `to[i]`). Rampart's own replies
    /// (keyword confirmations, notices) pass: a STOP is answered once, after it took effect.
    pub(crate) fn check_opt_outs(
        &self,
        caller: &Caller,
        recipients: &[PhoneNumber],
        to_is_list: bool,
        sender: &SenderId,
    ) -> Result<(), AppError> {
        if caller.actor == Actor::System {
            return Ok(());
        }
        let list = self.opt_outs.read().unwrap_or_else(PoisonError::into_inner);
        if list.is_empty() {
            return Ok(());
        }
        let account = caller.account_id.as_str();
        for (i, to) in recipients.iter().enumerate() {
            let tag = self.sealer.phone_index(account, to.as_str());
            if list.refuses(account, &tag, sender.as_str()) {
                metrics::counter!("rampart_policy_refusals_total", "code" => "recipient_opted_out")
                    .increment(1);
                return Err(AppError::Invalid {
                    code: "recipient_opted_out",
                    message: "the recipient opted out of this account's messages".into(),
                    field: Some(if to_is_list {
                        format!("to[{i}]")
                    } else {
                        "to".to_owned()
                    }),
                });
            }
        }
        Ok(())
    }

    fn opt_out_row(
        &self,
        account: &str,
        number: &PhoneNumber,
        sender: &str,
        source: OptOutSource,
        now: Millis,
    ) -> Result<OptOutRecord, AppError> {
        let id = crate::store::new_id("opt");
        Ok(OptOutRecord {
            number_sealed: self.sealer.seal(
                Field::OptOutNumber,
                account,
                &id,
                number.as_str().as_bytes(),
            )?,
            phone_index: self.sealer.phone_index(account, number.as_str()).to_vec(),
            account_id: account.to_owned(),
            sender: sender.to_owned(),
            source: source.as_str().to_owned(),
            created_at: now,
            id,
        })
    }

    fn open_opt_out(&self, row: OptOutRecord) -> Result<OptOut, AppError> {
        let number = self.sealer.open_string(
            Field::OptOutNumber,
            &row.account_id,
            &row.id,
            &row.number_sealed,
        )?;
        Ok(OptOut {
            id: row.id,
            number,
            sender: (!row.sender.is_empty()).then_some(row.sender),
            source: row.source,
            created_at: row.created_at,
        })
    }
}

/// The numbers of a CSV: the first column of each non-empty line, a `number` header skipped.
pub fn csv_numbers(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            line.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"')
        })
        .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case("number"))
        .map(str::to_owned)
        .collect()
}

/// The export: `number,scope,sender,source,created_at`, one opt-out a line. Senders are our
/// numbers or sender IDs, which hold no comma or quote.
pub fn export_csv(rows: &[OptOut]) -> String {
    let mut csv = String::from("number,scope,sender,source,created_at\n");
    for r in rows {
        let scope = if r.sender.is_some() {
            "sender"
        } else {
            "account"
        };
        let sender = r.sender.as_deref().unwrap_or_default();
        let at = crate::clock::rfc3339(r.created_at);
        csv.push_str(&format!(
            "{},{scope},{sender},{},{at}\n",
            r.number, r.source
        ));
    }
    csv
}

fn parse_number(raw: &str, field: &str) -> Result<PhoneNumber, AppError> {
    PhoneNumber::parse(raw)
        .map_err(|e| AppError::invalid("invalid_phone_number", e.to_string(), field))
}

fn parse_sender(raw: Option<&str>) -> Result<String, AppError> {
    match raw {
        None => Ok(String::new()),
        Some(raw) => SenderId::parse(raw)
            .map(|s| s.as_str().to_owned())
            .map_err(|e| AppError::invalid("invalid_sender", e.to_string(), "sender")),
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
        .map_err(|e| AppError::invalid("invalid_reply_text", e.to_string(), field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_gives_its_first_column_without_the_header_or_blank_lines() {
        let text = "number,note\n+447700900123,from the old system\n\n\"+447700900124\"\r\n";
        assert_eq!(csv_numbers(text), ["+447700900123", "+447700900124"]);
    }

    #[test]
    fn the_export_names_scope_sender_and_source_and_reads_back_as_an_import() {
        let rows = [
            OptOut {
                id: "opt_1".into(),
                number: "+447700900123".into(),
                sender: None,
                source: "keyword".into(),
                created_at: 0,
            },
            OptOut {
                id: "opt_2".into(),
                number: "+447700900124".into(),
                sender: Some("12345".into()),
                source: "api".into(),
                created_at: 0,
            },
        ];
        let csv = export_csv(&rows);
        let at = crate::clock::rfc3339(0);
        assert_eq!(
            csv,
            format!(
                "number,scope,sender,source,created_at\n\
                 +447700900123,account,,keyword,{at}\n+447700900124,sender,12345,api,{at}\n"
            )
        );
        assert_eq!(csv_numbers(&csv), ["+447700900123", "+447700900124"]);
    }
}
