//! Passkeys through the use cases, driven by a software authenticator: registration (step-up,
//! single-use ceremonies, no double registration), sign-in as the second factor with the
//! signature counter kept up to date (a cloned authenticator is refused), and removal.

use secrecy::SecretString;

use super::*;
use crate::app::passkeys::PASSKEY_CEREMONY_TTL_MS;
use crate::app::people::NewUser;
use crate::app::sessions::{Client, NewSession};
use crate::app::sign_in::SignIn;
use crate::identity::passkeys::test_client::{
    SoftClient, clone_of, counting_client, create, get, software_client,
};
use crate::identity::roles::Role;

const ORIGIN: &str = "https://rampart.example.com";
const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple lantern";

struct People {
    app: App,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

impl People {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START);
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.people.public_url = Some(ORIGIN.into());
        let app = App::open_with_clock(config, Arc::new(clock.clone())).unwrap();
        let account = app.create_account(&Actor::Operator, "a").await.unwrap().id;
        app.create_user(
            &Caller::operator(&account),
            NewUser {
                email: EMAIL.into(),
                name: "Ada".into(),
                password: Some(PASSWORD.into()),
                role: Role::Owner,
                account: Some(account.clone()),
            },
        )
        .await
        .unwrap();
        Self {
            app,
            clock,
            _dir: dir,
        }
    }

    async fn password_step(&self) -> SignIn {
        self.app
            .sign_in(EMAIL, SecretString::from(PASSWORD), &Client::default())
            .await
            .unwrap()
    }

    async fn signed_in(&self) -> Caller {
        let SignIn::Done(session) = self.password_step().await else {
            panic!("a second factor was asked for");
        };
        self.caller(&session)
    }

    fn caller(&self, session: &NewSession) -> Caller {
        self.app
            .authenticate_session(
                session.token.reveal(),
                Some(&session.csrf_token),
                true,
                None,
                None,
            )
            .unwrap()
    }

    async fn register(&self, caller: &Caller, client: &mut SoftClient, name: &str) -> String {
        let ceremony = self
            .app
            .start_passkey_registration(caller, name)
            .await
            .unwrap();
        let response = create(client, ORIGIN, ceremony.options).await.unwrap();
        self.app
            .finish_passkey_registration(caller, &ceremony.ceremony_id, &response.to_string())
            .await
            .unwrap()
            .id
    }

    /// The password step, which must ask for a passkey: the pending sign-in token.
    async fn pending(&self) -> String {
        match self.password_step().await {
            SignIn::SecondFactor {
                pending, factors, ..
            } => {
                assert!(factors.contains(&"passkey"), "{factors:?}");
                pending.reveal().to_owned()
            }
            SignIn::Done(_) => panic!("signed in without a second factor"),
        }
    }

    async fn passkey_step(
        &self,
        pending: &str,
        client: &mut SoftClient,
    ) -> Result<NewSession, AppError> {
        let ceremony = self.app.start_passkey_sign_in(pending).await?;
        let response = get(client, ORIGIN, ceremony.options).await.unwrap();
        self.app
            .finish_passkey_sign_in(pending, &response.to_string(), &Client::default())
            .await
    }
}

#[tokio::test]
async fn a_registered_passkey_completes_the_sign_in_and_a_cloned_authenticator_is_refused() {
    let people = People::new().await;
    let caller = people.signed_in().await;
    let mut client = counting_client();
    let id = people.register(&caller, &mut client, "Laptop").await;
    let listed = people.app.list_passkeys(&caller).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].name.as_str()),
        (id.as_str(), "Laptop")
    );
    let trail = people.app.audit_trail(None, 20).unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.action == "factor.add" && e.target == id),
        "{trail:?}"
    );

    let mut clone = clone_of(&client);
    let pending = people.pending().await;
    let session = people.passkey_step(&pending, &mut client).await.unwrap();
    people.caller(&session);
    // The pending sign-in is used up.
    assert!(matches!(
        people.app.start_passkey_sign_in(&pending).await,
        Err(AppError::SignInRefused)
    ));

    // The stored counter moved on with the first login, so a copy of the key that answers
    // with the same counter is caught.
    let pending = people.pending().await;
    assert!(matches!(
        people.passkey_step(&pending, &mut clone).await,
        Err(AppError::SignInRefused)
    ));
    assert!(people.passkey_step(&pending, &mut client).await.is_ok());
}

#[tokio::test]
async fn a_response_to_another_challenge_is_refused_and_counts_as_a_wrong_factor() {
    let people = People::new().await;
    let caller = people.signed_in().await;
    let mut client = software_client();
    people.register(&caller, &mut client, "Laptop").await;

    let pending = people.pending().await;
    let first = people.app.start_passkey_sign_in(&pending).await.unwrap();
    let stale = get(&mut client, ORIGIN, first.options).await.unwrap();
    // A new start replaces the ceremony the response was made for.
    people.app.start_passkey_sign_in(&pending).await.unwrap();
    assert!(matches!(
        people
            .app
            .finish_passkey_sign_in(&pending, &stale.to_string(), &Client::default())
            .await,
        Err(AppError::SignInRefused)
    ));
    // A finish without a start, and garbage, are wrong factors too: the third ends the
    // pending sign-in.
    assert!(matches!(
        people
            .app
            .finish_passkey_sign_in(&pending, "{}", &Client::default())
            .await,
        Err(AppError::SignInRefused)
    ));
    let ceremony = people.app.start_passkey_sign_in(&pending).await.unwrap();
    assert!(matches!(
        people
            .app
            .finish_passkey_sign_in(&pending, "{}", &Client::default())
            .await,
        Err(AppError::SignInRefused)
    ));
    let late = get(&mut client, ORIGIN, ceremony.options).await.unwrap();
    assert!(matches!(
        people
            .app
            .finish_passkey_sign_in(&pending, &late.to_string(), &Client::default())
            .await,
        Err(AppError::SignInRefused)
    ));
    assert!(matches!(
        people.app.start_passkey_sign_in(&pending).await,
        Err(AppError::SignInRefused)
    ));
}

#[tokio::test]
async fn registration_needs_a_recent_password_answers_once_and_refuses_a_second_copy() {
    let people = People::new().await;
    let caller = people.signed_in().await;
    let mut client = software_client();

    // A ceremony answers once, and only its person.
    let ceremony = people
        .app
        .start_passkey_registration(&caller, "Laptop")
        .await
        .unwrap();
    let response = create(&mut client, ORIGIN, ceremony.options)
        .await
        .unwrap()
        .to_string();
    let other = Caller::operator("acc_other");
    assert!(
        people
            .app
            .finish_passkey_registration(&other, &ceremony.ceremony_id, &response)
            .await
            .is_err()
    );
    people
        .app
        .finish_passkey_registration(&caller, &ceremony.ceremony_id, &response)
        .await
        .unwrap();
    let again = people
        .app
        .finish_passkey_registration(&caller, &ceremony.ceremony_id, &response)
        .await;
    assert!(
        matches!(
            &again,
            Err(AppError::Invalid {
                code: "invalid_ceremony",
                ..
            })
        ),
        "{again:?}"
    );

    // The authenticator already registered is excluded (it declines, as a browser would).
    let ceremony = people
        .app
        .start_passkey_registration(&caller, "Laptop again")
        .await
        .unwrap();
    assert!(create(&mut client, ORIGIN, ceremony.options).await.is_err());

    // Names are checked.
    assert!(matches!(
        people.app.start_passkey_registration(&caller, " \n ").await,
        Err(AppError::Invalid {
            code: "invalid_name",
            ..
        })
    ));

    // An expired ceremony is refused, and so is a start once the step-up window has passed.
    let ceremony = people
        .app
        .start_passkey_registration(&caller, "Phone")
        .await
        .unwrap();
    let mut phone = software_client();
    let response = create(&mut phone, ORIGIN, ceremony.options).await.unwrap();
    people.clock.advance(PASSKEY_CEREMONY_TTL_MS + 1);
    let expired = people
        .app
        .finish_passkey_registration(&caller, &ceremony.ceremony_id, &response.to_string())
        .await;
    assert!(
        matches!(
            &expired,
            Err(AppError::Invalid {
                code: "invalid_ceremony",
                ..
            })
        ),
        "{expired:?}"
    );
    people.clock.advance(crate::app::REAUTHENTICATION_WINDOW_MS);
    assert!(matches!(
        people
            .app
            .start_passkey_registration(&caller, "Phone")
            .await,
        Err(AppError::Forbidden {
            code: "reauthentication_required",
            ..
        })
    ));
    assert_eq!(people.app.list_passkeys(&caller).unwrap().len(), 1);
}

#[tokio::test]
async fn a_removed_passkey_no_longer_signs_in_even_in_a_ceremony_begun_before() {
    let people = People::new().await;
    let caller = people.signed_in().await;
    let mut client = software_client();
    let mut spare = software_client();
    let id = people.register(&caller, &mut client, "Laptop").await;
    people.register(&caller, &mut spare, "Spare").await;

    let pending = people.pending().await;
    let ceremony = people.app.start_passkey_sign_in(&pending).await.unwrap();
    let response = get(&mut client, ORIGIN, ceremony.options).await.unwrap();
    people.app.remove_passkey(&caller, &id).await.unwrap();
    assert!(matches!(
        people.app.remove_passkey(&caller, &id).await,
        Err(AppError::NotFound("passkey"))
    ));
    assert!(matches!(
        people
            .app
            .finish_passkey_sign_in(&pending, &response.to_string(), &Client::default())
            .await,
        Err(AppError::SignInRefused)
    ));
    // The next ceremony no longer offers it.
    let ceremony = people.app.start_passkey_sign_in(&pending).await.unwrap();
    assert!(get(&mut client, ORIGIN, ceremony.options).await.is_err());
    assert!(people.passkey_step(&pending, &mut spare).await.is_ok());
    let trail = people.app.audit_trail(None, 50).unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.action == "factor.remove" && e.target == id),
        "{trail:?}"
    );
}
