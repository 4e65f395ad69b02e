//! The window, the rate cap and the response timeout, seen from the SMSC.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use rampart_smpp::SmppEvent;
use serde_json::json;

use crate::harness::{Smsc, TestClient, config, gsm7_submission};
use crate::require_node;

#[tokio::test]
async fn no_more_than_the_window_is_ever_unanswered() {
    require_node!();
    let smsc = Smsc::start(json!({ "port": 0, "respond_after_ms": 50, "no_receipts": true })).await;
    let mut settings = config(smsc.port);
    settings.window = 4;
    let mut client = TestClient::spawn(settings);
    let feeder = {
        let handle = client.handle.clone();
        tokio::spawn(async move {
            for reference in 0..24 {
                handle
                    .submit(gsm7_submission(reference, b"w"))
                    .await
                    .expect("submit");
            }
        })
    };
    let mut accepted = BTreeSet::new();
    while accepted.len() < 24 {
        if let SmppEvent::Submitted { reference, .. } = client.next_event().await {
            accepted.insert(reference);
        }
    }
    feeder.await.expect("feeder");
    let most_outstanding = smsc
        .recorded("submit_sm")
        .iter()
        .filter_map(|record| record["outstanding"].as_u64())
        .max();
    assert_eq!(
        most_outstanding,
        Some(4),
        "the window is both used and respected"
    );
    client.shutdown().await;
}

#[tokio::test]
async fn the_rate_cap_spaces_submissions() {
    require_node!();
    let smsc = Smsc::start(json!({ "port": 0, "no_receipts": true })).await;
    let mut settings = config(smsc.port);
    settings.max_rate = Some(40);
    let mut client = TestClient::spawn(settings);
    client
        .wait_for(|event| matches!(event, SmppEvent::Link(_)))
        .await;
    let started = Instant::now();
    for reference in 0..21 {
        client.submit(gsm7_submission(reference, b"r")).await;
    }
    let mut accepted = 0;
    while accepted < 21 {
        if let SmppEvent::Submitted { .. } = client.next_event().await {
            accepted += 1;
        }
    }
    // 21 submissions at 40/s: 20 gaps of 25 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(480),
        "{:?}",
        started.elapsed()
    );
    client.shutdown().await;
}

#[tokio::test]
async fn an_unanswered_submit_sm_is_requeued_after_the_response_timeout() {
    require_node!();
    let smsc = Smsc::start(json!({ "port": 0, "silent_first": 1, "no_receipts": true })).await;
    let mut settings = config(smsc.port);
    settings.response_timeout = Duration::from_millis(500);
    let mut client = TestClient::spawn(settings);
    client.submit(gsm7_submission(40, b"lost")).await;
    let requeue = client
        .wait_for(|event| {
            matches!(
                event,
                SmppEvent::Requeue { .. } | SmppEvent::Submitted { .. }
            )
        })
        .await;
    assert_eq!(requeue, SmppEvent::Requeue { reference: 40 });
    client.submit(gsm7_submission(40, b"lost")).await;
    let submitted = client
        .wait_for(|event| matches!(event, SmppEvent::Submitted { .. }))
        .await;
    assert!(matches!(
        submitted,
        SmppEvent::Submitted { reference: 40, .. }
    ));
    assert!(
        client.handle.status().bound,
        "a response timeout alone keeps the link"
    );
    client.shutdown().await;
}
