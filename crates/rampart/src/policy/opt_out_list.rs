//! Opt-outs as the send path sees them: for each account, the blind-index tags of numbers that
//! asked for no more messages, from the whole account or from one sender. Pure data, no I/O:
//! the application keeps a copy in step with the store and asks it once per recipient.

use std::collections::HashMap;

/// Which messages an opt-out stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutScope {
    /// Every message of the account.
    Account,
    /// Messages from the one sender (our number) the keyword was sent to.
    PerSender,
}

impl OptOutScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::PerSender => "per_sender",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "account" => Some(Self::Account),
            "per_sender" => Some(Self::PerSender),
            _ => None,
        }
    }
}

/// Every account's opt-outs: account → number tag → senders (empty string: the whole account).
#[derive(Debug, Default, Clone)]
pub struct OptOutList {
    accounts: HashMap<String, HashMap<Vec<u8>, Vec<String>>>,
}

impl OptOutList {
    /// A list of `(account, tag, sender)`, sender empty for the whole account.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, Vec<u8>, String)>) -> Self {
        let mut list = Self::default();
        for (account, tag, sender) in entries {
            list.add(&account, &tag, &sender);
        }
        list
    }

    pub fn add(&mut self, account: &str, tag: &[u8], sender: &str) {
        let senders = self
            .accounts
            .entry(account.to_owned())
            .or_default()
            .entry(tag.to_vec())
            .or_default();
        if !senders.iter().any(|s| s == sender) {
            senders.push(sender.to_owned());
        }
    }

    /// Forgets the number's opt-outs: with `sender`, that sender's and the account-wide one;
    /// without, all.
    pub fn remove(&mut self, account: &str, tag: &[u8], sender: Option<&str>) {
        let Some(tags) = self.accounts.get_mut(account) else {
            return;
        };
        if let Some(senders) = tags.get_mut(tag) {
            match sender {
                Some(sender) => senders.retain(|s| !s.is_empty() && s != sender),
                None => senders.clear(),
            }
            if senders.is_empty() {
                tags.remove(tag);
            }
        }
        if tags.is_empty() {
            self.accounts.remove(account);
        }
    }

    /// Whether a message from `sender` to the number tagged `tag` is refused.
    pub fn refuses(&self, account: &str, tag: &[u8], sender: &str) -> bool {
        self.accounts
            .get(account)
            .and_then(|tags| tags.get(tag))
            .is_some_and(|senders| senders.iter().any(|s| s.is_empty() || s == sender))
    }

    /// How many opt-outs are held.
    pub fn len(&self) -> usize {
        self.accounts
            .values()
            .flat_map(HashMap::values)
            .map(Vec::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_wide_opt_out_refuses_every_sender_of_that_account_only() {
        let list = OptOutList::from_entries([("acc_1".into(), b"tag".to_vec(), String::new())]);
        assert!(list.refuses("acc_1", b"tag", "Rampart"));
        assert!(list.refuses("acc_1", b"tag", "+447700900001"));
        assert!(!list.refuses("acc_2", b"tag", "Rampart"));
        assert!(!list.refuses("acc_1", b"other", "Rampart"));
    }

    #[test]
    fn a_per_sender_opt_out_refuses_that_sender_only_until_removed() {
        let mut list = OptOutList::default();
        list.add("acc_1", b"tag", "12345");
        assert!(list.refuses("acc_1", b"tag", "12345"));
        assert!(!list.refuses("acc_1", b"tag", "67890"));
        list.add("acc_1", b"tag", "");
        assert_eq!(list.len(), 2);
        list.remove("acc_1", b"tag", Some("67890"));
        assert!(
            list.refuses("acc_1", b"tag", "12345"),
            "another sender's stays"
        );
        assert!(
            !list.refuses("acc_1", b"tag", "67890"),
            "the account-wide one went"
        );
        list.remove("acc_1", b"tag", None);
        assert!(list.is_empty());
    }
}
