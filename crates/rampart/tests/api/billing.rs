//! Spend on the real binary: a prepaid account set up with the CLI, sends racing for its
//! balance over HTTPS, settlement by the sandbox's receipts, and the balance equal to the
//! ledger's sum throughout.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{NORMAL_NUMBER, OTHER_NUMBER, TestApp, join_all, rfc3339_from_now, spawn_app};

/// The sandbox number that ends `undelivered`.
const UNDELIVERED_NUMBER: &str = "+15005550003";

/// 0.05 per segment to the UK and to the sandbox's +1500555 numbers; France has no price.
fn prepaid_app(credit: &str) -> TestApp {
    let app = spawn_app();
    let prices = app.data_dir.join("prices.csv");
    std::fs::write(
        &prices,
        "prefix,price_per_segment\n+44,0.05\n+1500555,0.05\n",
    )
    .unwrap();
    let loaded = app.cli(&[
        "billing",
        "prices",
        "load",
        "--file",
        prices.to_str().unwrap(),
    ]);
    assert!(loaded.contains("2 prices loaded"), "{loaded}");
    let account = app.account_id();
    app.cli(&["billing", "enable", "--account", &account]);
    app.cli(&[
        "billing",
        "credit",
        "--account",
        &account,
        "--amount",
        credit,
        "--note",
        "test",
    ]);
    app
}

/// Waits until the running server has read the billing settings the CLI changed (it polls
/// them each second): an unpriced destination is then refused.
async fn wait_until_billed(app: &TestApp) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = app
            .post_json(
                "/v1/messages",
                &app.key,
                &json!({"to": OTHER_NUMBER, "from": "Rampart", "body": "probe"}),
            )
            .await;
        if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(
                reply.problem_code(),
                "no_price_for_destination",
                "{}",
                reply.text
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never saw the account billed: {}",
            reply.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn balance_micros(app: &TestApp) -> i64 {
    let reply = app
        .get(
            &format!("/v1/accounts/{}/balance", app.account_id()),
            &app.key,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["balance_micros"].as_i64().unwrap()
}

/// Every ledger row, following the cursor.
async fn ledger(app: &TestApp) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/v1/accounts/{}/ledger?limit=7{cursor}", app.account_id());
        let page = app.get(&path, &app.key).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let page = page.json();
        rows.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return rows,
        }
    }
}

/// The balance, after checking it equals the ledger's sum.
async fn balanced(app: &TestApp) -> i64 {
    let balance = balance_micros(app).await;
    let rows = ledger(app).await;
    let sum: i64 = rows
        .iter()
        .map(|r| r["amount_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(
        balance, sum,
        "the balance equals the ledger's sum: {rows:?}"
    );
    balance
}

#[tokio::test]
async fn fifty_clients_racing_for_a_balance_that_covers_twenty_messages_get_exactly_twenty_sent() {
    const COVERED: usize = 20;
    const CLIENTS: usize = 50;
    let app = prepaid_app("1.00");
    wait_until_billed(&app).await;
    // Scheduled, so no receipt settles anything while the clients race.
    let body = json!({
        "to": NORMAL_NUMBER, "from": "Rampart", "body": "race",
        "send_at": rfc3339_from_now(time::Duration::hours(1)),
    });
    let clients: Vec<reqwest::Client> = (0..CLIENTS).map(|_| app.http1_client()).collect();
    let url = app.url("/v1/messages");
    let replies = join_all(clients.iter().map(|client| {
        let request = client.post(&url).bearer_auth(&app.key).json(&body);
        async move {
            let reply = request.send().await.unwrap();
            let status = reply.status();
            let problem: Value = reply.json().await.unwrap();
            (status, problem)
        }
    }))
    .await;

    let accepted = replies
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    let refused: Vec<_> = replies
        .iter()
        .filter(|(s, _)| *s == StatusCode::PAYMENT_REQUIRED)
        .collect();
    assert_eq!(accepted, COVERED, "{replies:?}");
    assert_eq!(refused.len(), CLIENTS - COVERED, "{replies:?}");
    for (_, problem) in refused {
        assert_eq!(problem["code"], "insufficient_balance", "{problem}");
    }
    assert_eq!(balanced(&app).await, 0);
    // The probes went to France before the server saw the account billed; count the UK.
    let listed = app
        .get("/v1/messages?to=%2B447911123456&limit=200", &app.key)
        .await
        .json();
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        COVERED,
        "refused sends store nothing"
    );
    let shown = app.cli(&["billing", "balance", "--account", &app.account_id()]);
    assert!(shown.contains("balance 0.00 EUR"), "{shown}");
}

#[tokio::test]
async fn the_sandbox_charges_a_delivered_message_and_releases_an_undelivered_one() {
    let app = prepaid_app("1.00");
    wait_until_billed(&app).await;
    let delivered = app.send_to(NORMAL_NUMBER, "delivered").await;
    app.wait_for_status(&delivered, "delivered").await;
    assert_eq!(balanced(&app).await, 950_000);
    let undelivered = app.send_to(UNDELIVERED_NUMBER, "undelivered").await;
    app.wait_for_status(&undelivered, "undelivered").await;
    assert_eq!(balanced(&app).await, 950_000);
    let kinds: Vec<String> = ledger(&app)
        .await
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["credit", "reservation", "charge", "reservation", "release"]
    );

    // The delivered one can be refunded once; the released one was never charged.
    let refund = |id: &str| format!("/v1/messages/{id}/refund");
    let refunded = app
        .post_json(&refund(&delivered), &app.key, &json!({}))
        .await;
    assert_eq!(refunded.status, StatusCode::OK, "{}", refunded.text);
    assert_eq!(refunded.json()["balance_after"], "1.00");
    let again = app
        .post_json(&refund(&delivered), &app.key, &json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.problem_code(), "already_refunded");
    let never = app
        .post_json(&refund(&undelivered), &app.key, &json!({}))
        .await;
    assert_eq!(never.problem_code(), "not_refundable");
    assert_eq!(balanced(&app).await, 1_000_000);
    let listed = app.cli(&["billing", "ledger", "--account", &app.account_id()]);
    assert_eq!(listed.lines().count(), 6, "{listed}");
}

#[tokio::test]
async fn operators_credit_over_the_api_and_a_bad_price_file_names_its_line() {
    let app = prepaid_app("0.10");
    let account = app.account_id();
    let operator = app.operator_key();
    let path = format!("/v1/accounts/{account}/credits");
    let credited = app
        .post_json(
            &path,
            &operator,
            &json!({"amount": "2.50", "note": "invoice 7"}),
        )
        .await;
    assert_eq!(credited.status, StatusCode::CREATED, "{}", credited.text);
    assert_eq!(credited.json()["balance_after"], "2.60");
    let by_member = app
        .post_json(&path, &app.key, &json!({"amount": "1"}))
        .await;
    assert_eq!(
        by_member.status,
        StatusCode::FORBIDDEN,
        "{}",
        by_member.text
    );
    let bad = app
        .post_json(&path, &operator, &json!({"amount": "1.5.0"}))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.problem_code(), "invalid_amount");
    assert_eq!(balanced(&app).await, 2_600_000);

    let prices = app.data_dir.join("bad.csv");
    std::fs::write(&prices, "prefix,price_per_segment\n+44,0.05\n+33,free\n").unwrap();
    let (ok, _, stderr) = app.cli_output(&[
        "billing",
        "prices",
        "load",
        "--file",
        prices.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("line 3"), "{stderr}");
}
