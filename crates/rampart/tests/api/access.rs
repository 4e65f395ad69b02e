//! Address rules against the real server: keys and accounts limited to networks, tried from two
//! loopback addresses (127.0.0.1 and 127.0.0.2), and client addresses named by a trusted proxy.

use std::net::IpAddr;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

async fn status_from(
    app: &crate::helpers::TestApp,
    from: IpAddr,
    key: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = app
        .client_from(from)
        .get(app.url("/v1/messages"))
        .bearer_auth(key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let reply = request.send().await.expect("a reply");
    let status = reply.status();
    (status, reply.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_key_limited_to_one_address_works_only_from_there() {
    let app = spawn_app();
    let body =
        json!({"name": "office", "scopes": ["messages:read"], "allowed_ips": ["127.0.0.2/32"]});
    let created = app.post_json("/v1/api-keys", &app.key, &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.json()["allowed_ips"], json!(["127.0.0.2/32"]));
    let key = created.json()["key"].as_str().unwrap().to_owned();

    let (allowed, text) = status_from(&app, loopback(2), &key, &[]).await;
    assert_eq!(allowed, StatusCode::OK, "{text}");
    let (refused, text) = status_from(&app, loopback(1), &key, &[]).await;
    assert_eq!(refused, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("\"ip_not_allowed\""), "{text}");
    // The unrestricted key still works from anywhere.
    assert_eq!(
        status_from(&app, loopback(1), &app.key, &[]).await.0,
        StatusCode::OK
    );

    let bad = json!({"name": "bad", "scopes": ["messages:read"], "allowed_ips": ["127.0.0.300"]});
    let refused = app.post_json("/v1/api-keys", &app.key, &bad).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    assert!(refused.text.contains("invalid_allowed_ips"));
}

#[tokio::test]
async fn an_account_allowlist_set_by_the_operator_applies_on_the_next_request() {
    let app = spawn_app();
    let account = app.account_id();
    assert_eq!(
        status_from(&app, loopback(1), &app.key, &[]).await.0,
        StatusCode::OK
    );
    app.cli(&[
        "account",
        "allow-ips",
        "--account",
        &account,
        "--ips",
        "127.0.0.2",
    ]);
    let (refused, text) = status_from(&app, loopback(1), &app.key, &[]).await;
    assert_eq!(refused, StatusCode::FORBIDDEN, "{text}");
    assert_eq!(
        status_from(&app, loopback(2), &app.key, &[]).await.0,
        StatusCode::OK
    );
    app.cli(&["account", "allow-ips", "--account", &account]);
    assert_eq!(
        status_from(&app, loopback(1), &app.key, &[]).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_decides_and_elsewhere_it_is_ignored() {
    let app = spawn_app_with(&[
        ("RAMPART_NETWORK__TRUSTED_PROXIES", "[\"127.0.0.3\"]"),
        ("RAMPART_NETWORK__DENIED_IPS", "[\"192.0.2.0/24\"]"),
    ]);
    let body =
        json!({"name": "partner", "scopes": ["messages:read"], "allowed_ips": ["198.51.100.7"]});
    let created = app.post_json("/v1/api-keys", &app.key, &body).await;
    let key = created.json()["key"].as_str().unwrap().to_owned();
    let forwarded = [("x-forwarded-for", "192.0.2.200, 198.51.100.7")];
    // Through the proxy: the right-most address the proxy saw is the client.
    assert_eq!(
        status_from(&app, loopback(3), &key, &forwarded).await.0,
        StatusCode::OK
    );
    // Straight from a client, the header is not believed.
    assert_eq!(
        status_from(&app, loopback(1), &key, &forwarded).await.0,
        StatusCode::FORBIDDEN
    );
    // A denied address is refused whatever key it holds.
    let denied = [("x-forwarded-for", "192.0.2.9")];
    let (status, text) = status_from(&app, loopback(3), &app.key, &denied).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("\"ip_denied\""), "{text}");
}

#[tokio::test]
async fn an_address_that_keeps_failing_authentication_is_banned_until_the_operator_lifts_it() {
    let app = spawn_app_with(&[("RAMPART_NETWORK__BAN_AFTER_FAILURES", "5")]);
    let junk = "rk_000000000000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for _ in 0..5 {
        assert_eq!(
            status_from(&app, loopback(2), junk, &[]).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // The sixth failure bans the address: even a valid key is refused from it now.
    assert_eq!(
        status_from(&app, loopback(2), junk, &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, text) = status_from(&app, loopback(2), &app.key, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("\"ip_banned\""), "{text}");
    // Other addresses are not affected.
    assert_eq!(
        status_from(&app, loopback(1), &app.key, &[]).await.0,
        StatusCode::OK
    );

    // The ban reaches the store (written in the background), where the operator sees it...
    let mut listed = String::new();
    for _ in 0..100 {
        listed = app.cli(&["ban", "list"]);
        if listed.contains("127.0.0.2") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(listed.contains("127.0.0.2\tuntil"), "{listed}");
    // ...over the API too, with an operator's key only...
    let ops = app.operator_key();
    let bans = app.get("/v1/bans", &ops).await;
    assert_eq!(bans.status, StatusCode::OK, "{}", bans.text);
    assert_eq!(
        bans.json()["data"][0]["ip"],
        json!("127.0.0.2"),
        "{}",
        bans.text
    );
    let (_, tenant) = app
        .create_key(&["messages:read", "keys:manage"], None)
        .await;
    for key in [&tenant, &app.key] {
        app.get("/v1/bans", key)
            .await
            .assert_problem(403, "insufficient_scope");
    }
    let junk = app
        .request(
            reqwest::Method::DELETE,
            "/v1/bans/not-an-ip",
            &ops,
            None,
            &[],
        )
        .await;
    junk.assert_problem(422, "invalid_ip");
    // ...and lifts it; the server applies that within a second or so.
    let lifted = app
        .request(
            reqwest::Method::DELETE,
            "/v1/bans/127.0.0.2",
            &ops,
            None,
            &[],
        )
        .await;
    assert_eq!(lifted.status, StatusCode::NO_CONTENT, "{}", lifted.text);
    let again = app
        .request(
            reqwest::Method::DELETE,
            "/v1/bans/127.0.0.2",
            &ops,
            None,
            &[],
        )
        .await;
    again.assert_problem(404, "not_found");
    let mut status = StatusCode::FORBIDDEN;
    for _ in 0..40 {
        status = status_from(&app, loopback(2), &app.key, &[]).await.0;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn operators_keys_work_only_from_the_operators_networks_and_set_accounts_lists_over_the_api()
{
    let app = spawn_app_with(&[("RAMPART_NETWORK__OPERATOR_ALLOWED_IPS", "[\"127.0.0.1\"]")]);
    let ops = app.operator_key();
    assert_eq!(app.get("/v1/bans", &ops).await.status, StatusCode::OK);
    let elsewhere = app
        .client_from("127.0.0.2".parse().unwrap())
        .get(app.url("/v1/bans"))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    let problem: serde_json::Value = elsewhere.json().await.unwrap();
    assert_eq!(problem["code"], json!("ip_not_allowed"), "{problem}");
    // The account's own key is not an operator's: the operators' list does not bind it.
    let tenant = app
        .client_from("127.0.0.2".parse().unwrap())
        .get(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(tenant.status(), StatusCode::OK);

    // The operator narrows the account to 127.0.0.1 over the API; its keys stop working
    // from elsewhere on their next request.
    let account = app.account_id();
    let path = format!("/v1/accounts/{account}/operator-allowed-ips");
    let set = app
        .request(
            reqwest::Method::PUT,
            &path,
            &ops,
            Some(json_body(json!({"operator_allowed_ips": ["127.0.0.1/32"]}))),
            &[],
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(set.json()["operator_allowed_ips"], json!(["127.0.0.1/32"]));
    let mut status = StatusCode::OK;
    for _ in 0..100 {
        status = app
            .client_from("127.0.0.2".parse().unwrap())
            .get(app.url("/v1/messages"))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::FORBIDDEN {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get("/v1/messages", &app.key).await.status,
        StatusCode::OK
    );
    // An account's key, even holding every account scope, cannot set the operator's list.
    app.request(
        reqwest::Method::PUT,
        &path,
        &app.key,
        Some(json_body(json!({"operator_allowed_ips": []}))),
        &[],
    )
    .await
    .assert_problem(403, "insufficient_scope");
    app.request(
        reqwest::Method::PUT,
        &path,
        &ops,
        Some(json_body(json!({"operator_allowed_ips": ["300.1.1.1"]}))),
        &[],
    )
    .await
    .assert_problem(422, "invalid_allowed_ips");
}

fn json_body(value: serde_json::Value) -> (Option<&'static str>, Vec<u8>) {
    (
        Some("application/json"),
        serde_json::to_vec(&value).unwrap(),
    )
}
