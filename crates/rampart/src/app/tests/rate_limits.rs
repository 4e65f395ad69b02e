//! An account's rate limits: set by operators, tightened within them by the account's admins,
//! applied on the next request and audited.

use super::*;
use crate::network::rate_limit::{Rate, RateSettings};

fn rate(per_second: u32, burst: u32) -> Option<Rate> {
    Some(Rate { per_second, burst })
}

fn account_limit(per_second: u32, burst: u32) -> RateSettings {
    RateSettings {
        api_key: None,
        account: rate(per_second, burst),
    }
}

/// Whether the caller's next request is refused, and by which limit.
fn refused_by(bench: &Bench, token: &ApiKeyToken) -> Option<&'static str> {
    match bench.authenticate(token) {
        Ok(_) => None,
        Err(AppError::RateLimited(limited)) => Some(limited.scope),
        Err(other) => panic!("unexpected refusal: {other:?}"),
    }
}

#[tokio::test]
async fn an_operators_limit_counts_every_key_of_the_account_and_only_that_account() {
    let bench = Bench::new().await;
    let (first, second) = (
        bench.issue_key(&["messages:read"], None).await,
        bench.issue_key(&["messages:read"], None).await,
    );
    let other_account = bench
        .app
        .create_account(&Actor::Operator, "b")
        .await
        .unwrap()
        .id;
    let other = bench
        .app
        .issue_api_key(
            &Caller::operator(&other_account),
            NewApiKey {
                name: "b".into(),
                scopes: vec!["messages:read".into()],
                expires_at: None,
                allowed_ips: Vec::new(),
                client_cert_sha256: None,
            },
        )
        .await
        .unwrap()
        .token;
    let set = bench
        .app
        .set_account_rate_limits(&Actor::Operator, &bench.account, account_limit(1, 3))
        .await
        .unwrap();
    assert_eq!(set.effective.account, rate(1, 3).unwrap());
    assert_eq!(refused_by(&bench, &first), None);
    assert_eq!(refused_by(&bench, &second), None);
    assert_eq!(refused_by(&bench, &first), None);
    assert_eq!(refused_by(&bench, &second), Some("account"));
    for _ in 0..20 {
        assert_eq!(
            refused_by(&bench, &other),
            None,
            "another account is not limited"
        );
    }
    // Lifted again: the server's (no limit) applies on the next request.
    bench
        .app
        .set_account_rate_limits(&Actor::Operator, &bench.account, RateSettings::default())
        .await
        .unwrap();
    assert_eq!(refused_by(&bench, &second), None);
    let trail = bench.app.audit_trail(Some(&bench.account), 20).unwrap();
    assert_eq!(
        trail
            .iter()
            .filter(|e| e.action == "account.rate_limits")
            .count(),
        2
    );
}

#[tokio::test]
async fn an_admin_tightens_the_limits_within_the_operators_and_no_further() {
    let bench = Bench::new().await;
    bench
        .app
        .set_account_rate_limits(&Actor::Operator, &bench.account, account_limit(10, 20))
        .await
        .unwrap();
    let admin_key = bench.issue_key(&["account:manage"], None).await;
    let admin = bench.authenticate(&admin_key).unwrap();
    for (too_much, what) in [
        (account_limit(11, 0), "a higher rate"),
        (account_limit(10, 21), "a larger burst"),
        (account_limit(0, 0), "no limit"),
    ] {
        let refused = bench
            .app
            .set_member_rate_limits(&admin, &bench.account, too_much)
            .await;
        assert!(
            matches!(
                refused,
                Err(AppError::Forbidden {
                    code: "rate_limit_escalation",
                    ..
                })
            ),
            "{what}: {refused:?}"
        );
    }
    let tighter = RateSettings {
        api_key: rate(1, 1),
        account: rate(5, 5),
    };
    let set = bench
        .app
        .set_member_rate_limits(&admin, &bench.account, tighter)
        .await
        .unwrap();
    assert_eq!(set.effective.api_key, rate(1, 1).unwrap());
    assert_eq!(set.effective.account, rate(5, 5).unwrap());
    assert_eq!(set.operator, account_limit(10, 20));
    // The key limit now holds for the admin's own key too.
    assert_eq!(refused_by(&bench, &admin_key), None);
    assert_eq!(refused_by(&bench, &admin_key), Some("api_key"));
    // The operator's tighter ceiling wins over the admins' setting, which stops counting.
    let lowered = bench
        .app
        .set_account_rate_limits(&Actor::Operator, &bench.account, account_limit(3, 3))
        .await
        .unwrap();
    assert_eq!(lowered.effective.account, rate(3, 3).unwrap());
    assert_eq!(lowered.account, tighter, "kept, for when the ceiling rises");
    // Only operators set the operator's level.
    let refused = bench
        .app
        .set_operator_rate_limits(&admin, &bench.account, RateSettings::default())
        .await;
    assert!(
        matches!(
            refused,
            Err(AppError::Forbidden {
                code: "insufficient_scope",
                ..
            })
        ),
        "{refused:?}"
    );
    let reader = bench.issue_key(&["messages:read"], None).await;
    let reader = bench.authenticate(&reader).unwrap();
    assert!(
        bench
            .app
            .account_rate_limits(&reader, &bench.account)
            .is_err()
    );
}

#[tokio::test]
async fn bad_limits_and_missing_accounts_are_refused() {
    let bench = Bench::new().await;
    let operator = Caller::operator("");
    let huge = bench
        .app
        .set_operator_rate_limits(&operator, &bench.account, account_limit(2_000_000, 0))
        .await;
    assert!(
        matches!(
            huge,
            Err(AppError::Invalid {
                code: "invalid_rate_limit",
                ..
            })
        ),
        "{huge:?}"
    );
    let missing = bench
        .app
        .set_operator_rate_limits(&operator, "acc_missing", account_limit(1, 1))
        .await;
    assert!(
        matches!(missing, Err(AppError::NotFound("account"))),
        "{missing:?}"
    );
    assert!(matches!(
        bench.app.rate_limits_of("acc_missing"),
        Err(AppError::NotFound("account"))
    ));
}
