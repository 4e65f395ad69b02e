//! Use cases of opt-outs: list, add, remove, import and export an account's opt-outs, keep the send path's copy in step with the store (the CLI changes
//! it there), and the send-time check that refuses an opted-out recipient.

use std::sync::PoisonError;

use super::audit::{Action, Actor, AuditEvent, Caller};
use super::messages::{Page, page_size};
use super::{App, AppError};
use crate::clock::Millis;
use crate::data::sealing::Field;
use crate::identity::Scope;
use crate::messaging::{PhoneNumber, SenderId};
use crate::policy::opt_out_list::OptOutList;
use crate::store::opt_outs::OptOutRecord;

/// Most numbers one import may carry.
pub const MAX_IMPORT: usize = 10_000;

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
            .map_err(|e| {
                let message = e.to_string().replace("`from`", "`sender`");
                AppError::invalid("invalid_sender", message, "sender")
            }),
    }
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
