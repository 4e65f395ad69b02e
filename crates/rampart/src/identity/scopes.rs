//! Scopes: the named permissions an API key carries.

use std::fmt;

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Send messages and cancel scheduled ones.
    MessagesSend,
    /// Read messages and their status.
    MessagesRead,
    /// Create, list and revoke the account's API keys.
    KeysManage,
    /// Scrape Prometheus metrics.
    MetricsRead,
    /// Read inbound messages sent to the account's numbers, and list those numbers.
    InboundRead,
    /// Read every connector's status (server-wide: for operators only).
    ConnectorsRead,
    /// List and lift bans of client addresses (server-wide: for operators only).
    BansManage,
    /// Read messages' status and metadata, never their bodies.
    MessagesStatus,
    /// List the account's members and their roles.
    MembersRead,
    /// Invite members, change their roles, remove them.
    MembersManage,
    /// Change the account's settings: allowlists, two-factor and password policies.
    AccountManage,
    /// Create accounts and manage people across the instance (server-wide: operators only).
    AccountsManage,
    /// Read the account's audit trail (`GET /v1/audit-events`).
    AuditRead,
    /// Read the account's balance and ledger.
    BillingRead,
}

impl Scope {
    pub const ALL: [Scope; 14] = [
        Scope::MessagesSend,
        Scope::MessagesRead,
        Scope::MessagesStatus,
        Scope::InboundRead,
        Scope::KeysManage,
        Scope::MembersRead,
        Scope::MembersManage,
        Scope::AccountManage,
        Scope::AuditRead,
        Scope::BillingRead,
        Scope::MetricsRead,
        Scope::ConnectorsRead,
        Scope::BansManage,
        Scope::AccountsManage,
    ];

    /// Scopes over the whole instance rather than one account: they belong to operators'
    /// keys only, never to an account's.
    pub fn is_server_wide(self) -> bool {
        matches!(
            self,
            Scope::MetricsRead | Scope::ConnectorsRead | Scope::BansManage | Scope::AccountsManage
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MessagesSend => "messages:send",
            Scope::MessagesRead => "messages:read",
            Scope::KeysManage => "keys:manage",
            Scope::MetricsRead => "metrics:read",
            Scope::InboundRead => "inbound:read",
            Scope::ConnectorsRead => "connectors:read",
            Scope::BansManage => "bans:manage",
            Scope::MessagesStatus => "messages:status",
            Scope::MembersRead => "members:read",
            Scope::MembersManage => "members:manage",
            Scope::AccountManage => "account:manage",
            Scope::AccountsManage => "accounts:manage",
            Scope::AuditRead => "audit:read",
            Scope::BillingRead => "billing:read",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u32);

/// A scope name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scope `{0}`; known scopes: messages:send, messages:read, messages:status, \
     inbound:read, keys:manage, members:read, members:manage, account:manage, audit:read, \
     billing:read, metrics:read, connectors:read, bans:manage, accounts:manage"
)]
pub struct UnknownScope(pub String);

impl Scopes {
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Every scope of `other` is also in `self`.
    pub fn covers(self, other: Scopes) -> bool {
        other.0 & !self.0 == 0
    }

    /// Only the scopes of one account (the server-wide ones removed).
    pub fn account_only(self) -> Self {
        self.iter().filter(|s| !s.is_server_wide()).collect()
    }

    /// Only the server-wide scopes.
    pub fn server_wide_only(self) -> Self {
        self.iter().filter(|s| s.is_server_wide()).collect()
    }

    /// The scopes held by either.
    pub fn union(self, other: Scopes) -> Self {
        Scopes(self.0 | other.0)
    }

    /// The scopes held by both.
    pub fn intersect(self, other: Scopes) -> Self {
        Scopes(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }

    /// Parses names (as given in a request or the CLI); `*` means every scope.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownScope> {
        let mut scopes = Scopes::default();
        for name in names {
            let name = name.trim();
            if name == "*" {
                scopes = Scopes::all();
            } else {
                scopes.0 |= Scope::parse(name)
                    .ok_or_else(|| UnknownScope(name.to_owned()))?
                    .bit();
            }
        }
        Ok(scopes)
    }

    /// The stored form: names separated by spaces.
    pub fn to_stored(self) -> String {
        self.names().join(" ")
    }

    /// Reads the stored form; names that no longer exist grant nothing.
    pub fn from_stored(s: &str) -> Self {
        s.split_whitespace().filter_map(Scope::parse).collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Scopes(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_stored_form() {
        let scopes = Scopes::parse(["messages:send", "keys:manage"]).unwrap();
        assert_eq!(Scopes::from_stored(&scopes.to_stored()), scopes);
        assert!(scopes.contains(Scope::MessagesSend));
        assert!(!scopes.contains(Scope::MessagesRead));
    }

    #[test]
    fn unknown_scopes_are_refused_and_star_means_all() {
        assert_eq!(
            Scopes::parse(["messages:delete"]),
            Err(UnknownScope("messages:delete".into()))
        );
        assert_eq!(Scopes::parse(["*"]).unwrap(), Scopes::all());
    }

    #[test]
    fn covers_means_superset() {
        let all = Scopes::all();
        let send = Scopes::parse(["messages:send"]).unwrap();
        assert!(all.covers(send));
        assert!(!send.covers(all));
    }
}
