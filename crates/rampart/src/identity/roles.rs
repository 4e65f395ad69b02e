//! Roles of people and the one permission matrix: what each role may do, as the scopes it
//! holds. Deny by default (OWASP ASVS 4.0 V4.1.3, least privilege; V4.1.5, fail securely): a
//! role can do what its row names and nothing else. The same table is printed in the docs and
//! served by `GET /v1/roles`.

use std::fmt;

use super::scopes::{Scope, Scopes};

/// A role: of an operator over the whole instance, or of a member within one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Runs the instance: accounts, people, connectors, bans, metrics.
    OperatorAdmin,
    /// Watches the instance: metrics and connector status.
    OperatorViewer,
    /// Everything in the account, including other owners.
    Owner,
    /// Everything in the account except owners' memberships.
    Admin,
    /// API keys and sending; reads messages and inbound.
    Developer,
    /// Spend and usage; reads message status, never bodies.
    Billing,
    /// Reads messages and inbound; no keys, no sending.
    Analyst,
    /// Reads message status only: no bodies, no keys.
    Viewer,
}

/// Whether a role is held over the instance or within an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    Operator,
    Member,
}

use Scope::*;

/// The permission matrix: every role and the scopes it holds. One table, in code.
pub const MATRIX: [(Role, &[Scope]); 8] = [
    (
        Role::OperatorAdmin,
        &[MetricsRead, ConnectorsRead, BansManage, AccountsManage],
    ),
    (Role::OperatorViewer, &[MetricsRead, ConnectorsRead]),
    (
        Role::Owner,
        &[
            MessagesSend,
            MessagesRead,
            MessagesStatus,
            InboundRead,
            KeysManage,
            MembersRead,
            MembersManage,
            AccountManage,
            AuditRead,
            BillingRead,
        ],
    ),
    (
        Role::Admin,
        &[
            MessagesSend,
            MessagesRead,
            MessagesStatus,
            InboundRead,
            KeysManage,
            MembersRead,
            MembersManage,
            AccountManage,
            AuditRead,
            BillingRead,
        ],
    ),
    (
        Role::Developer,
        &[
            MessagesSend,
            MessagesRead,
            MessagesStatus,
            InboundRead,
            KeysManage,
            MembersRead,
        ],
    ),
    (Role::Billing, &[MessagesStatus, MembersRead, BillingRead]),
    (
        Role::Analyst,
        &[MessagesRead, MessagesStatus, InboundRead, MembersRead],
    ),
    (Role::Viewer, &[MessagesStatus, MembersRead]),
];

impl Role {
    pub const ALL: [Role; 8] = [
        Role::OperatorAdmin,
        Role::OperatorViewer,
        Role::Owner,
        Role::Admin,
        Role::Developer,
        Role::Billing,
        Role::Analyst,
        Role::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::OperatorAdmin => "operator-admin",
            Role::OperatorViewer => "operator-viewer",
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Billing => "billing",
            Role::Analyst => "analyst",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }

    pub fn kind(self) -> RoleKind {
        match self {
            Role::OperatorAdmin | Role::OperatorViewer => RoleKind::Operator,
            _ => RoleKind::Member,
        }
    }

    /// The scopes this role holds, from [`MATRIX`].
    pub fn scopes(self) -> Scopes {
        MATRIX
            .iter()
            .find(|(role, _)| *role == self)
            .map(|(_, scopes)| scopes.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether a member holding `self` may give `other` to someone, or change or remove a
    /// member who holds `other`: admins manage everyone but owners; owners manage everyone.
    pub fn may_manage(self, other: Role) -> bool {
        match self {
            Role::Owner => other.kind() == RoleKind::Member,
            Role::Admin => other.kind() == RoleKind::Member && other != Role::Owner,
            _ => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_one_row_and_round_trips_by_name() {
        for role in Role::ALL {
            assert_eq!(MATRIX.iter().filter(|(r, _)| *r == role).count(), 1);
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn server_wide_scopes_belong_to_operator_roles_only() {
        for role in Role::ALL {
            let wide = !role.scopes().server_wide_only().is_empty();
            assert_eq!(wide, role.kind() == RoleKind::Operator, "{role}");
            if role.kind() == RoleKind::Operator {
                assert!(role.scopes().account_only().is_empty(), "{role}");
            }
        }
    }

    #[test]
    fn viewer_and_billing_never_read_bodies_or_manage_keys() {
        for role in [Role::Viewer, Role::Billing] {
            let scopes = role.scopes();
            assert!(!scopes.contains(Scope::MessagesRead));
            assert!(!scopes.contains(Scope::InboundRead));
            assert!(!scopes.contains(Scope::KeysManage));
            assert!(!scopes.contains(Scope::MessagesSend));
        }
        assert!(!Role::Analyst.scopes().contains(Scope::KeysManage));
        assert!(Role::Developer.scopes().contains(Scope::KeysManage));
    }

    #[test]
    fn the_documented_matrix_is_the_matrix_in_code() {
        let doc = include_str!("../../../../docs/identity.md");
        for (role, scopes) in MATRIX {
            let kind = match role.kind() {
                RoleKind::Operator => "operator",
                RoleKind::Member => "member",
            };
            let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            let row = format!("| {role} | {kind} | {} |", names.join(", "));
            assert!(doc.contains(&row), "docs/identity.md lacks the row `{row}`");
        }
    }

    #[test]
    fn admins_cannot_manage_owners_and_owners_manage_every_member() {
        assert!(!Role::Admin.may_manage(Role::Owner));
        assert!(Role::Admin.may_manage(Role::Developer));
        assert!(Role::Owner.may_manage(Role::Owner));
        assert!(!Role::Developer.may_manage(Role::Viewer));
        assert!(!Role::Owner.may_manage(Role::OperatorAdmin));
    }
}
