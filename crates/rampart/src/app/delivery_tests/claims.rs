//! Rounds of the dispatcher: what it claims and when, where it hands messages over, and what
//! it records for messages it could not hand over (no route, connectors down, validity gone).

use super::*;

#[tokio::test]
async fn a_due_message_is_claimed_as_sending_and_counts_its_first_attempt() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "hello").await;
    assert_eq!(bench.message(&id).status, "queued");
    assert_eq!(bench.message(&id).attempts, 0);

    let round = bench.round().await;

    assert_eq!(
        round,
        Round::Dispatched {
            claimed: 1,
            unsent: 0
        }
    );
    let message = bench.message(&id);
    assert_eq!(message.status, "sending");
    assert_eq!(message.attempts, 1);
    assert_eq!(bench.next_due(), None, "nothing is left in the queue");
    assert_eq!(bench.round().await, Round::Idle { next_due: None });
}

#[tokio::test]
async fn the_connector_is_handed_the_decrypted_recipient_and_body() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "Your code is 918273").await;

    bench.round().await;

    let handed = bench.uk.handed();
    assert_eq!(handed.len(), 1);
    let outbound = &handed[0];
    assert_eq!(outbound.message_id, id);
    assert_eq!(outbound.to, UK_NUMBER);
    assert_eq!(outbound.body, "Your code is 918273");
    assert_eq!(outbound.from, "Rampart");
    assert_eq!(outbound.segments, 1);
    assert_eq!(outbound.attempt, 1);
    assert_eq!(outbound.valid_until, None);
    let stored = bench.message(&id);
    for secret in [UK_NUMBER.as_bytes(), b"918273".as_slice()] {
        assert!(
            !stored.to_sealed.windows(secret.len()).any(|w| w == secret)
                && !stored
                    .body_sealed
                    .windows(secret.len())
                    .any(|w| w == secret),
            "the stored row holds only ciphertext"
        );
    }
}

#[tokio::test]
async fn a_scheduled_message_is_not_claimed_until_the_clock_reaches_its_send_at() {
    let bench = Bench::new().await;
    let send_at = bench.now() + 60_000;
    let id = bench.send_at(UK_NUMBER, send_at).await;

    assert_eq!(
        bench.round().await,
        Round::Idle {
            next_due: Some(send_at)
        }
    );
    bench.advance(59_999);
    assert_eq!(
        bench.round().await,
        Round::Idle {
            next_due: Some(send_at)
        }
    );
    assert_eq!(bench.message(&id).status, "queued");
    assert!(bench.uk.handed().is_empty());

    bench.advance(1);
    assert_eq!(
        bench.round().await,
        Round::Dispatched {
            claimed: 1,
            unsent: 0
        }
    );
    assert_eq!(bench.message(&id).status, "sending");
    assert_eq!(bench.uk.handed().len(), 1);
}

#[tokio::test]
async fn an_idle_round_reports_when_the_earliest_scheduled_message_falls_due() {
    let bench = Bench::new().await;
    assert_eq!(bench.round().await, Round::Idle { next_due: None });

    let (later, sooner) = (bench.now() + 120_000, bench.now() + 30_000);
    bench.send_at(UK_NUMBER, later).await;
    bench.send_at(FRENCH_NUMBER, sooner).await;

    assert_eq!(
        bench.round().await,
        Round::Idle {
            next_due: Some(sooner)
        }
    );
    bench.advance_to(sooner);
    bench.round().await;
    assert_eq!(
        bench.round().await,
        Round::Idle {
            next_due: Some(later)
        }
    );
}

#[tokio::test]
async fn the_route_with_the_longest_matching_prefix_carries_the_message() {
    let bench = Bench::new().await;
    let uk = bench.send(UK_NUMBER, "to the UK").await;
    let france = bench.send(FRENCH_NUMBER, "to France").await;

    bench.round().await;

    let uk_handed: Vec<String> = bench
        .uk
        .handed()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    let world_handed: Vec<String> = bench
        .world
        .handed()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(uk_handed, vec![uk]);
    assert_eq!(world_handed, vec![france]);
}

#[tokio::test]
async fn a_round_claims_at_most_one_batch() {
    let bench = Bench::new().await;
    for i in 0..20 {
        bench.send(UK_NUMBER, &format!("message {i}")).await;
    }

    assert_eq!(
        bench.round().await,
        Round::Dispatched {
            claimed: 16,
            unsent: 0
        }
    );
    assert_eq!(
        bench.round().await,
        Round::Dispatched {
            claimed: 4,
            unsent: 0
        }
    );
    assert_eq!(bench.round().await, Round::Idle { next_due: None });
    assert_eq!(bench.uk.handed().len(), 20);
}

#[tokio::test]
async fn a_message_without_a_route_is_refused_and_uses_an_attempt() {
    let bench = Bench::new().await;
    bench.route_uk_only();
    let id = bench.send(FRENCH_NUMBER, "nowhere to go").await;

    assert_eq!(
        bench.round().await,
        Round::Dispatched {
            claimed: 1,
            unsent: 1
        }
    );

    let message = bench.message(&id);
    assert_eq!(message.status, "queued");
    assert_eq!(message.attempts, 1);
    assert_eq!(message.error_code.as_deref(), Some("no_route"));
    let wait = bench.next_due().unwrap() - bench.now();
    let (low, high) = backoff_bounds(1);
    assert!((low..=high).contains(&wait), "waited {wait} ms");
    assert!(bench.uk.handed().is_empty() && bench.world.handed().is_empty());
}

#[tokio::test]
async fn a_message_whose_connectors_are_all_down_is_postponed_without_using_an_attempt() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "waiting for the link").await;
    bench.uk.set_up(false);

    assert_eq!(
        bench.round().await,
        Round::Dispatched {
            claimed: 1,
            unsent: 1
        }
    );

    let message = bench.message(&id);
    assert_eq!(message.status, "queued");
    assert_eq!(message.attempts, 0, "an outage does not use up attempts");
    assert_eq!(message.error_code.as_deref(), Some("connectors_down"));
    let wait = bench.next_due().unwrap() - bench.now();
    assert!(
        wait > 0 && wait <= POSTPONE_MAX_MS,
        "postponed by {wait} ms"
    );
    assert!(
        bench.world.handed().is_empty(),
        "a down route does not leak to a shorter prefix"
    );

    bench.uk.set_up(true);
    bench.advance(wait);
    bench.round().await;
    let message = bench.message(&id);
    assert_eq!(message.status, "sending");
    assert_eq!(message.attempts, 1);
    assert_eq!(bench.uk.handed()[0].attempt, 1);
}

#[tokio::test]
async fn a_connector_that_fails_the_submission_postpones_the_message() {
    let bench = Bench::new().await;
    let id = bench.send(UK_NUMBER, "link trouble").await;
    bench.uk.fail_submissions(true);

    assert_eq!(
        bench.round().await,
        Round::Dispatched {
            claimed: 1,
            unsent: 1
        }
    );

    let message = bench.message(&id);
    assert_eq!(message.status, "queued");
    assert_eq!(message.attempts, 0);
    assert_eq!(message.error_code.as_deref(), Some("connector_unavailable"));
    let wait = bench.next_due().unwrap() - bench.now();
    assert!(
        wait > 0 && wait <= POSTPONE_MAX_MS,
        "postponed by {wait} ms"
    );
}

#[tokio::test]
async fn a_message_whose_validity_ran_out_in_the_queue_expires_without_being_handed_over() {
    let bench = Bench::new().await;
    let id = bench
        .send_request(SendRequest {
            to: vec![UK_NUMBER.into()],
            from: "Rampart".into(),
            body: "too late".into(),
            validity_period: Some(60),
            ..SendRequest::default()
        })
        .await;
    assert_eq!(bench.message(&id).valid_until, Some(START + 60_000));
    bench.advance(60_000);

    assert_eq!(bench.round().await, Round::Idle { next_due: None });

    let message = bench.message(&id);
    assert_eq!(message.status, "expired");
    assert_eq!(message.error_code.as_deref(), Some("validity_expired"));
    assert_eq!(message.completed_at, Some(START + 60_000));
    assert_eq!(message.attempts, 0, "the message was never attempted");
    assert!(bench.uk.handed().is_empty());
}

#[tokio::test]
async fn a_retry_that_outlives_the_validity_expires_with_a_detail_that_matches_its_code() {
    let bench = Bench::new().await;
    let id = bench
        .send_request(SendRequest {
            to: vec![UK_NUMBER.into()],
            from: "Rampart".into(),
            body: "short-lived".into(),
            validity_period: Some(60),
            ..SendRequest::default()
        })
        .await;
    bench.round().await;
    bench.record(vec![refused(&id, 1, false)]).await;
    bench.advance(60_000);

    bench.round().await;

    let message = bench.message(&id);
    assert_eq!(message.status, "expired");
    assert_eq!(message.error_code.as_deref(), Some("validity_expired"));
    assert_eq!(message.attempts, 1, "only the real attempt counts");
    assert_ne!(
        message.error_detail.as_deref(),
        Some("the carrier is busy"),
        "the detail of the earlier refusal does not explain the expiry"
    );
    assert_eq!(bench.uk.handed().len(), 1);
}

#[tokio::test]
async fn a_message_near_its_expiry_is_handed_over_with_its_validity() {
    let bench = Bench::new().await;
    let id = bench
        .send_request(SendRequest {
            to: vec![UK_NUMBER.into()],
            from: "Rampart".into(),
            body: "just in time".into(),
            validity_period: Some(60),
            ..SendRequest::default()
        })
        .await;
    bench.advance(59_999);

    bench.round().await;

    assert_eq!(bench.message(&id).status, "sending");
    assert_eq!(bench.uk.handed()[0].valid_until, Some(START + 60_000));
}

#[tokio::test]
async fn a_canceled_message_is_never_claimed() {
    let bench = Bench::new().await;
    let send_at = bench.now() + 60_000;
    let id = bench.send_at(UK_NUMBER, send_at).await;

    let canceled = bench
        .app
        .cancel_message(&Caller::operator(&bench.account), &id)
        .await
        .unwrap();
    let crate::app::messages::Canceled::Message(canceled) = canceled else {
        panic!("the operator may read messages: {canceled:?}");
    };
    assert_eq!(canceled.status.as_str(), "canceled");

    bench.advance_to(send_at);
    assert_eq!(bench.round().await, Round::Idle { next_due: None });
    assert_eq!(bench.message(&id).status, "canceled");
    assert!(bench.uk.handed().is_empty());
}

#[tokio::test]
async fn sends_interrupted_by_a_restart_are_queued_again_at_start() {
    let bench = Bench::new().await;
    let interrupted = bench.send(UK_NUMBER, "interrupted").await;
    let finished = bench.send(UK_NUMBER, "finished").await;
    bench.round().await;
    bench
        .record(vec![accepted(&finished, "uk", &["f-1"])])
        .await;
    bench.advance(30_000);

    let now = bench.now();
    let requeued = bench
        .deps
        .store
        .write(move |tx| tx.requeue_unfinished_sends(now))
        .await
        .unwrap();

    assert_eq!(requeued, 1);
    assert_eq!(bench.message(&interrupted).status, "queued");
    assert_eq!(bench.message(&finished).status, "sent");
    assert_eq!(bench.next_due(), Some(now));
    bench.round().await;
    let message = bench.message(&interrupted);
    assert_eq!(message.status, "sending");
    assert_eq!(message.attempts, 2, "the interrupted attempt counts");
}
