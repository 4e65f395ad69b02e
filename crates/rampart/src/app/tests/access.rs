//! Address rules: per-key and per-account allowlists, the denylist, trusted proxies, and what a
//! key may hand on.

use std::net::IpAddr;

use super::*;

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

async fn key_with_networks(
    bench: &Bench,
    caller: &Caller,
    networks: &[&str],
) -> Result<ApiKeyToken, AppError> {
    bench
        .app
        .issue_api_key(
            caller,
            NewApiKey {
                name: "restricted".into(),
                scopes: vec!["messages:read".into(), "keys:manage".into()],
                expires_at: None,
                allowed_ips: networks.iter().map(|n| (*n).to_owned()).collect(),
                client_cert_sha256: None,
            },
        )
        .await
        .map(|issued| issued.token)
}

/// The audit trail, once the refusal written in the background has landed (bounded wait).
async fn refusals(bench: &Bench) -> Vec<String> {
    for _ in 0..200 {
        let trail = bench.app.audit_trail(Some(&bench.account), 50).unwrap();
        let found: Vec<String> = trail
            .into_iter()
            .filter(|e| e.action == "request.refused")
            .map(|e| format!("{} {}", e.outcome, e.client_ip.unwrap_or_default()))
            .collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Vec::new()
}

#[tokio::test]
async fn a_key_limited_to_a_network_is_refused_from_elsewhere_and_the_refusal_is_audited() {
    let bench = Bench::new().await;
    let token = key_with_networks(&bench, &bench.operator(), &["10.1.0.0/16"])
        .await
        .unwrap();
    assert!(
        bench
            .app
            .authenticate(Some(token.reveal()), ip("10.1.2.3"))
            .is_ok()
    );
    let refused = bench.app.authenticate(Some(token.reveal()), ip("10.2.0.1"));
    assert!(
        matches!(
            refused,
            Err(AppError::Forbidden {
                code: "ip_not_allowed",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        refusals(&bench).await,
        vec!["denied:ip_not_allowed 10.2.0.1".to_owned()]
    );
}

#[tokio::test]
async fn an_account_allowlist_binds_every_key_of_the_account_at_once() {
    let bench = Bench::new().await;
    let token = bench.issue_key(&["messages:read"], None).await;
    assert!(
        bench
            .app
            .authenticate(Some(token.reveal()), ip("198.51.100.7"))
            .is_ok()
    );
    bench
        .app
        .set_account_allowed_ips(&Actor::Operator, &bench.account, &["203.0.113.0/24".into()])
        .await
        .unwrap();
    let refused = bench
        .app
        .authenticate(Some(token.reveal()), ip("198.51.100.7"));
    assert!(matches!(
        refused,
        Err(AppError::Forbidden {
            code: "ip_not_allowed",
            ..
        })
    ));
    assert!(
        bench
            .app
            .authenticate(Some(token.reveal()), ip("203.0.113.9"))
            .is_ok()
    );
    // Cleared: any address again.
    bench
        .app
        .set_account_allowed_ips(&Actor::Operator, &bench.account, &[])
        .await
        .unwrap();
    assert!(
        bench
            .app
            .authenticate(Some(token.reveal()), ip("198.51.100.7"))
            .is_ok()
    );
    assert!(
        bench
            .app
            .set_account_allowed_ips(&Actor::Operator, &bench.account, &["not a network".into()])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_key_cannot_hand_on_addresses_it_may_not_use_itself() {
    let bench = Bench::new().await;
    let parent = key_with_networks(&bench, &bench.operator(), &["10.0.0.0/8"])
        .await
        .unwrap();
    let caller = bench
        .app
        .authenticate(Some(parent.reveal()), ip("10.0.0.1"))
        .unwrap();
    let wider = key_with_networks(&bench, &caller, &["0.0.0.0/0"]).await;
    assert!(matches!(
        wider,
        Err(AppError::Forbidden {
            code: "allowlist_escalation",
            ..
        })
    ));
    let narrower = key_with_networks(&bench, &caller, &["10.9.0.0/16"])
        .await
        .unwrap();
    assert!(
        bench
            .app
            .authenticate(Some(narrower.reveal()), ip("10.8.0.1"))
            .is_err()
    );
    // Without a list of its own, the child inherits the parent's.
    let inherited = key_with_networks(&bench, &caller, &[]).await.unwrap();
    assert!(
        bench
            .app
            .authenticate(Some(inherited.reveal()), ip("192.0.2.1"))
            .is_err()
    );
    assert!(
        bench
            .app
            .authenticate(Some(inherited.reveal()), ip("10.3.3.3"))
            .is_ok()
    );
}

#[tokio::test]
async fn denied_addresses_are_refused_even_with_a_valid_key_and_proxies_name_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.network.denied_ips = vec!["192.0.2.0/24".into()];
    config.network.trusted_proxies = vec!["10.0.0.1".into()];
    let app = App::open(config).unwrap();
    let account = app.create_account(&Actor::Operator, "a").await.unwrap().id;
    let issued = app
        .issue_api_key(
            &Caller::operator(&account),
            NewApiKey {
                name: "k".into(),
                scopes: vec!["messages:read".into()],
                expires_at: None,
                allowed_ips: Vec::new(),
                client_cert_sha256: None,
            },
        )
        .await
        .unwrap();
    let denied = app.authenticate(Some(issued.token.reveal()), ip("192.0.2.50"));
    assert!(matches!(
        denied,
        Err(AppError::Forbidden {
            code: "ip_denied",
            ..
        })
    ));
    assert!(
        app.authenticate(Some(issued.token.reveal()), ip("198.51.100.1"))
            .is_ok()
    );
    // Behind the trusted proxy the forwarded address counts; from anyone else it is ignored.
    let proxy: IpAddr = "10.0.0.1".parse().unwrap();
    assert_eq!(
        app.client_ip(proxy, Some("192.0.2.50")),
        "192.0.2.50".parse::<IpAddr>().unwrap()
    );
    let other: IpAddr = "10.0.0.2".parse().unwrap();
    assert_eq!(app.client_ip(other, Some("192.0.2.50")), other);
}

#[tokio::test]
async fn operators_act_over_the_instance_only_from_the_operators_networks() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.network.operator_allowed_ips = vec!["10.9.0.0/16".into()];
    let app = App::open(config).unwrap();
    let account = app.create_account(&Actor::Operator, "a").await.unwrap().id;
    let key = |caller: Caller, scopes: &[&str]| {
        let app = &app;
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        async move {
            app.issue_api_key(
                &caller,
                NewApiKey {
                    name: "k".into(),
                    scopes,
                    expires_at: None,
                    allowed_ips: Vec::new(),
                    client_cert_sha256: None,
                },
            )
            .await
            .unwrap()
            .token
        }
    };
    let operator = key(Caller::operator(""), &["bans:manage"]).await;
    let tenant = key(Caller::operator(&account), &["messages:read"]).await;

    assert!(
        app.authenticate(Some(operator.reveal()), ip("10.9.1.1"))
            .is_ok()
    );
    let refused = app.authenticate(Some(operator.reveal()), ip("198.51.100.7"));
    assert!(
        matches!(
            refused,
            Err(AppError::Forbidden {
                code: "ip_not_allowed",
                ..
            })
        ),
        "{refused:?}"
    );
    // The operators' list does not bind an account's keys.
    assert!(
        app.authenticate(Some(tenant.reveal()), ip("198.51.100.7"))
            .is_ok()
    );

    // The refusal is in the instance's trail, with the address it came from.
    let mut found = Vec::new();
    for _ in 0..200 {
        found = app
            .audit_trail(None, 50)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "request.refused")
            .map(|e| format!("{} {}", e.outcome, e.client_ip.unwrap_or_default()))
            .collect();
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(found, vec!["denied:ip_not_allowed 198.51.100.7"]);
}

#[tokio::test]
async fn only_an_operator_sets_an_accounts_operator_allowlist_over_the_api() {
    let bench = Bench::new().await;
    let operator = Caller::operator("");
    let set = bench
        .app
        .set_operator_allowed_ips(&operator, &bench.account, &["10.1.0.0/16".into()])
        .await
        .unwrap();
    assert_eq!(set.operator.names(), vec!["10.1.0.0/16"]);
    // An account's own admin key holds `account:manage`, never the server-wide scope.
    let admin_key = bench.issue_key(&["account:manage"], None).await;
    let admin = bench
        .app
        .authenticate(Some(admin_key.reveal()), None)
        .unwrap();
    let in_account = bench
        .app
        .set_operator_allowed_ips(&admin, &bench.account, &[])
        .await;
    assert!(
        matches!(
            in_account,
            Err(AppError::Forbidden {
                code: "insufficient_scope",
                ..
            })
        ),
        "{in_account:?}"
    );
    let bad = bench
        .app
        .set_operator_allowed_ips(&operator, &bench.account, &["10.1.0.0/99".into()])
        .await;
    assert!(
        matches!(
            bad,
            Err(AppError::Invalid {
                code: "invalid_allowed_ips",
                ..
            })
        ),
        "{bad:?}"
    );
    let missing = bench
        .app
        .set_operator_allowed_ips(&operator, "acc_missing", &[])
        .await;
    assert!(
        matches!(missing, Err(AppError::NotFound("account"))),
        "{missing:?}"
    );
    let trail = bench.app.audit_trail(Some(&bench.account), 20).unwrap();
    assert!(trail.iter().any(|e| e.action == "account.allowed_ips"));
}
