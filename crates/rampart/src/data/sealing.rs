//! Sealing and opening of personal and secret fields: the one place that knows which field is
//! encrypted under which context, and the only place an encryption context is spelled.
//!
//! A context binds the account, table, column and row id, so a ciphertext copied to another
//! row, column or account fails to open. Ciphertexts written before the account was bound
//! (format 1) carry their format in their first byte and open under the context they were
//! written with, so data directories made by earlier releases stay readable.

use std::sync::Arc;

use super::keyring::{Keyring, KeyringError, LEGACY_CIPHERTEXT_VERSION};
use crate::store::keys::{SealedCell, SealedColumn};

/// A sealed field: which table and column it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `messages.to_sealed`: the recipient of an outbound message.
    MessageTo,
    /// `messages.body_sealed`: the text of an outbound message.
    MessageBody,
    /// `inbound_messages.from_sealed`: the sender of an inbound message.
    InboundFrom,
    /// `inbound_messages.body_sealed`: the text of an inbound message.
    InboundBody,
    /// `connectors.password_sealed`: an SMSC bind password (operator-owned, no account).
    ConnectorPassword,
    /// `users.phone_sealed`: the phone number a person gets codes at (no account).
    UserPhone,
    /// `factors.secret_sealed`: a TOTP secret or a passkey credential (no account).
    FactorSecret,
    /// `challenges.state_sealed`: what a one-time challenge carries (a code's phone number, a
    /// passkey ceremony's state; no account).
    ChallengeState,
    /// `opt_outs.number_sealed`: a number that opted out of an account's messages.
    OptOutNumber,
}

impl Field {
    /// The field stored in `column`.
    pub fn of(column: SealedColumn) -> Self {
        match column {
            SealedColumn::MessageTo => Self::MessageTo,
            SealedColumn::MessageBody => Self::MessageBody,
            SealedColumn::InboundFrom => Self::InboundFrom,
            SealedColumn::InboundBody => Self::InboundBody,
            SealedColumn::ConnectorPassword => Self::ConnectorPassword,
            SealedColumn::UserPhone => Self::UserPhone,
            SealedColumn::FactorSecret => Self::FactorSecret,
            SealedColumn::ChallengeState => Self::ChallengeState,
            SealedColumn::OptOutNumber => Self::OptOutNumber,
        }
    }

    fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            Self::MessageTo => ("messages", "to_sealed"),
            Self::MessageBody => ("messages", "body_sealed"),
            Self::InboundFrom => ("inbound_messages", "from_sealed"),
            Self::InboundBody => ("inbound_messages", "body_sealed"),
            Self::ConnectorPassword => ("connectors", "password_sealed"),
            Self::UserPhone => ("users", "phone_sealed"),
            Self::FactorSecret => ("factors", "secret_sealed"),
            Self::ChallengeState => ("challenges", "state_sealed"),
            Self::OptOutNumber => ("opt_outs", "number_sealed"),
        }
    }

    /// The context of a field of row `row` owned by `account` (empty for operator data).
    fn context(self, account: &str, row: &str) -> Vec<u8> {
        let (table, column) = self.table_and_column();
        // Built by hand rather than with `format!`: two of these are made for every message.
        let parts = [CONTEXT_VERSION, account, table, column, row];
        let mut context = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                context.push(0);
            }
            context.extend_from_slice(part.as_bytes());
        }
        context
    }

    /// The context format-1 ciphertexts were written under (row id only).
    fn legacy_context(self, row: &str) -> Vec<u8> {
        let prefix = match self {
            Self::MessageTo => "to",
            Self::MessageBody => "body",
            Self::InboundFrom => "inbound-from",
            Self::InboundBody => "inbound-body",
            Self::ConnectorPassword => "connector-password",
            Self::UserPhone => "user-phone",
            Self::FactorSecret => "factor-secret",
            Self::ChallengeState => "challenge-state",
            // Written only in format 2; a format-1 ciphertext here is a forgery and fails.
            Self::OptOutNumber => "opt-out-number",
        };
        format!("{prefix}:{row}").into_bytes()
    }
}

/// The first part of every context of format 2.
const CONTEXT_VERSION: &str = "rampart/v2";

/// Blind-index domains: equal values give equal tags within a domain only.
const PHONE_INDEX: &[u8] = b"phone";

/// Seals and opens fields with the keyring; cheap to clone.
#[derive(Clone, Debug)]
pub struct Sealer {
    keyring: Arc<Keyring>,
}

impl Sealer {
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Self { keyring }
    }

    /// Encrypts `plain` for `field` of row `row` in `account`.
    pub fn seal(
        &self,
        field: Field,
        account: &str,
        row: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        self.keyring
            .encrypt(account, plain, &field.context(account, row))
    }

    /// Decrypts what [`Sealer::seal`] (or an earlier release) wrote for that field and row.
    pub fn open(
        &self,
        field: Field,
        account: &str,
        row: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        let context = if sealed.first() == Some(&LEGACY_CIPHERTEXT_VERSION) {
            field.legacy_context(row)
        } else {
            field.context(account, row)
        };
        self.keyring.decrypt(sealed, &context)
    }

    /// Whether `sealed` is bound to its account as well as its row (format 2); earlier
    /// ciphertexts name the row only, so a copy to the same id in another account would open.
    pub fn binds_account(&self, sealed: &[u8]) -> bool {
        sealed.first() != Some(&LEGACY_CIPHERTEXT_VERSION)
    }

    /// [`Sealer::open`] for a UTF-8 field.
    pub fn open_string(
        &self,
        field: Field,
        account: &str,
        row: &str,
        sealed: &[u8],
    ) -> Result<String, KeyringError> {
        String::from_utf8(self.open(field, account, row, sealed)?)
            .map_err(|_| KeyringError::Decrypt)
    }

    /// The blind index of a phone number (E.164) in `account`, shared by outbound recipients
    /// and inbound senders so one filter finds both; another account's tag for the same number
    /// differs.
    pub fn phone_index(&self, account: &str, number: &str) -> [u8; 16] {
        self.keyring
            .blind_index(account, PHONE_INDEX, number.as_bytes())
    }

    /// Seals a stored cell anew under its account's active key, if it is under another one;
    /// `None` when it already is (or is empty: an erased body). A ciphertext of the first
    /// format comes back in the current one, bound to its account too.
    pub fn reseal(
        &self,
        column: SealedColumn,
        cell: &SealedCell,
    ) -> Result<Option<Vec<u8>>, KeyringError> {
        if cell.sealed.is_empty() {
            return Ok(None);
        }
        let current = Keyring::key_id_of(&cell.sealed);
        if current == self.keyring.active_key_of(&cell.account_id)
            && self.binds_account(&cell.sealed)
        {
            return Ok(None);
        }
        let field = Field::of(column);
        let plain =
            zeroize::Zeroizing::new(self.open(field, &cell.account_id, &cell.row, &cell.sealed)?);
        self.seal(field, &cell.account_id, &cell.row, &plain)
            .map(Some)
    }

    /// The keyring behind this sealer (key management).
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// The keyed hash an API key is stored under.
    pub fn hash_api_key(&self, token: &str) -> [u8; 32] {
        self.keyring.hash_api_key(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::keyring::MasterKey;

    fn sealer() -> Sealer {
        let stored = crate::data::keyring::StoredKeys {
            accounts_without_key: vec!["acc_1".into(), "acc_2".into()],
            ..Default::default()
        };
        let (ring, _) = Keyring::open(&MasterKey::from_bytes([7; 32]), &stored, 0).unwrap();
        Sealer::new(Arc::new(ring))
    }

    #[test]
    fn a_sealed_field_opens_only_for_its_account_row_and_column() {
        let s = sealer();
        let sealed = s
            .seal(Field::MessageBody, "acc_1", "msg_1", b"hello")
            .unwrap();
        assert_eq!(
            s.open(Field::MessageBody, "acc_1", "msg_1", &sealed)
                .unwrap(),
            b"hello"
        );
        assert!(
            s.open(Field::MessageBody, "acc_2", "msg_1", &sealed)
                .is_err()
        );
        assert!(
            s.open(Field::MessageBody, "acc_1", "msg_2", &sealed)
                .is_err()
        );
        assert!(s.open(Field::MessageTo, "acc_1", "msg_1", &sealed).is_err());
        assert!(
            s.open(Field::InboundBody, "acc_1", "msg_1", &sealed)
                .is_err()
        );
    }

    #[test]
    fn ciphertexts_of_the_first_format_open_under_their_old_context() {
        let s = sealer();
        let legacy = s
            .keyring
            .encrypt_legacy(b"+447700900123", b"to:msg_9")
            .unwrap();
        assert_eq!(
            s.open_string(Field::MessageTo, "acc_1", "msg_9", &legacy)
                .unwrap(),
            "+447700900123"
        );
        assert!(
            s.open(Field::MessageBody, "acc_1", "msg_9", &legacy)
                .is_err()
        );
        assert!(s.open(Field::MessageTo, "acc_1", "msg_8", &legacy).is_err());
    }

    #[test]
    fn contexts_differ_for_every_field() {
        let fields = [
            Field::MessageTo,
            Field::MessageBody,
            Field::InboundFrom,
            Field::InboundBody,
            Field::ConnectorPassword,
            Field::OptOutNumber,
        ];
        let contexts: std::collections::HashSet<_> =
            fields.iter().map(|f| f.context("a", "r")).collect();
        assert_eq!(contexts.len(), fields.len());
    }
}
