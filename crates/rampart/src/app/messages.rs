//! Use cases of outbound messages: send (one recipient or many, scheduled, idempotent), read,
//! list and cancel. A send is accepted only once its messages are committed to disk.

use std::collections::HashSet;
use std::fmt;

use sha2::{Digest, Sha256};

use super::audit::{Action, AuditEvent, Caller};
use super::policies::question;
use super::{App, AppError};
use crate::clock::{self, Millis};
use crate::data::sealing::Field;
use crate::identity::Scope;
use crate::messaging::phone::mask;
use crate::messaging::{Encoding, MessageBody, MessageStatus, PhoneNumber, SenderId};
use crate::policy::{Category, Decision};
use crate::store::messages::{Insertion, ListFilter, MessageRecord, NewMessage};

const MAX_SCHEDULE_AHEAD_MS: Millis = 35 * 24 * 3600 * 1000;
/// Validity periods accepted, in seconds.
pub const VALIDITY_SECS: std::ops::RangeInclusive<u64> = 60..=7 * 24 * 3600;
/// Longest `client_ref`, in characters.
pub const MAX_CLIENT_REF: usize = 128;
/// Page sizes accepted by the list use cases.
pub const PAGE_SIZES: std::ops::RangeInclusive<usize> = 1..=200;
const DEFAULT_PAGE_SIZE: usize = 50;

/// A send request as the caller wrote it; the use case parses every field.
#[derive(Default)]
pub struct SendRequest {
    pub to: Vec<String>,
    /// Whether `to` was given as a list (errors then name `to[i]`).
    pub to_is_list: bool,
    pub from: String,
    pub body: String,
    pub send_at: Option<String>,
    pub validity_period: Option<u64>,
    pub client_ref: Option<String>,
    /// `transactional` (the default), `marketing` or `otp`.
    pub category: Option<String>,
    pub idempotency: Option<Idempotency>,
}

/// An idempotency key with the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    key: String,
    fingerprint: Vec<u8>,
}

impl Idempotency {
    /// Checks the key (1 to 255 visible ASCII characters) and fingerprints the raw request.
    pub fn new(key: &str, request: &[u8]) -> Result<Self, AppError> {
        let key = key.trim();
        if key.is_empty()
            || key.len() > 255
            || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(AppError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(Self {
            key: key.to_owned(),
            fingerprint: Sha256::digest(request).to_vec(),
        })
    }
}

/// One accepted message.
#[derive(Clone)]
pub struct AcceptedMessage {
    pub id: String,
    pub to: String,
    pub status: MessageStatus,
    pub encoding: Encoding,
    pub segments: u32,
}

/// What a send did.
#[derive(Debug)]
pub enum SendOutcome {
    /// New messages, one per recipient, on disk.
    Accepted(Vec<AcceptedMessage>),
    /// The idempotency key was used before with the same request: its messages, as they are.
    Replayed(Vec<AcceptedMessage>),
}

/// A message, opened for its owner.
#[derive(Clone)]
pub struct Message {
    pub id: String,
    pub to: String,
    pub from: String,
    /// `None` for a caller that may see messages' status but not their text
    /// (`messages:status` without `messages:read`), and once retention erased it.
    pub body: Option<String>,
    /// When retention erased the body.
    pub body_erased_at: Option<Millis>,
    pub status: MessageStatus,
    pub encoding: Encoding,
    pub segments: u32,
    pub attempts: u32,
    pub client_ref: Option<String>,
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub send_at: Option<Millis>,
    pub valid_until: Option<Millis>,
    pub sent_at: Option<Millis>,
    pub completed_at: Option<Millis>,
    /// `None` for messages sent before categories existed.
    pub category: Option<Category>,
}

/// What a cancel answers.
#[derive(Debug)]
pub enum Canceled {
    /// The whole message, for a caller holding `messages:read`.
    Message(Box<Message>),
    /// Its id and status only, for a caller that may send but not read.
    Status { id: String, status: MessageStatus },
}

/// Filters for listing messages, as the caller wrote them.
#[derive(Default)]
pub struct MessageQuery {
    pub status: Option<String>,
    pub to: Option<String>,
    pub client_ref: Option<String>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

/// A page of results, newest first.
#[derive(Debug)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass back as the cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The same page with every row turned into something else (or the first failure).
    pub(crate) fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            data: self.data.into_iter().map(f).collect::<Result<_, _>>()?,
            next_cursor: self.next_cursor,
        })
    }

    /// Cuts rows fetched with `limit + 1` down to one page and names the next cursor.
    pub(crate) fn cut(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> &str) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = more
            .then(|| rows.last().map(|r| id(r).to_owned()))
            .flatten();
        Self {
            data: rows,
            next_cursor,
        }
    }
}

/// The page size asked for (`limit`, within [`PAGE_SIZES`], default 50).
pub(crate) fn page_size(limit: Option<usize>) -> Result<usize, AppError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    if PAGE_SIZES.contains(&limit) {
        Ok(limit)
    } else {
        Err(AppError::invalid_filter(
            "invalid_query",
            "`limit` must be 1 to 200",
            "limit",
        ))
    }
}

// Debug never shows a full phone number or a message text: these values reach logs.

impl fmt::Debug for SendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let to: Vec<String> = self.to.iter().map(|n| mask(n)).collect();
        f.debug_struct("SendRequest")
            .field("to", &to)
            .field("from", &self.from)
            .field("body_chars", &self.body.chars().count())
            .field("send_at", &self.send_at)
            .field("client_ref", &self.client_ref)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for AcceptedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcceptedMessage")
            .field("id", &self.id)
            .field("to", &mask(&self.to))
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("to", &mask(&self.to))
            .field("status", &self.status)
            .field("body_chars", &self.body.as_ref().map(|b| b.chars().count()))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for MessageQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageQuery")
            .field("status", &self.status)
            .field("to", &self.to.as_deref().map(mask))
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The parsed fields of a send, before any row exists.
pub(super) struct Parsed {
    pub(super) recipients: Vec<PhoneNumber>,
    /// Whether `to` was a list (refusals then name `to[i]`).
    pub(super) to_is_list: bool,
    pub(super) sender: SenderId,
    pub(super) body: MessageBody,
    pub(super) send_at: Option<Millis>,
    pub(super) valid_until: Option<Millis>,
    pub(super) client_ref: Option<String>,
    pub(super) category: Category,
}

impl App {
    /// How long an idempotency key is remembered.
    fn idempotency_window_ms(&self) -> Millis {
        Millis::from(self.config.messaging.idempotency_hours.max(1)) * 3_600_000
    }

    /// Deletes the idempotency records older than `messaging.idempotency_hours` (the server
    /// does it hourly); how many went.
    pub async fn expire_idempotency_keys(&self) -> Result<usize, AppError> {
        let before = self.clock.now_ms() - self.idempotency_window_ms();
        self.store
            .write_background(move |tx| Ok::<_, AppError>(tx.expire_idempotency_keys(before)?))
            .await
    }

    /// Sends one message per recipient. The 2xx answer comes only after the commit is on disk.
    pub async fn send_messages(
        &self,
        caller: &Caller,
        request: SendRequest,
    ) -> Result<SendOutcome, AppError> {
        caller.require(Scope::MessagesSend)?;
        let now = self.clock.now_ms();
        let idempotency = request.idempotency.clone();
        let many = request.to_is_list;
        let mut parsed = self.parse_send(request, now)?;
        let account = &caller.account_id;
        let tags = self.recipient_tags(account, &parsed);
        let (decision, policy) = self.ask_policy(account, &question(&parsed, &tags, now))?;
        match decision {
            Decision::Allow => {}
            Decision::Defer(until) => parsed.defer(until, now),
            Decision::Deny(violations) => {
                // A retry of a send that was accepted (before a frequency cap filled up or
                // the document changed) gets its first answer, as any retry does.
                if let Some(i) = &idempotency {
                    let since = now - self.idempotency_window_ms();
                    let seen = self.store.read(|tx| {
                        tx.idempotent_messages(account, &i.key, &i.fingerprint, since)
                    })?;
                    if let Some(ids) = seen {
                        return self.replay(account, ids);
                    }
                }
                return Err(self.refuse_send(caller, violations, now));
            }
        }
        self.check_opt_outs(
            caller,
            &parsed.recipients,
            parsed.to_is_list,
            &parsed.sender,
        )?;
        self.check_pumping(
            caller,
            &parsed.recipients,
            parsed.to_is_list,
            parsed.category,
        )?;
        let info = parsed.body.info();
        let mut rows = Vec::with_capacity(parsed.recipients.len());
        let mut accepted = Vec::with_capacity(parsed.recipients.len());
        for (to, tag) in parsed.recipients.iter().zip(&tags) {
            let id = crate::store::new_id("msg");
            rows.push(NewMessage {
                to_index: *tag,
                to_sealed: self.sealer.seal(
                    Field::MessageTo,
                    account,
                    &id,
                    to.as_str().as_bytes(),
                )?,
                body_sealed: self.sealer.seal(
                    Field::MessageBody,
                    account,
                    &id,
                    parsed.body.as_str().as_bytes(),
                )?,
                account_id: account.clone(),
                sender: parsed.sender.as_str().to_owned(),
                encoding: info.encoding.as_str(),
                segments: info.segments as u32,
                client_ref: parsed.client_ref.clone(),
                send_at: parsed.send_at,
                valid_until: parsed.valid_until,
                created_at: now,
                category: parsed.category.as_str(),
                id: id.clone(),
            });
            accepted.push(AcceptedMessage {
                id,
                to: to.as_str().to_owned(),
                status: MessageStatus::Queued,
                encoding: info.encoding,
                segments: info.segments as u32,
            });
        }
        let reservation = self.price_send(caller, &accepted, many, now)?;
        let audit = AuditEvent::by(caller, Action::MessagesSent, &accepted[0].id, now);
        let remembered_since = now - self.idempotency_window_ms();
        let insertion = self
            .store
            .write(move |tx| {
                let key = idempotency
                    .as_ref()
                    .map(|i| (i.key.as_str(), i.fingerprint.as_slice()));
                let insertion = tx.insert_messages(&rows, key, remembered_since)?;
                if insertion == Insertion::Created {
                    // In the transaction that stores the messages: a refusal rolls them back.
                    if let Some(reservation) = &reservation {
                        reservation.hold(tx)?;
                    }
                    audit.record(tx)?;
                }
                Ok::<_, AppError>(insertion)
            })
            .await?;
        match insertion {
            Insertion::Created => {
                metrics::counter!("rampart_messages_accepted_total")
                    .increment(accepted.len() as u64);
                let at = parsed.send_at.unwrap_or(now);
                self.count_sends(&caller.account_id, &policy, &tags, at);
                if parsed.send_at.is_none() {
                    self.wake_delivery();
                }
                Ok(SendOutcome::Accepted(accepted))
            }
            Insertion::Replayed(ids) => self.replay(&caller.account_id, ids),
            Insertion::KeyReused => Err(AppError::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request",
            )),
        }
    }

    pub(super) fn parse_send(&self, request: SendRequest, now: Millis) -> Result<Parsed, AppError> {
        let limits = &self.config.messaging;
        let recipients = parse_recipients(&request.to, request.to_is_list, limits.max_recipients)?;
        let sender = SenderId::parse(&request.from)
            .map_err(|e| AppError::invalid("invalid_sender", e.to_string(), "from"))?;
        let body = MessageBody::parse(request.body, limits.max_segments)
            .map_err(|e| AppError::invalid("invalid_body", e.to_string(), "body"))?;
        let send_at = match request.send_at.as_deref() {
            None => None,
            Some(text) => {
                let at = clock::parse_rfc3339(text).ok_or_else(|| {
                    AppError::invalid(
                        "invalid_send_at",
                        "`send_at` must be an RFC 3339 timestamp",
                        "send_at",
                    )
                })?;
                if at > now + MAX_SCHEDULE_AHEAD_MS {
                    return Err(AppError::invalid(
                        "invalid_send_at",
                        "`send_at` may be at most 35 days ahead",
                        "send_at",
                    ));
                }
                (at > now).then_some(at)
            }
        };
        let valid_until = match request.validity_period {
            None => None,
            Some(secs) if VALIDITY_SECS.contains(&secs) => {
                Some(send_at.unwrap_or(now) + (secs as Millis) * 1000)
            }
            Some(_) => {
                return Err(AppError::invalid(
                    "invalid_validity_period",
                    "`validity_period` must be 60 to 604800 seconds",
                    "validity_period",
                ));
            }
        };
        if let Some(r) = &request.client_ref
            && (r.chars().count() > MAX_CLIENT_REF || r.chars().any(char::is_control))
        {
            return Err(AppError::invalid(
                "invalid_client_ref",
                "`client_ref` must be at most 128 printable characters",
                "client_ref",
            ));
        }
        let category = match request.category.as_deref() {
            None => Category::default(),
            Some(c) => Category::parse(c).ok_or_else(|| {
                AppError::invalid(
                    "invalid_category",
                    "`category` must be transactional, marketing or otp",
                    "category",
                )
            })?,
        };
        Ok(Parsed {
            recipients,
            to_is_list: request.to_is_list,
            sender,
            body,
            send_at,
            valid_until,
            client_ref: request.client_ref,
            category,
        })
    }

    fn replay(&self, account_id: &str, ids: Vec<String>) -> Result<SendOutcome, AppError> {
        let mut messages = Vec::with_capacity(ids.len());
        for id in ids {
            // Only retention deletes messages: with a purge period shorter than
            // `messaging.idempotency_hours`, a late retry finds its messages gone.
            let record = self
                .store
                .read(|tx| tx.get_message(account_id, &id))?
                .ok_or_else(|| {
                    AppError::conflict(
                        "idempotency_messages_purged",
                        "the messages sent with this Idempotency-Key were deleted under the \
                         account's retention; send again with a new key",
                    )
                })?;
            let m = self.open_message(record, false)?;
            messages.push(AcceptedMessage {
                id: m.id,
                to: m.to,
                status: m.status,
                encoding: m.encoding,
                segments: m.segments,
            });
        }
        Ok(SendOutcome::Replayed(messages))
    }

    /// One message of the caller's account; its body only for a caller holding
    /// `messages:read` (`messages:status` shows the rest).
    pub fn get_message(&self, caller: &Caller, id: &str) -> Result<Message, AppError> {
        let with_body = may_read_messages(caller)?;
        let record = self
            .store
            .read(|tx| tx.get_message(&caller.account_id, id))?
            .ok_or(AppError::NotFound("message"))?;
        self.open_message(record, with_body)
    }

    /// The caller's messages, newest first, filtered and paged; bodies as for `get_message`.
    pub async fn list_messages(
        &self,
        caller: &Caller,
        query: MessageQuery,
    ) -> Result<Page<Message>, AppError> {
        let with_body = may_read_messages(caller)?;
        let limit = page_size(query.limit)?;
        let status = query
            .status
            .map(|s| {
                MessageStatus::parse(&s).ok_or_else(|| {
                    AppError::invalid_filter(
                        "invalid_query",
                        format!("unknown status `{s}`"),
                        "status",
                    )
                })
            })
            .transpose()?;
        let to_index = query
            .to
            .map(|to| {
                PhoneNumber::parse(&to)
                    .map(|n| self.sealer.phone_index(&caller.account_id, n.as_str()))
                    .map_err(|e| AppError::invalid_filter("invalid_query", e.to_string(), "to"))
            })
            .transpose()?;
        let filter = ListFilter {
            status: status.map(MessageStatus::as_str),
            to_index,
            client_ref: query.client_ref,
            created_after: filter_time("created_after", query.created_after)?,
            created_before: filter_time("created_before", query.created_before)?,
            before_id: query.cursor,
            limit: limit + 1,
        };
        let account = caller.account_id.clone();
        let rows = self
            .store
            .read_blocking(move |tx| tx.list_messages(&account, &filter))
            .await?;
        Page::cut(rows, limit, |m| &m.id).try_map(|m| self.open_message(m, with_body))
    }

    /// Cancels a message that has not left the queue (scheduled, or waiting to retry). The
    /// answer shows the whole message only to a caller that may read messages; sending alone
    /// shows its id and status.
    pub async fn cancel_message(&self, caller: &Caller, id: &str) -> Result<Canceled, AppError> {
        caller.require(Scope::MessagesSend)?;
        let now = self.clock.now_ms();
        let (account, msg_id) = (caller.account_id.clone(), id.to_owned());
        let audit = AuditEvent::by(caller, Action::MessageCanceled, id, now);
        let canceled = self
            .write_audited(
                audit,
                move |tx| tx.cancel_message(&account, &msg_id, now),
                |x| *x,
            )
            .await?;
        let record = self
            .store
            .read(|tx| tx.get_message(&caller.account_id, id))?
            .ok_or(AppError::NotFound("message"))?;
        if !canceled {
            return Err(AppError::conflict(
                "not_cancelable",
                format!(
                    "the message is {} and can no longer be canceled",
                    record.status
                ),
            ));
        }
        if caller.scopes.contains(Scope::MessagesRead) {
            return Ok(Canceled::Message(Box::new(
                self.open_message(record, true)?,
            )));
        }
        let status = MessageStatus::parse(&record.status).ok_or_else(|| {
            AppError::Store(crate::store::StoreError::Corrupt(format!(
                "message {} has an unknown status",
                record.id
            )))
        })?;
        Ok(Canceled::Status {
            id: record.id,
            status,
        })
    }

    /// Opens a stored message for its owner; the body only when `with_body` (it is not
    /// decrypted otherwise).
    fn open_message(&self, m: MessageRecord, with_body: bool) -> Result<Message, AppError> {
        let corrupt = |what: &str| {
            AppError::Store(crate::store::StoreError::Corrupt(format!(
                "message {} has an unknown {what}",
                m.id
            )))
        };
        let status = MessageStatus::parse(&m.status).ok_or_else(|| corrupt("status"))?;
        let encoding = Encoding::parse(&m.encoding).ok_or_else(|| corrupt("encoding"))?;
        let to = self
            .sealer
            .open_string(Field::MessageTo, &m.account_id, &m.id, &m.to_sealed)?;
        let body = if with_body && m.body_erased_at.is_none() {
            Some(self.sealer.open_string(
                Field::MessageBody,
                &m.account_id,
                &m.id,
                &m.body_sealed,
            )?)
        } else {
            None
        };
        Ok(Message {
            id: m.id,
            to,
            from: m.sender,
            body,
            body_erased_at: m.body_erased_at,
            status,
            encoding,
            segments: m.segments,
            attempts: m.attempts,
            client_ref: m.client_ref,
            error_code: m.error_code,
            error_detail: m.error_detail,
            created_at: m.created_at,
            updated_at: m.updated_at,
            send_at: m.send_at,
            valid_until: m.valid_until,
            sent_at: m.sent_at,
            completed_at: m.completed_at,
            category: m.category.as_deref().and_then(Category::parse),
        })
    }
}

/// Whether the caller may see messages at all (`messages:read` or `messages:status`), and
/// whether it may see their bodies (`messages:read` only).
fn may_read_messages(caller: &Caller) -> Result<bool, AppError> {
    if caller.scopes.contains(Scope::MessagesRead) {
        return Ok(true);
    }
    caller.require(Scope::MessagesStatus)?;
    Ok(false)
}

fn filter_time(field: &str, value: Option<String>) -> Result<Option<Millis>, AppError> {
    value
        .map(|v| {
            clock::parse_rfc3339(&v).ok_or_else(|| {
                AppError::invalid_filter(
                    "invalid_query",
                    format!("`{field}` must be RFC 3339"),
                    field,
                )
            })
        })
        .transpose()
}

fn parse_recipients(list: &[String], many: bool, max: usize) -> Result<Vec<PhoneNumber>, AppError> {
    if list.is_empty() {
        return Err(AppError::invalid(
            "no_recipients",
            "`to` must name at least one recipient",
            "to",
        ));
    }
    if list.len() > max {
        return Err(AppError::invalid(
            "too_many_recipients",
            format!("at most {max} recipients per request"),
            "to",
        ));
    }
    let mut seen = HashSet::with_capacity(list.len());
    let mut numbers = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let field = if many {
            format!("to[{i}]")
        } else {
            "to".to_owned()
        };
        let number = PhoneNumber::parse(raw)
            .map_err(|e| AppError::invalid("invalid_phone_number", e.to_string(), field.clone()))?;
        if !seen.insert(number.as_str().to_owned()) {
            return Err(AppError::invalid(
                "duplicate_recipient",
                "a recipient appears twice in `to`",
                field,
            ));
        }
        numbers.push(number);
    }
    Ok(numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_requests_and_messages_shows_no_number_or_text() {
        let request = SendRequest {
            to: vec!["+447700900123".into()],
            body: "secret code 845512".into(),
            ..SendRequest::default()
        };
        let message = Message {
            id: "msg_1".into(),
            to: "+447700900123".into(),
            from: "Bank".into(),
            body: Some("secret code 845512".into()),
            body_erased_at: None,
            status: MessageStatus::Queued,
            encoding: Encoding::Gsm7,
            segments: 1,
            attempts: 0,
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
        };
        for shown in [format!("{request:?}"), format!("{message:?}")] {
            assert!(!shown.contains("+447700900123"), "{shown}");
            assert!(!shown.contains("845512"), "{shown}");
        }
    }

    #[test]
    fn idempotency_keys_must_be_visible_ascii_of_at_most_255_characters() {
        assert!(Idempotency::new("order-1234", b"{}").is_ok());
        for bad in ["", "   ", &"k".repeat(256), "caf\u{e9}", "a\u{7}b"] {
            assert!(Idempotency::new(bad, b"{}").is_err(), "{bad:?}");
        }
    }
}
