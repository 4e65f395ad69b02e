//! People: sign-in, sessions (cookies, CSRF, timeouts, revocation), the first operator's
//! setup, invitations, roles, removal, password changes and resets.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};
use crate::session::{PASSWORD, set_cookie};

#[tokio::test]
async fn a_session_cookie_is_host_only_secure_http_only_and_same_site_strict() {
    let app = spawn_app();
    app.create_person("ada@example.com", "owner", None);
    let reply = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let cookie = set_cookie(&reply, "__Host-rampart_session").expect("a session cookie");
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    for wanted in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(attributes.contains(&wanted), "{wanted} missing in {cookie}");
    }
    assert!(
        !attributes.iter().any(|a| a.starts_with("Domain")),
        "a __Host- cookie has no Domain: {cookie}"
    );
    let token = attributes[0].split_once('=').unwrap().1;
    assert!(token.starts_with("rs_"), "{cookie}");
}

#[tokio::test]
async fn a_signed_in_owner_sends_and_a_state_change_without_the_csrf_token_is_refused() {
    let app = spawn_app();
    app.create_person("ada@example.com", "owner", None);
    let session = app.sign_in("ada@example.com", PASSWORD).await;
    let body = json!({"from": "Rampart", "to": "+447911123456", "body": "hello"});
    let without = app
        .as_person(&session, Method::POST, "/v1/messages", Some(&body), false)
        .await;
    without.assert_problem(403, "csrf_token_invalid");
    let wrong = app
        .request(
            Method::POST,
            "/v1/messages",
            "",
            Some((Some("application/json"), serde_json::to_vec(&body).unwrap())),
            &[("cookie", &session.cookie), ("x-csrf-token", "forged")],
        )
        .await;
    wrong.assert_problem(403, "csrf_token_invalid");
    let sent = app.post_as(&session, "/v1/messages", &body).await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    let listed = app.get_as(&session, "/v1/messages").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
}

#[tokio::test]
async fn unknown_emails_and_wrong_passwords_get_the_same_answer() {
    let app = spawn_app();
    app.create_person("ada@example.com", "owner", None);
    let wrong = app
        .login("ada@example.com", "not the right passphrase")
        .await;
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    wrong.assert_problem(401, "invalid_credentials");
    unknown.assert_problem(401, "invalid_credentials");
    assert_eq!(wrong.json()["detail"], unknown.json()["detail"]);
    assert!(set_cookie(&wrong, "__Host-rampart_session").is_none());
}

#[tokio::test]
async fn repeated_failures_slow_the_next_attempts_down() {
    let app = spawn_app();
    app.create_person("ada@example.com", "owner", None);
    let mut throttled = None;
    for _ in 0..6 {
        let reply = app
            .login("ada@example.com", "not the right passphrase")
            .await;
        if reply.status == 429 {
            throttled = Some(reply);
            break;
        }
        reply.assert_problem(401, "invalid_credentials");
    }
    let reply = throttled.expect("failures are slowed down");
    reply.assert_problem(429, "too_many_attempts");
    assert!(reply.header("retry-after").is_some());
    // Even the right password waits its turn.
    app.login("ada@example.com", PASSWORD)
        .await
        .assert_problem(429, "too_many_attempts");
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = spawn_app();
    app.create_person("ada@example.com", "owner", None);
    let session = app.sign_in("ada@example.com", PASSWORD).await;
    let me = app.get_as(&session, "/v1/users/me").await.json();
    assert_eq!(me["email"], "ada@example.com", "{me}");
    assert_eq!(me["memberships"][0]["role"], "owner", "{me}");
    let out = app
        .as_person(&session, Method::POST, "/v1/auth/logout", None, true)
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    let cleared = set_cookie(&out, "__Host-rampart_session").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    app.get_as(&session, "/v1/messages")
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    let app = spawn_app();
    app.create_person("ada@example.com", "owner", None);
    let laptop = app.sign_in("ada@example.com", PASSWORD).await;
    let phone = app.sign_in("ada@example.com", PASSWORD).await;
    let listed = app.get_as(&laptop, "/v1/users/me/sessions").await;
    assert_eq!(listed.json()["data"].as_array().unwrap().len(), 2);
    let new = "a brand new passphrase for the winter";
    let changed = app
        .post_as(
            &laptop,
            "/v1/users/me/password",
            &json!({"current_password": PASSWORD, "new_password": new}),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text);
    assert_eq!(app.get_as(&laptop, "/v1/messages").await.status, 200);
    app.get_as(&phone, "/v1/messages")
        .await
        .assert_problem(401, "unauthorized");
    app.login("ada@example.com", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    app.sign_in("ada@example.com", new).await;
}

#[tokio::test]
async fn weak_short_and_common_passwords_are_refused_and_a_long_passphrase_is_accepted() {
    let app = spawn_app();
    app.create_person("ada@example.com", "owner", None);
    let session = app.sign_in("ada@example.com", PASSWORD).await;
    for (new, code) in [
        ("elevenchars", "password_too_short"),
        ("Password123!", "password_too_weak"),
        ("ada@example.com1", "password_too_weak"),
    ] {
        let reply = app
            .post_as(
                &session,
                "/v1/users/me/password",
                &json!({"current_password": PASSWORD, "new_password": new}),
            )
            .await;
        reply.assert_problem(422, code);
    }
    let passphrase = "the quiet orbit of a lantern over the river, sixty-four chars!!!";
    assert_eq!(passphrase.chars().count(), 64);
    let reply = app
        .post_as(
            &session,
            "/v1/users/me/password",
            &json!({"current_password": PASSWORD, "new_password": passphrase}),
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.text);
}

#[tokio::test]
async fn the_first_operator_is_made_with_the_setup_code_from_an_owner_only_file() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app();
    let file = app.data_dir.join("setup-code");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the setup code is owner-only");
    let code = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert!(
        !app.server_log().contains(&code),
        "the code never reaches the log"
    );
    let body = json!({"setup_code": code, "email": "ops@example.com", "name": "Ops",
        "password": PASSWORD});
    let reply = app.post_json("/v1/auth/setup", "", &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(!file.exists(), "a used code is removed");
    let again = app.post_json("/v1/auth/setup", "", &body).await;
    again.assert_problem(401, "invalid_credentials");
    let session = app.sign_in("ops@example.com", PASSWORD).await;
    let me = app.get_as(&session, "/v1/auth/session").await.json();
    assert_eq!(me["role"], "operator-admin", "{me}");
    assert_eq!(app.get_as(&session, "/metrics").await.status, 200);
    app.get_as(&session, "/v1/messages")
        .await
        .assert_problem(403, "insufficient_scope");
}

#[tokio::test]
async fn an_invited_member_joins_with_the_role_and_a_removed_member_loses_access_at_once() {
    let app = spawn_app();
    let account = app.account_id();
    app.create_person("owner@example.com", "owner", None);
    let owner = app.sign_in("owner@example.com", PASSWORD).await;
    let invited = app
        .post_as(
            &owner,
            &format!("/v1/accounts/{account}/members"),
            &json!({"email": "dev@example.com", "role": "developer"}),
        )
        .await;
    assert_eq!(invited.status, 201, "{}", invited.text);
    let token = invited.json()["token"].as_str().unwrap().to_owned();
    let user_id = invited.json()["user_id"].as_str().unwrap().to_owned();
    let joined = app
        .post_json(
            "/v1/auth/invitations/accept",
            "",
            &json!({"token": token, "password": "developer passphrase of some length"}),
        )
        .await;
    assert_eq!(joined.status, 200, "{}", joined.text);
    let again = app
        .post_json(
            "/v1/auth/invitations/accept",
            "",
            &json!({"token": token, "password": "developer passphrase of some length"}),
        )
        .await;
    again.assert_problem(401, "invalid_credentials");
    let dev = app
        .sign_in("dev@example.com", "developer passphrase of some length")
        .await;
    let key = app
        .post_as(
            &dev,
            "/v1/api-keys",
            &json!({"name": "dev key", "scopes": ["messages:send"]}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let key = key.json()["key"].as_str().unwrap().to_owned();
    // A developer cannot manage members.
    app.post_as(
        &dev,
        &format!("/v1/accounts/{account}/members"),
        &json!({"email": "x@example.com", "role": "viewer"}),
    )
    .await
    .assert_problem(403, "insufficient_scope");

    let removed = app
        .as_person(
            &owner,
            Method::DELETE,
            &format!("/v1/accounts/{account}/members/{user_id}"),
            None,
            true,
        )
        .await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    assert_ne!(app.get_as(&dev, "/v1/messages").await.status, 200);
    app.get("/v1/messages", &key)
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn the_last_owner_can_be_neither_removed_nor_demoted() {
    let app = spawn_app();
    let account = app.account_id();
    let id = app.create_person("owner@example.com", "owner", None);
    let owner = app.sign_in("owner@example.com", PASSWORD).await;
    let path = format!("/v1/accounts/{account}/members/{id}");
    app.as_person(
        &owner,
        Method::PATCH,
        &path,
        Some(&json!({"role": "admin"})),
        true,
    )
    .await
    .assert_problem(409, "last_owner");
    app.as_person(&owner, Method::DELETE, &path, None, true)
        .await
        .assert_problem(409, "last_owner");
}

#[tokio::test]
async fn an_admin_cannot_make_an_owner() {
    let app = spawn_app();
    let account = app.account_id();
    app.create_person("admin@example.com", "admin", None);
    let admin = app.sign_in("admin@example.com", PASSWORD).await;
    app.post_as(
        &admin,
        &format!("/v1/accounts/{account}/members"),
        &json!({"email": "boss@example.com", "role": "owner"}),
    )
    .await
    .assert_problem(403, "role_escalation");
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_once_and_ends_every_session() {
    let app = spawn_app();
    app.create_person("ada@example.com", "owner", None);
    let session = app.sign_in("ada@example.com", PASSWORD).await;
    for email in ["ada@example.com", "nobody@example.com"] {
        let asked = app
            .post_json("/v1/auth/password-reset", "", &json!({"email": email}))
            .await;
        assert_eq!(asked.status, 202, "{}", asked.text);
        assert_eq!(asked.text, "");
    }
    let token = app.cli(&["user", "reset-link", "--email", "ada@example.com"]);
    let new = "another passphrase entirely, quite long";
    let done = app
        .post_json(
            "/v1/auth/password-reset/complete",
            "",
            &json!({"token": token, "password": new}),
        )
        .await;
    assert_eq!(done.status, 204, "{}", done.text);
    app.get_as(&session, "/v1/messages")
        .await
        .assert_problem(401, "unauthorized");
    app.post_json(
        "/v1/auth/password-reset/complete",
        "",
        &json!({"token": token, "password": "yet another long passphrase here"}),
    )
    .await
    .assert_problem(401, "invalid_credentials");
    app.sign_in("ada@example.com", new).await;
}

#[tokio::test]
async fn the_role_matrix_is_served() {
    let app = spawn_app();
    let roles = app.get("/v1/roles", "").await;
    assert_eq!(roles.status, 200);
    let data = roles.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 8);
    let viewer = data.iter().find(|r| r["role"] == "viewer").unwrap();
    assert_eq!(
        viewer["permissions"],
        json!(["messages:status", "members:read"])
    );
}

#[tokio::test]
async fn a_correct_sign_in_answers_within_a_second_while_other_addresses_flood_wrong_passwords() {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, Instant};
    let app = spawn_app();
    app.create_person("ada@example.com", "owner", None);
    let attackers: Vec<_> = (2..12u8)
        .map(|last| app.client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))))
        .collect();
    let url = app.url("/v1/auth/login");
    // The person's connection is open, as a browser's would be.
    assert_eq!(app.get("/healthz", "").await.status, 200);
    // 200 wrong passwords a second for four seconds, spread over ten addresses.
    let flood = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        let mut sent = Vec::new();
        for i in 0..800usize {
            tick.tick().await;
            let client = attackers[i % attackers.len()].clone();
            let url = url.clone();
            sent.push(tokio::spawn(async move {
                let email = if i % 2 == 0 {
                    "ada@example.com".to_owned()
                } else {
                    format!("guess{i}@example.com")
                };
                client
                    .post(url)
                    .json(&json!({"email": email, "password": format!("wrong guess {i} of many")}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }));
        }
        let mut statuses = Vec::new();
        for task in sent {
            statuses.push(task.await.unwrap());
        }
        statuses
    });
    // Measured once the flood is in full swing.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let reply = app.login("ada@example.com", PASSWORD).await;
        let took = started.elapsed();
        assert_eq!(reply.status, 200, "{}", reply.text);
        slowest = slowest.max(took);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let statuses = flood.await.unwrap();
    assert!(
        slowest < Duration::from_secs(1),
        "the slowest correct sign-in took {slowest:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 403, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == 429).count() > 400,
        "attackers are slowed down"
    );
}

#[tokio::test]
async fn the_routes_open_before_signing_in_are_limited_per_client_network() {
    let app = spawn_app_with(&[
        ("RAMPART_RATE_LIMITS__SIGN_IN_PER_MINUTE", "5"),
        ("RAMPART_RATE_LIMITS__SIGN_IN_BURST", "5"),
    ]);
    let mut limited = None;
    for i in 0..8 {
        let reply = app
            .post_json(
                "/v1/auth/password-reset",
                "",
                &json!({"email": format!("someone{i}@example.com")}),
            )
            .await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    let reply = limited.expect("the sixth request in a minute is refused");
    reply.assert_problem(429, "rate_limited");
    assert!(reply.header("retry-after").is_some());
    // Another address is not held back by this one.
    let other = app.client_from("127.0.0.2".parse().unwrap());
    let elsewhere = other
        .post(app.url("/v1/auth/login"))
        .json(&json!({"email": "nobody@example.com", "password": "not the right one at all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 401);
}

#[tokio::test]
async fn an_account_admin_narrows_where_the_account_may_be_used_within_the_operators_list() {
    let app = spawn_app();
    let account = app.account_id();
    app.create_person("owner@example.com", "owner", None);
    app.create_person("viewer@example.com", "viewer", None);
    let owner = app.sign_in("owner@example.com", PASSWORD).await;
    let path = format!("/v1/accounts/{account}/allowed-ips");
    let put = |list: Vec<&'static str>| json!({ "allowed_ips": list });

    // A list that leaves out the caller's own address would lock them out.
    app.as_person(
        &owner,
        Method::PUT,
        &path,
        Some(&put(vec!["127.0.0.2/32"])),
        true,
    )
    .await
    .assert_problem(422, "would_lock_out");
    let set = app
        .as_person(
            &owner,
            Method::PUT,
            &path,
            Some(&put(vec!["127.0.0.1/32"])),
            true,
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json()["allowed_ips"], json!(["127.0.0.1/32"]));

    // Keys of the account now work from 127.0.0.1 only.
    assert_eq!(app.get("/v1/messages", &app.key).await.status, 200);
    let elsewhere = app
        .client_from("127.0.0.2".parse().unwrap())
        .get(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 403);

    // Within the operator's list only.
    app.cli(&[
        "account",
        "allow-ips",
        "--account",
        &account,
        "--ips",
        "127.0.0.0/30",
    ]);
    app.as_person(
        &owner,
        Method::PUT,
        &path,
        Some(&put(vec!["10.0.0.0/8"])),
        true,
    )
    .await
    .assert_problem(403, "allowlist_escalation");
    let both = app.get_as(&owner, &path).await.json();
    assert_eq!(
        both["operator_allowed_ips"],
        json!(["127.0.0.0/30"]),
        "{both}"
    );

    // A viewer may not change it.
    let viewer = app.sign_in("viewer@example.com", PASSWORD).await;
    app.as_person(&viewer, Method::PUT, &path, Some(&put(vec![])), true)
        .await
        .assert_problem(403, "insufficient_scope");
}
