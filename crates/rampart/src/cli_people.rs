//! `rampart user|member`: people, administered by the local operator through the same use cases
//! as the API (and audited the same way).

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::Subcommand;
use rampart::app::people::NewUser;
use rampart::app::sessions::Client;
use rampart::app::{App, Caller};
use rampart::clock;
use rampart::identity::roles::Role;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a person: an operator (--role operator-admin|operator-viewer) or a member of an
    /// account (--role owner|admin|developer|billing|analyst|viewer --account ID). Without
    /// --password-stdin, prints a one-time token for them to set a password with.
    Create {
        #[arg(long)]
        email: String,
        /// Display name (default: the part of the email before `@`).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        role: String,
        /// The account a member joins (may be omitted when there is only one).
        #[arg(long)]
        account: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List people.
    List,
    /// Disable a person: their sessions and keys stop working on the next request.
    Disable { id: String },
    /// Enable a disabled person again.
    Enable { id: String },
    /// Print a one-time password reset token for a person (it also lifts a lock after failed
    /// sign-ins once used).
    ResetLink {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
pub enum MemberCommand {
    /// List an account's members.
    List {
        #[arg(long)]
        account: Option<String>,
    },
    /// Invite a person to an account; prints the one-time invitation token.
    Invite {
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Change a member's role.
    Role {
        #[arg(long)]
        account: Option<String>,
        /// The member's user id.
        user: String,
        role: String,
    },
    /// Remove a member from an account.
    Remove {
        #[arg(long)]
        account: Option<String>,
        /// The member's user id.
        user: String,
    },
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (12 to 128 characters): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

pub async fn run_user(app: &App, command: UserCommand) -> anyhow::Result<()> {
    let operator = Caller::operator(String::new());
    match command {
        UserCommand::Create {
            email,
            name,
            role,
            account,
            password_stdin,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!("unknown role `{role}`; roles: operator-admin, operator-viewer, owner, admin, developer, billing, analyst, viewer")
            })?;
            let name =
                name.unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
            let password = password_stdin.then(read_password).transpose()?;
            let created = app
                .create_user(
                    &operator,
                    NewUser {
                        email,
                        name,
                        password,
                        role,
                        account,
                    },
                )
                .await?;
            println!("{}", created.user.id);
            if let Some(link) = created.link {
                eprintln!(
                    "{} sets a password with this one-time token (POST /v1/auth/password-reset/complete), valid 7 days:",
                    created.user.email
                );
                println!("{}", link.reveal());
            }
        }
        UserCommand::List => {
            for user in app.list_users(&operator)? {
                let state = if user.disabled_at.is_some() {
                    "disabled"
                } else if user.locked_at.is_some() {
                    "locked"
                } else if user.password_hash.is_none() {
                    "invited"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{}\t{}\t{state}\t{}",
                    user.id,
                    user.email,
                    user.name,
                    user.operator_role.as_deref().unwrap_or("-"),
                    clock::rfc3339(user.created_at)
                );
            }
        }
        UserCommand::Disable { id } => {
            app.set_user_disabled(&operator, &id, true).await?;
            println!("disabled {id}");
        }
        UserCommand::Enable { id } => {
            app.set_user_disabled(&operator, &id, false).await?;
            println!("enabled {id}");
        }
        UserCommand::ResetLink { email } => {
            let token = app
                .request_password_reset(&email, &Client::default())
                .await?
                .with_context(|| format!("no active person with email {email}"))?;
            eprintln!("One-time reset token for {email}, valid one hour:");
            println!("{}", token.reveal());
        }
    }
    Ok(())
}

pub async fn run_member(app: &App, command: MemberCommand) -> anyhow::Result<()> {
    match command {
        MemberCommand::List { account } => {
            let account = app.account_or_only(account.as_deref())?;
            let caller = Caller::operator(account.clone());
            for member in app.list_members(&caller, &account)? {
                println!(
                    "{}\t{}\t{}\t{}",
                    member.user.id, member.user.email, member.membership.role, member.user.name
                );
            }
        }
        MemberCommand::Invite {
            account,
            email,
            role,
        } => {
            let account = app.account_or_only(account.as_deref())?;
            let caller = Caller::operator(account.clone());
            let invitation = app.invite_member(&caller, &account, &email, &role).await?;
            eprintln!(
                "Invitation for {email} as {role} (POST /v1/auth/invitations/accept), valid until {}:",
                clock::rfc3339(invitation.expires_at)
            );
            println!("{}", invitation.token.reveal());
        }
        MemberCommand::Role {
            account,
            user,
            role,
        } => {
            let account = app.account_or_only(account.as_deref())?;
            let caller = Caller::operator(account.clone());
            app.change_member_role(&caller, &account, &user, &role)
                .await?;
            println!("{user} is now {role} in {account}");
        }
        MemberCommand::Remove { account, user } => {
            let account = app.account_or_only(account.as_deref())?;
            let caller = Caller::operator(account.clone());
            app.remove_member(&caller, &account, &user).await?;
            println!("removed {user} from {account}");
        }
    }
    Ok(())
}
