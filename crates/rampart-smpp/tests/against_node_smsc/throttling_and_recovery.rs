//! Throttling replies, and losing the SMSC in the middle of a load without losing a message.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use rampart_smpp::{LinkState, SmppEvent};
use serde_json::json;
use tokio::time::timeout;

use crate::harness::{Smsc, TestClient, config, gsm7_submission};
use crate::require_node;

#[tokio::test]
async fn throttling_replies_slow_down_then_succeed() {
    require_node!();
    let smsc = Smsc::start(json!({ "port": 0, "throttle_first": 3, "no_receipts": true })).await;
    let mut client = TestClient::spawn(config(smsc.port));
    let started = Instant::now();
    client.submit(gsm7_submission(20, b"one")).await;
    client.submit(gsm7_submission(21, b"two")).await;
    let mut accepted = BTreeSet::new();
    while accepted.len() < 2 {
        match client.next_event().await {
            SmppEvent::Submitted { reference, .. } => {
                accepted.insert(reference);
            }
            SmppEvent::Rejected { .. } => panic!("throttling must be retried, not reported"),
            _ => {}
        }
    }
    // Three refusals: pauses of at least 100 ms, 200 ms and 100 ms (two parts share them).
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let submits = smsc.recorded("submit_sm");
    let throttled = submits
        .iter()
        .filter(|record| record["command_status"] == 0x58)
        .count();
    assert_eq!((submits.len(), throttled), (5, 3));
    assert!(client.handle.status().errors_total >= 3);
    client.shutdown().await;
}

#[tokio::test]
async fn endless_throttling_is_reported_as_a_transient_rejection() {
    require_node!();
    let smsc = Smsc::start(json!({ "port": 0, "throttle_first": 1000 })).await;
    let mut settings = config(smsc.port);
    settings.max_throttle_retries = 2;
    let mut client = TestClient::spawn(settings);
    client.submit(gsm7_submission(22, b"never")).await;
    let rejected = client
        .wait_for(|event| matches!(event, SmppEvent::Rejected { .. }))
        .await;
    assert_eq!(
        rejected,
        SmppEvent::Rejected {
            reference: 22,
            part: 0,
            status: 0x58,
            permanent: false
        }
    );
    assert_eq!(smsc.recorded("submit_sm").len(), 3);
    client.shutdown().await;
}

#[tokio::test]
async fn smsc_killed_mid_load_and_restarted_loses_no_submission() {
    require_node!();
    const TOTAL: u64 = 150;
    let smsc = Smsc::start(json!({ "port": 0, "no_receipts": true })).await;
    let port = smsc.port;
    let mut settings = config(port);
    settings.window = 8;
    settings.max_rate = Some(300);
    let mut client = TestClient::spawn(settings);

    let feeder = {
        let handle = client.handle.clone();
        tokio::spawn(async move {
            for reference in 0..TOTAL {
                handle
                    .submit(gsm7_submission(reference, b"load"))
                    .await
                    .expect("submit");
            }
        })
    };

    let mut accepted = BTreeSet::new();
    let mut requeued = 0;
    let mut smsc = Some(smsc);
    let mut went_down = false;
    let outcome = timeout(Duration::from_secs(90), async {
        while (accepted.len() as u64) < TOTAL {
            match client.next_event().await {
                SmppEvent::Submitted { reference, .. } => {
                    accepted.insert(reference);
                    if accepted.len() == 40
                        && let Some(running) = smsc.take()
                    {
                        running.kill().await;
                        // Let the client notice, fail a few reconnects, then bring it back.
                        tokio::time::sleep(Duration::from_millis(700)).await;
                        smsc =
                            Some(Smsc::start(json!({ "port": port, "no_receipts": true })).await);
                    }
                }
                SmppEvent::Requeue { reference } => {
                    requeued += 1;
                    let handle = client.handle.clone();
                    tokio::spawn(async move {
                        handle
                            .submit(gsm7_submission(reference, b"load"))
                            .await
                            .expect("resubmit");
                    });
                }
                SmppEvent::Rejected {
                    reference, status, ..
                } => {
                    panic!("submission {reference} rejected with {status:#x}")
                }
                SmppEvent::Link(LinkState::Down { .. }) => went_down = true,
                _ => {}
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "only {} of {TOTAL} accepted in time",
        accepted.len()
    );
    assert!(went_down, "the link never went down");
    assert_eq!(accepted, (0..TOTAL).collect());
    feeder.await.expect("feeder");
    eprintln!("requeued {requeued} submissions after the SMSC was killed");
    client.shutdown().await;
}

#[tokio::test]
async fn shutdown_requeues_what_was_queued_and_refuses_more() {
    require_node!();
    // An SMSC on a port nobody listens on: the client never binds, submissions queue up.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let mut client = TestClient::spawn(config(port));
    let handle = client.handle.clone();
    let queued = tokio::spawn(async move { handle.submit(gsm7_submission(30, b"q")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let handle = client.handle.clone();
    timeout(Duration::from_secs(10), handle.shutdown())
        .await
        .expect("shutdown");
    assert!(queued.await.unwrap().is_ok());
    client
        .wait_for(|event| *event == SmppEvent::Requeue { reference: 30 })
        .await;
    assert!(
        client
            .handle
            .submit(gsm7_submission(31, b"late"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_submission_queued_behind_a_full_window_comes_back_when_the_link_drops() {
    require_node!();
    let smsc = Smsc::start(json!({ "port": 0, "respond_after_ms": 5000 })).await;
    let mut settings = config(smsc.port);
    settings.window = 1;
    let mut client = TestClient::spawn(settings);
    client
        .wait_for(|event| *event == SmppEvent::Link(LinkState::Bound))
        .await;
    client.submit(gsm7_submission(1, b"in the window")).await;
    smsc.wait_for_record(|record| record["event"] == "submit_sm")
        .await;
    client.submit(gsm7_submission(2, b"queued")).await;
    smsc.kill().await;
    // Nothing listens any more, so no rebind can send the queued one: the drop must hand
    // both back.
    let mut requeued = BTreeSet::new();
    let handed_back = timeout(Duration::from_secs(20), async {
        while requeued.len() < 2 {
            if let SmppEvent::Requeue { reference } = client.next_event().await {
                requeued.insert(reference);
            }
        }
    })
    .await;
    assert!(handed_back.is_ok(), "only {requeued:?} came back");
    assert_eq!(requeued, BTreeSet::from([1, 2]));
    client.shutdown().await;
}
