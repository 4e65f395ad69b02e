//! Rate limits against the real server: a key far over its limit gets 429s with Retry-After and
//! its policy, while another key of the account keeps being served promptly.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn a_key_over_its_limit_gets_429s_while_another_key_is_served() {
    let app = spawn_app_with(&[
        ("RAMPART_RATE_LIMITS__KEY_PER_SECOND", "20"),
        ("RAMPART_RATE_LIMITS__KEY_BURST", "20"),
    ]);
    let (_, flooder) = app.create_key(&["messages:read"], None).await;
    let (_, quiet) = app.create_key(&["messages:read"], None).await;

    // 300 requests at once from one key: far over 20 per second.
    let flood: Vec<_> = (0..300)
        .map(|_| {
            let request = app
                .client
                .get(app.url("/v1/messages?limit=1"))
                .bearer_auth(&flooder);
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    // Meanwhile the other key, within its limit.
    let mut waits = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        let reply = app.get("/v1/messages?limit=1", &quiet).await;
        waits.push(started.elapsed());
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let (mut ok, mut limited) = (0, 0);
    for request in flood {
        let reply = request.await.unwrap().expect("a reply");
        match reply.status() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                let headers = reply.headers();
                let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=2).contains(&retry), "Retry-After {retry}");
                assert_eq!(headers["ratelimit-policy"], "20;w=1;burst=20");
                let problem: serde_json::Value = reply.json().await.unwrap();
                assert_eq!(problem["code"], json!("rate_limited"));
            }
            other => panic!("unexpected {other} in the flood"),
        }
    }
    assert!(limited >= 200, "{limited} limited, {ok} served");
    assert!((20..=60).contains(&ok), "{ok} served of the flood");
    waits.sort();
    assert!(
        waits[waits.len() / 2] < Duration::from_millis(50),
        "{waits:?}"
    );
}
