//! Rate limits against the real server: a key far over its limit gets 429s with Retry-After and
//! its policy, while another key of the account keeps being served promptly (p99 under 50 ms);
//! and an account's own limits, set by the operator and tightened by its admins.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::reply::Reply;

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(4);
/// Requests in flight at once from the flooding key.
const FLOODERS: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_limit_gets_429s_while_another_key_is_served() {
    let app = spawn_app_with(&[
        ("RAMPART_RATE_LIMITS__KEY_PER_SECOND", "50"),
        ("RAMPART_RATE_LIMITS__KEY_BURST", "50"),
    ]);
    let (_, flooder) = app.create_key(&["messages:read"], None).await;
    let (_, quiet) = app.create_key(&["messages:read"], None).await;

    // One key as fast as it can, on connections of its own, for FLOOD: far over 50 a second.
    let started = Instant::now();
    let flood: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let client = app.http1_client();
            let (url, key) = (app.url("/v1/messages?limit=1"), flooder.clone());
            tokio::spawn(async move {
                let (mut ok, mut limited) = (0u32, 0u32);
                while started.elapsed() < FLOOD {
                    let reply = client.get(&url).bearer_auth(&key).send().await.unwrap();
                    match reply.status() {
                        StatusCode::OK => ok += 1,
                        StatusCode::TOO_MANY_REQUESTS => {
                            limited += 1;
                            if limited % 50 == 1 {
                                let headers = reply.headers();
                                let retry: u64 =
                                    headers["retry-after"].to_str().unwrap().parse().unwrap();
                                assert!((1..=2).contains(&retry), "Retry-After {retry}");
                                assert_eq!(headers["ratelimit-policy"], "50;w=1;burst=50");
                                let problem: serde_json::Value = reply.json().await.unwrap();
                                assert_eq!(problem["code"], json!("rate_limited"));
                            }
                        }
                        // The only deliberate 5xx: shedding load.
                        StatusCode::SERVICE_UNAVAILABLE => {}
                        other => panic!("unexpected {other} in the flood"),
                    }
                }
                (ok, limited)
            })
        })
        .collect();
    // Meanwhile the other key, within its limit: 40 a second.
    let quiet_client = app.http1_client();
    let mut waits = Vec::new();
    while started.elapsed() < FLOOD {
        let sent = Instant::now();
        let reply = quiet_client
            .get(app.url("/v1/messages?limit=1"))
            .bearer_auth(&quiet)
            .send()
            .await
            .unwrap();
        waits.push(sent.elapsed());
        assert_eq!(reply.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(25).saturating_sub(sent.elapsed())).await;
    }
    let (mut ok, mut limited) = (0, 0);
    for flooder in flood {
        let (o, l) = flooder.await.unwrap();
        ok += o;
        limited += l;
    }
    // 50 at once and 50 a second after that: about 250 in 4 s, and many times that refused.
    assert!((150..=350).contains(&ok), "{ok} served of the flood");
    assert!(limited >= 4 * ok, "{limited} limited, {ok} served");
    waits.sort();
    assert!(waits.len() >= 100, "{} quiet requests", waits.len());
    let p99 = waits[waits.len() * 99 / 100];
    eprintln!(
        "flood: {ok} served, {limited} refused; the other key: {} requests, p99 {p99:?}",
        waits.len()
    );
    assert!(
        p99 < Duration::from_millis(50),
        "p99 {p99:?} (median {:?}, most {:?})",
        waits[waits.len() / 2],
        waits[waits.len() - 1]
    );
}

async fn put(app: &TestApp, path: &str, key: &str, body: serde_json::Value) -> Reply {
    let bytes = serde_json::to_vec(&body).unwrap();
    app.request(
        reqwest::Method::PUT,
        path,
        key,
        Some((Some("application/json"), bytes)),
        &[],
    )
    .await
}

/// Requests in a row until the first 429 (at most `most`), and that refusal.
async fn served_before_refusal(app: &TestApp, key: &str, most: usize) -> (usize, Option<Reply>) {
    for served in 0..most {
        let reply = app.get("/v1/messages?limit=1", key).await;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => return (served, Some(reply)),
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    (most, None)
}

#[tokio::test]
async fn an_operator_sets_an_accounts_limits_and_its_admins_tighten_them_within() {
    let app = spawn_app();
    let account = app.account_id();
    // The operator gives the account 1 request a second, 3 at once, for all its keys.
    let shown = app.cli(&[
        "account",
        "rate-limits",
        "--account",
        &account,
        "--account-per-second",
        "1",
        "--account-burst",
        "3",
    ]);
    assert!(shown.contains("the account 1/s, bursts of 3"), "{shown}");
    let (served, refusal) = served_before_refusal(&app, &app.key, 10).await;
    assert_eq!(served, 3);
    let refusal = refusal.unwrap();
    refusal.assert_problem(429, "rate_limited");
    assert_eq!(refusal.header("ratelimit-policy"), Some("1;w=1;burst=3"));
    assert!(refusal.header("retry-after").is_some());

    // A new limit counts afresh at once.
    app.cli(&[
        "account",
        "rate-limits",
        "--account",
        &account,
        "--account-per-second",
        "100",
    ]);
    // The account's admin sees the levels, and may tighten but not loosen them.
    let path = format!("/v1/accounts/{account}/rate-limits");
    let limits = app.get(&path, &app.key).await;
    assert_eq!(limits.status, StatusCode::OK, "{}", limits.text);
    let limits = limits.json();
    assert_eq!(
        limits["operator"]["account"],
        json!({"per_second": 100, "burst": 0})
    );
    assert_eq!(
        limits["effective"]["account"],
        json!({"per_second": 100, "burst": 0})
    );
    assert_eq!(limits["operator"]["api_key"], json!(null));
    assert_eq!(
        limits["server"]["api_key"],
        json!({"per_second": 0, "burst": 0})
    );
    put(
        &app,
        &path,
        &app.key,
        json!({"account": {"per_second": 101}}),
    )
    .await
    .assert_problem(403, "rate_limit_escalation");
    put(
        &app,
        &path,
        &app.key,
        json!({"account": {"per_second": -1}}),
    )
    .await
    .assert_problem(422, "invalid_field");
    put(
        &app,
        &path,
        &app.key,
        json!({"account": {"per_second": 1}, "extra": 1}),
    )
    .await
    .assert_problem(422, "invalid_field");
    // Only an operator sets the operator's level.
    let ops_path = format!("/v1/accounts/{account}/operator-rate-limits");
    put(&app, &ops_path, &app.key, json!({}))
        .await
        .assert_problem(403, "insufficient_scope");
    let (_, another) = app.create_key(&["messages:read"], None).await;
    let tighter = put(
        &app,
        &path,
        &app.key,
        json!({"api_key": {"per_second": 1, "burst": 1}}),
    )
    .await;
    assert_eq!(tighter.status, StatusCode::OK, "{}", tighter.text);
    assert_eq!(
        tighter.json()["effective"]["api_key"],
        json!({"per_second": 1, "burst": 1})
    );
    let (served, refusal) = served_before_refusal(&app, &another, 10).await;
    assert_eq!(served, 1, "each key: 1 at once");
    assert_eq!(
        refusal.unwrap().header("ratelimit-policy"),
        Some("1;w=1;burst=1")
    );

    // The operator clears the admins' level and lifts the account's limit: served freely.
    let ops = app.operator_key();
    let cleared = put(&app, &path, &ops, json!({})).await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
    let lifted = put(&app, &ops_path, &ops, json!({"account": {"per_second": 0}})).await;
    assert_eq!(lifted.status, StatusCode::OK, "{}", lifted.text);
    assert_eq!(
        lifted.json()["effective"],
        json!({"api_key": {"per_second": 0, "burst": 0}, "account": {"per_second": 0, "burst": 0}})
    );
    let (served, _) = served_before_refusal(&app, &app.key, 300).await;
    assert_eq!(served, 300, "the account is not limited any more");
    put(
        &app,
        &ops_path,
        &ops,
        json!({"account": {"per_second": 2_000_000}}),
    )
    .await
    .assert_problem(422, "invalid_rate_limit");
}
