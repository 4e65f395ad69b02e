//! What carriers answer, recorded as the recorder records it: acceptance, receipts (early,
//! partial, final), refusals with their backoff, and dropped links.

use super::*;

#[tokio::test]
async fn an_accepted_message_is_sent_with_one_part_per_carrier_id() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, TWO_PART_BODY).await;
    bench.round().await;
    assert_eq!(bench.uk.handed()[0].segments, 2);
    bench.advance(250);

    bench
        .record(vec![accepted(&id, "uk", &["p-1", "p-2"])])
        .await;

    let message = bench.message(&id);
    assert_eq!(message.status, "sent");
    assert_eq!(message.connector.as_deref(), Some("uk"));
    assert_eq!(message.sent_at, Some(START + 250));
    assert_eq!(message.completed_at, None);
    assert_eq!(bench.awaiting("uk"), vec!["p-1", "p-2"]);
}

#[tokio::test]
async fn receipts_settle_messages_as_delivered_undelivered_or_expired() {
    let bench = Bench::new().await;
    let delivered = bench.send(UK_NUMBER, "one").await;
    let undelivered = bench.send(UK_NUMBER, "two").await;
    let expired = bench.send(UK_NUMBER, "three").await;
    bench.round().await;
    bench
        .record(vec![
            accepted(&delivered, "uk", &["d-1"]),
            accepted(&undelivered, "uk", &["u-1"]),
            accepted(&expired, "uk", &["e-1"]),
        ])
        .await;
    bench.advance(5_000);

    bench
        .record(vec![
            receipt("uk", "d-1", ReceiptState::Delivered, None),
            receipt("uk", "u-1", ReceiptState::Undelivered, Some("unreachable")),
            receipt("uk", "e-1", ReceiptState::Expired, None),
        ])
        .await;

    let settled = [
        (delivered, "delivered", None),
        (undelivered, "undelivered", Some("unreachable")),
        (expired, "expired", Some("validity_expired")),
    ];
    for (id, status, error_code) in settled {
        let message = bench.message(&id);
        assert_eq!(message.status, status, "{id}");
        assert_eq!(message.error_code.as_deref(), error_code, "{id}");
        assert_eq!(message.completed_at, Some(START + 5_000), "{id}");
    }
    assert!(bench.awaiting("uk").is_empty());
}

#[tokio::test]
async fn a_multi_part_message_settles_only_once_every_part_has_a_final_receipt() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, TWO_PART_BODY).await;
    bench.round().await;
    bench
        .record(vec![accepted(&id, "uk", &["p-1", "p-2"])])
        .await;

    bench
        .record(vec![receipt("uk", "p-1", ReceiptState::Delivered, None)])
        .await;
    assert_eq!(bench.message(&id).status, "sent");
    bench
        .record(vec![receipt("uk", "p-2", ReceiptState::Pending, None)])
        .await;
    assert_eq!(
        bench.message(&id).status,
        "sent",
        "a non-final receipt settles nothing"
    );
    assert_eq!(bench.awaiting("uk"), vec!["p-2"]);

    bench
        .record(vec![receipt("uk", "p-2", ReceiptState::Delivered, None)])
        .await;
    let message = bench.message(&id);
    assert_eq!(message.status, "delivered");
    assert_eq!(message.error_code, None);
}

#[tokio::test]
async fn a_failed_part_names_the_error_of_a_multi_part_message_whatever_the_receipt_order() {
    let bench = Bench::new().await;
    let undelivered = bench.send(UK_NUMBER, TWO_PART_BODY).await;
    let expired = bench.send(UK_NUMBER, TWO_PART_BODY).await;
    bench.round().await;
    bench
        .record(vec![
            accepted(&undelivered, "uk", &["u-1", "u-2"]),
            accepted(&expired, "uk", &["e-1", "e-2"]),
        ])
        .await;

    // The failing part reports first; the last receipt is a success without an error code.
    bench
        .record(vec![
            receipt(
                "uk",
                "u-1",
                ReceiptState::Undelivered,
                Some("absent_subscriber"),
            ),
            receipt("uk", "u-2", ReceiptState::Delivered, None),
            receipt("uk", "e-1", ReceiptState::Expired, Some("carrier_expired")),
            receipt("uk", "e-2", ReceiptState::Delivered, None),
        ])
        .await;

    let message = bench.message(&undelivered);
    assert_eq!(message.status, "undelivered");
    assert_eq!(message.error_code.as_deref(), Some("absent_subscriber"));
    let message = bench.message(&expired);
    assert_eq!(message.status, "expired");
    assert_eq!(message.error_code.as_deref(), Some("carrier_expired"));
}

#[tokio::test]
async fn a_receipt_that_arrives_before_the_acceptance_is_applied_when_the_acceptance_is_recorded() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "quick carrier").await;
    bench.round().await;

    bench
        .record(vec![receipt(
            "uk",
            "p-1",
            ReceiptState::Undelivered,
            Some("absent_subscriber"),
        )])
        .await;
    assert_eq!(
        bench.message(&id).status,
        "sending",
        "a receipt for an unknown carrier id changes no message"
    );

    bench.advance(10);
    bench.record(vec![accepted(&id, "uk", &["p-1"])]).await;

    let message = bench.message(&id);
    assert_eq!(message.status, "undelivered");
    assert_eq!(message.error_code.as_deref(), Some("absent_subscriber"));
    assert_eq!(message.completed_at, Some(START + 10));
    assert!(bench.awaiting("uk").is_empty());
}

#[tokio::test]
async fn a_transient_refusal_queues_the_message_again_after_a_jittered_backoff() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "busy carrier").await;
    bench.round().await;

    let refused_at = bench.now();
    bench.record(vec![refused(&id, 1, false)]).await;

    let message = bench.message(&id);
    assert_eq!(message.status, "queued");
    assert_eq!(message.attempts, 1);
    assert_eq!(message.error_code.as_deref(), Some("carrier_busy"));
    let due = bench.next_due().unwrap();
    let (low, high) = backoff_bounds(1);
    assert!(
        (refused_at + low..=refused_at + high).contains(&due),
        "retry at +{} ms, expected {low}..={high}",
        due - refused_at
    );

    assert_eq!(
        bench.round().await,
        Round::Idle {
            next_due: Some(due)
        }
    );
    bench.advance_to(due - 1);
    assert_eq!(
        bench.round().await,
        Round::Idle {
            next_due: Some(due)
        }
    );
    assert_eq!(bench.uk.handed().len(), 1);

    bench.advance(1);
    assert_eq!(
        bench.round().await,
        Round::Dispatched {
            claimed: 1,
            unsent: 0
        }
    );
    let message = bench.message(&id);
    assert_eq!(message.status, "sending");
    assert_eq!(message.attempts, 2);
    assert_eq!(bench.uk.handed()[1].attempt, 2);
}

#[tokio::test]
async fn the_backoff_doubles_with_each_failed_attempt() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "busy carrier").await;
    for attempt in 1..MAX_ATTEMPTS {
        bench.round().await;
        let refused_at = bench.now();
        bench.record(vec![refused(&id, attempt, false)]).await;
        let wait = bench.next_due().unwrap() - refused_at;
        let (low, high) = backoff_bounds(attempt);
        assert!(
            (low..=high).contains(&wait),
            "after attempt {attempt}: waited {wait} ms, expected {low}..={high}"
        );
        bench.advance(wait);
    }
}

#[tokio::test]
async fn a_refusal_on_the_last_allowed_attempt_fails_the_message() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "busy carrier").await;
    for attempt in 1..=MAX_ATTEMPTS {
        assert_eq!(
            bench.round().await,
            Round::Dispatched {
                claimed: 1,
                unsent: 0
            },
            "attempt {attempt} is claimed"
        );
        bench.record(vec![refused(&id, attempt, false)]).await;
        if let Some(due) = bench.next_due() {
            bench.advance_to(due);
        }
    }

    let message = bench.message(&id);
    assert_eq!(message.status, "failed");
    assert_eq!(message.attempts, MAX_ATTEMPTS);
    assert_eq!(message.error_code.as_deref(), Some("carrier_busy"));
    assert_eq!(message.completed_at, Some(bench.now()));
    bench.advance(3_600_000);
    assert_eq!(bench.round().await, Round::Idle { next_due: None });
    assert_eq!(bench.uk.handed().len(), MAX_ATTEMPTS as usize);
}

#[tokio::test]
async fn a_permanent_refusal_fails_the_message_at_once() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "rejected").await;
    bench.round().await;

    bench.record(vec![refused(&id, 1, true)]).await;

    let message = bench.message(&id);
    assert_eq!(message.status, "failed");
    assert_eq!(message.attempts, 1);
    assert_eq!(message.error_code.as_deref(), Some("carrier_busy"));
    assert_eq!(message.error_detail.as_deref(), Some("the carrier is busy"));
    assert_eq!(bench.next_due(), None);
}

#[tokio::test]
async fn a_dropped_link_puts_the_message_back_in_the_queue_at_once() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "in flight").await;
    bench.round().await;
    bench.advance(700);

    bench
        .record(vec![ConnectorEvent::Requeue {
            message_id: id.clone(),
        }])
        .await;

    let message = bench.message(&id);
    assert_eq!(message.status, "queued");
    assert_eq!(message.error_code.as_deref(), Some("link_dropped"));
    assert_eq!(bench.next_due(), Some(bench.now()));
    assert_eq!(
        bench.round().await,
        Round::Dispatched {
            claimed: 1,
            unsent: 0
        }
    );
    assert_eq!(bench.message(&id).attempts, 2);
}

#[tokio::test]
async fn a_message_waiting_to_retry_can_be_canceled_but_one_in_flight_cannot() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "retry me").await;
    let caller = Caller::operator(&bench.account);
    bench.round().await;

    let in_flight = bench.app.cancel_message(&caller, &id).await;
    assert!(
        matches!(
            in_flight,
            Err(crate::app::AppError::Conflict {
                code: "not_cancelable",
                ..
            })
        ),
        "{in_flight:?}"
    );

    bench.record(vec![refused(&id, 1, false)]).await;
    bench.app.cancel_message(&caller, &id).await.unwrap();
    bench.advance(3_600_000);
    assert_eq!(bench.round().await, Round::Idle { next_due: None });
    assert_eq!(bench.message(&id).status, "canceled");
    assert_eq!(bench.uk.handed().len(), 1);
}

#[tokio::test]
async fn answers_about_a_message_that_is_no_longer_sending_change_nothing() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "late answers").await;
    bench.round().await;
    bench.record(vec![refused(&id, 1, true)]).await;

    bench
        .record(vec![
            refused(&id, 1, false),
            ConnectorEvent::Requeue {
                message_id: id.clone(),
            },
        ])
        .await;

    let message = bench.message(&id);
    assert_eq!(message.status, "failed");
    assert_eq!(bench.next_due(), None);
}

fn delivered(connector: &str, provider_id: &str) -> ConnectorEvent {
    receipt(connector, provider_id, ReceiptState::Delivered, None)
}

#[tokio::test]
async fn an_early_receipt_within_bounds_settles_its_message_once_accepted() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "early").await;
    bench.round().await;
    bench.record(vec![delivered("uk", "early-1")]).await;
    bench.advance(EARLY_RECEIPTS_MAX_AGE_MS - 1);
    bench.record(vec![delivered("uk", "other")]).await;

    bench.record(vec![accepted(&id, "uk", &["early-1"])]).await;

    assert_eq!(bench.message(&id).status, "delivered");
}

#[tokio::test]
async fn early_receipts_older_than_the_limit_are_purged() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "late").await;
    bench.round().await;
    bench.record(vec![delivered("uk", "stale-1")]).await;
    bench.advance(EARLY_RECEIPTS_MAX_AGE_MS + 1);
    // Any later receipt (here on another connector) trims every connector's stale rows.
    bench.record(vec![delivered("world", "unknown")]).await;

    bench.record(vec![accepted(&id, "uk", &["stale-1"])]).await;

    assert_eq!(bench.message(&id).status, "sent");
    assert_eq!(bench.awaiting("uk"), vec!["stale-1"]);
}

#[tokio::test]
async fn early_receipts_beyond_the_cap_push_out_the_oldest() {
    let bench = Bench::new().await;
    let oldest = bench.send(UK_NUMBER, "oldest").await;
    let newest = bench.send(UK_NUMBER, "newest").await;
    bench.round().await;
    bench.record(vec![delivered("uk", "bogus-oldest")]).await;
    bench.advance(1);
    let flood: Vec<ConnectorEvent> = (0..EARLY_RECEIPTS_CAP * 3)
        .map(|n| delivered("uk", &format!("bogus-{n}")))
        .collect();
    bench.record(flood).await;
    // Another connector's rows count against its own cap, not this one's.
    bench.record(vec![delivered("world", "w-1")]).await;
    bench.advance(1);
    bench.record(vec![delivered("uk", "bogus-newest")]).await;

    bench
        .record(vec![
            accepted(&oldest, "uk", &["bogus-oldest"]),
            accepted(&newest, "uk", &["bogus-newest"]),
        ])
        .await;

    assert_eq!(bench.message(&oldest).status, "sent");
    assert_eq!(bench.message(&newest).status, "delivered");
}
