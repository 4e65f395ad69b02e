//! An account's retention on the manual clock: bodies readable until the erase period has
//! passed and erased after it (the rest kept), whole messages and their parts deleted after
//! the purge period, unfinished messages never touched, inbound messages alike, and every
//! account by its own settings only.

use super::*;
use crate::app::AppError;
use crate::app::inbound::InboundQuery;
use crate::messaging::MessageStatus;

const DAY: Millis = 24 * 3600 * 1000;
const OUR_NUMBER: &str = "+447911123499";
const HANDSET: &str = "+447400123456";

impl Bench {
    async fn set_retention(&self, account: &str, erase: Option<u32>, purge: Option<u32>) {
        self.app
            .set_retention_of(&Actor::Operator, account, erase, purge)
            .await
            .unwrap();
    }

    /// Sends to the UK and settles the message as delivered, one carrier id per segment.
    async fn delivered(&self, body: &str, provider_ids: &[&str]) -> String {
        let id = self.send(UK_NUMBER, body).await;
        self.round().await;
        self.record(vec![accepted(&id, "uk", provider_ids)]).await;
        let receipts = provider_ids
            .iter()
            .map(|p| receipt("uk", p, ReceiptState::Delivered, None))
            .collect();
        self.record(receipts).await;
        assert_eq!(self.message(&id).status, "delivered");
        id
    }

    fn opened(&self, id: &str) -> Result<crate::app::messages::Message, AppError> {
        self.app.get_message(&Caller::operator(&self.account), id)
    }

    fn parts(&self, id: &str) -> usize {
        self.deps
            .store
            .read(|tx| tx.count_message_parts(id))
            .unwrap()
    }

    fn retention_events(&self, account: &str) -> Vec<String> {
        self.app
            .audit_trail(Some(account), 100)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "retention.applied")
            .map(|e| e.target)
            .collect()
    }

    async fn inbound(&self, body: &str) -> String {
        self.record(vec![ConnectorEvent::Inbound {
            connector: Arc::from("uk"),
            from: HANDSET.into(),
            to: OUR_NUMBER.into(),
            body: body.into(),
        }])
        .await;
        let page = self
            .app
            .list_inbound(&Caller::operator(&self.account), InboundQuery::default())
            .await
            .unwrap();
        page.data[0].id.clone()
    }
}

#[tokio::test]
async fn a_body_is_readable_until_its_erase_period_has_passed_and_erased_after_with_the_rest_kept()
{
    let bench = Bench::new().await;
    bench
        .set_retention(&bench.account, Some(30), Some(365))
        .await;
    let id = bench.delivered("Your code is 918273", &["p-1"]).await;
    let created = bench.message(&id).created_at;

    bench.advance_to(created + 30 * DAY);
    assert!(bench.app.apply_retention().await.unwrap().is_empty());
    let kept = bench.opened(&id).unwrap();
    assert_eq!(kept.body.as_deref(), Some("Your code is 918273"));
    assert_eq!(kept.body_erased_at, None);

    bench.advance(1);
    let changed = bench.app.apply_retention().await.unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].1.messages_erased, 1);
    let erased = bench.opened(&id).unwrap();
    assert_eq!(erased.body, None);
    assert_eq!(erased.body_erased_at, Some(bench.now()));
    assert_eq!(erased.status, MessageStatus::Delivered);
    assert_eq!(erased.to, UK_NUMBER);
    assert_eq!(erased.from, "Rampart");
    assert_eq!(erased.created_at, created);
    assert!(
        bench.message(&id).body_sealed.is_empty(),
        "nothing of the body is stored"
    );
    assert_eq!(bench.parts(&id), 1, "erasing keeps the delivery parts");
    assert_eq!(
        bench.retention_events(&bench.account),
        vec!["messages_erased=1 messages_purged=0 inbound_erased=0 inbound_purged=0"]
    );

    let verified = crate::app::integrity::verify_data_dir(bench.app.config(), None).unwrap();
    assert!(
        verified.is_clean(),
        "an erased body is no integrity finding: {:?}",
        verified.findings().collect::<Vec<_>>()
    );

    // Nothing left to do: a second run changes nothing and records nothing.
    assert!(bench.app.apply_retention().await.unwrap().is_empty());
    assert_eq!(bench.retention_events(&bench.account).len(), 1);
}

#[tokio::test]
async fn after_the_purge_period_a_message_is_deleted_with_its_parts() {
    let bench = Bench::new().await;
    bench.set_retention(&bench.account, Some(1), Some(2)).await;
    let id = bench.delivered(TWO_PART_BODY, &["p-1", "p-2"]).await;
    assert_eq!(bench.parts(&id), 2);
    let created = bench.message(&id).created_at;

    bench.advance_to(created + 2 * DAY + 1);
    let changed = bench.app.apply_retention().await.unwrap();

    assert_eq!(changed[0].1.messages_purged, 1);
    assert_eq!(
        changed[0].1.messages_erased, 0,
        "purged rows are not erased first"
    );
    assert!(matches!(bench.opened(&id), Err(AppError::NotFound(_))));
    assert_eq!(bench.parts(&id), 0);
    assert_eq!(
        bench.retention_events(&bench.account),
        vec!["messages_erased=0 messages_purged=1 inbound_erased=0 inbound_purged=0"]
    );
}

#[tokio::test]
async fn a_queued_or_scheduled_message_older_than_both_periods_is_untouched() {
    let bench = Bench::new().await;
    bench.set_retention(&bench.account, Some(1), Some(1)).await;
    bench.route_uk_only();
    // No route: postponed, queued, for as long as the test runs.
    let unroutable = bench.send(FRENCH_NUMBER, "waiting for a route").await;
    let scheduled = bench.send_at(UK_NUMBER, START + 30 * DAY).await;
    bench.round().await;

    bench.advance(10 * DAY);
    assert!(bench.app.apply_retention().await.unwrap().is_empty());

    for id in [&unroutable, &scheduled] {
        let message = bench.opened(id).unwrap();
        assert_eq!(message.status, MessageStatus::Queued, "{id}");
        assert!(message.body.is_some(), "{id}");
    }
    assert!(bench.retention_events(&bench.account).is_empty());
}

#[tokio::test]
async fn inbound_bodies_are_erased_then_inbound_messages_deleted_by_their_age() {
    let bench = Bench::new().await;
    bench
        .app
        .assign_number(&Actor::Operator, OUR_NUMBER, &bench.account)
        .await
        .unwrap();
    bench.set_retention(&bench.account, Some(1), Some(3)).await;
    let caller = Caller::operator(&bench.account);
    let id = bench.inbound("STOP").await;
    let received = bench.app.get_inbound(&caller, &id).unwrap().received_at;

    bench.advance_to(received + DAY);
    assert!(bench.app.apply_retention().await.unwrap().is_empty());
    assert_eq!(
        bench.app.get_inbound(&caller, &id).unwrap().body.as_deref(),
        Some("STOP")
    );

    bench.advance(1);
    let changed = bench.app.apply_retention().await.unwrap();
    assert_eq!(changed[0].1.inbound_erased, 1);
    let erased = bench.app.get_inbound(&caller, &id).unwrap();
    assert_eq!(erased.body, None);
    assert_eq!(erased.body_erased_at, Some(bench.now()));
    assert_eq!(erased.from, HANDSET);
    assert_eq!(erased.to, OUR_NUMBER);
    let verified = crate::app::integrity::verify_data_dir(bench.app.config(), None).unwrap();
    assert!(
        verified.is_clean(),
        "an erased inbound body is no integrity finding"
    );

    bench.advance_to(received + 3 * DAY + 1);
    let changed = bench.app.apply_retention().await.unwrap();
    assert_eq!(changed[0].1.inbound_purged, 1);
    assert!(matches!(
        bench.app.get_inbound(&caller, &id),
        Err(AppError::NotFound(_))
    ));
    assert_eq!(
        bench.retention_events(&bench.account),
        vec![
            "messages_erased=0 messages_purged=0 inbound_erased=0 inbound_purged=1",
            "messages_erased=0 messages_purged=0 inbound_erased=1 inbound_purged=0",
        ]
    );
}

#[tokio::test]
async fn an_account_without_retention_keeps_everything_whatever_another_account_sets() {
    let bench = Bench::new().await;
    let other = bench
        .app
        .create_account(&Actor::Operator, "short memory")
        .await
        .unwrap()
        .id;
    bench.set_retention(&other, Some(1), Some(5)).await;
    let ours = bench.delivered("kept for ever", &["ours-1"]).await;
    let request = SendRequest {
        to: vec![UK_NUMBER.into()],
        from: "Rampart".into(),
        body: "erased soon".into(),
        ..SendRequest::default()
    };
    let theirs = match bench
        .app
        .send_messages(&Caller::operator(&other), request)
        .await
        .unwrap()
    {
        SendOutcome::Accepted(accepted) => accepted[0].id.clone(),
        SendOutcome::Replayed(_) => panic!("a fresh send is accepted"),
    };
    bench.round().await;
    bench.record(vec![accepted(&theirs, "uk", &["t-1"])]).await;
    bench
        .record(vec![receipt("uk", "t-1", ReceiptState::Delivered, None)])
        .await;

    bench.advance(3 * DAY);
    let changed = bench.app.apply_retention().await.unwrap();

    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0, other);
    assert_eq!(changed[0].1.messages_erased, 1);
    assert_eq!(bench.message(&ours).body_erased_at, None);
    assert_eq!(
        bench.opened(&ours).unwrap().body.as_deref(),
        Some("kept for ever")
    );
    let elsewhere = bench
        .app
        .get_message(&Caller::operator(&other), &theirs)
        .unwrap();
    assert_eq!(elsewhere.body, None);
    assert!(elsewhere.body_erased_at.is_some());
    assert!(bench.retention_events(&bench.account).is_empty());
    assert_eq!(bench.retention_events(&other).len(), 1);
}

#[tokio::test]
async fn retention_settings_are_refused_outside_1_to_36500_days_or_with_purge_before_erase() {
    let bench = Bench::new().await;
    for (erase, purge) in [(Some(0), None), (None, Some(36_501)), (Some(30), Some(29))] {
        let refused = bench
            .app
            .set_retention_of(&Actor::Operator, &bench.account, erase, purge)
            .await;
        assert!(
            matches!(
                refused,
                Err(AppError::Invalid {
                    code: "invalid_retention",
                    ..
                })
            ),
            "{erase:?} {purge:?}: {refused:?}"
        );
    }
    let set = bench
        .app
        .set_retention_of(&Actor::Operator, &bench.account, Some(30), None)
        .await
        .unwrap();
    assert_eq!(set.erase_bodies_after_days(), Some(30));
    assert_eq!(bench.app.retention_of(&bench.account).unwrap(), set);
    let audited = bench
        .app
        .audit_trail(Some(&bench.account), 10)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "account.retention")
        .count();
    assert_eq!(audited, 1, "one change, one event; refusals change nothing");
}

#[tokio::test]
async fn more_rows_than_one_batch_are_all_erased_in_one_run() {
    let bench = Bench::new().await;
    bench.set_retention(&bench.account, Some(1), None).await;
    // Canceled is final: the quickest way to many finished messages.
    let caller = Caller::operator(&bench.account);
    let mut ids = Vec::new();
    for batch in 0..3 {
        let to: Vec<String> = (0..450)
            .map(|i| format!("+4479111{:05}", batch * 1000 + i))
            .collect();
        let outcome = bench
            .app
            .send_messages(
                &caller,
                SendRequest {
                    to,
                    from: "Rampart".into(),
                    body: "many".into(),
                    send_at: Some(rfc3339(START + DAY)),
                    ..SendRequest::default()
                },
            )
            .await
            .unwrap();
        let SendOutcome::Accepted(accepted) = outcome else {
            panic!("accepted");
        };
        ids.extend(accepted.into_iter().map(|m| m.id));
    }
    for id in &ids {
        bench.app.cancel_message(&caller, id).await.unwrap();
    }

    bench.advance(2 * DAY);
    let changed = bench.app.apply_retention().await.unwrap();

    assert_eq!(changed[0].1.messages_erased, ids.len());
    assert!(
        ids.iter()
            .all(|id| bench.message(id).body_erased_at.is_some())
    );
}

#[tokio::test]
async fn a_late_retry_of_a_purged_send_is_a_conflict_not_a_server_error() {
    let bench = Bench::new().await;
    bench.set_retention(&bench.account, None, Some(1)).await;
    let request = || SendRequest {
        to: vec![UK_NUMBER.into()],
        from: "Rampart".into(),
        body: "once".into(),
        idempotency: Some(
            crate::app::messages::Idempotency::new("order-1", b"the same request").unwrap(),
        ),
        ..SendRequest::default()
    };
    let id = bench.send_request(request()).await;
    bench.round().await;
    bench.record(vec![accepted(&id, "uk", &["p-1"])]).await;
    bench
        .record(vec![receipt("uk", "p-1", ReceiptState::Delivered, None)])
        .await;
    bench.advance(DAY + 1);
    bench.app.apply_retention().await.unwrap();

    let retried = bench
        .app
        .send_messages(&Caller::operator(&bench.account), request())
        .await;
    assert!(
        matches!(
            retried,
            Err(AppError::Conflict {
                code: "idempotency_messages_purged",
                ..
            })
        ),
        "{retried:?}"
    );
}
