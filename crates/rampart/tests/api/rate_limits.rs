//! Rate limits against the real server: a key far over its limit gets 429s with Retry-After and
//! its policy, while another key of the account keeps being served promptly (p99 under 50 ms).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app_with;

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
