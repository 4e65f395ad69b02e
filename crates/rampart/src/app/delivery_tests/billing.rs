//! Spend on a manual clock: a prepaid account's sends reserve their price in the send's own
//! transaction, receipts charge or release it, refunds honour their window, caps and the
//! low-balance alert hold; after every step the balance equals the ledger's sum.

use super::*;
use crate::app::AppError;
use crate::app::billing::Balance;
use crate::delivery::connector::ReceiptState;
use crate::store::billing::BillingSettings;

const DAY_MS: Millis = 86_400_000;
/// 0.05 per segment to the UK, 0.04 to +4474; nothing priced elsewhere.
const PRICES: &str = "prefix,price_per_segment\n+44,0.05\n+4474,0.04\n";
const UK_PRICE: i64 = 50_000;

impl Bench {
    async fn prepaid(&self, settings: BillingSettings, credit: &str) {
        self.app
            .load_prices(&Actor::Operator, PRICES)
            .await
            .unwrap();
        self.app
            .enable_billing(&Actor::Operator, &self.account, settings)
            .await
            .unwrap();
        if credit != "0" {
            self.app
                .credit_account(
                    &Caller::operator(&self.account),
                    &self.account,
                    credit,
                    None,
                )
                .await
                .unwrap();
        }
    }

    fn balance(&self) -> Balance {
        let balance = self
            .app
            .balance(&Caller::operator(&self.account), &self.account)
            .unwrap();
        assert_eq!(
            balance.balance,
            self.app.ledger_sum(&self.account).unwrap(),
            "the balance equals the ledger's sum"
        );
        balance
    }

    fn kinds(&self) -> Vec<String> {
        let page = self
            .app
            .ledger(
                &Caller::operator(&self.account),
                &self.account,
                None,
                Some(200),
            )
            .unwrap();
        page.data.into_iter().map(|e| e.kind).collect()
    }

    async fn try_send(&self, to: &str, body: &str) -> Result<SendOutcome, AppError> {
        self.app
            .send_messages(
                &Caller::operator(&self.account),
                SendRequest {
                    to: vec![to.into()],
                    from: "Rampart".into(),
                    body: body.into(),
                    ..SendRequest::default()
                },
            )
            .await
    }

    /// Sends one message to the UK and has the carrier accept it as `provider_id`.
    async fn send_and_accept(&self, provider_id: &str) -> String {
        let id = self.send(UK_NUMBER, "hello").await;
        self.round().await;
        self.record(vec![accepted(&id, "uk", &[provider_id])]).await;
        id
    }

    async fn refund(&self, id: &str) -> Result<crate::app::billing::Refunded, AppError> {
        self.app
            .refund_message(&Caller::operator(&self.account), id)
            .await
    }
}

fn conflict_code(result: Result<impl std::fmt::Debug, AppError>) -> &'static str {
    match result {
        Err(AppError::Conflict { code, .. }) => code,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn a_delivered_message_is_charged_and_an_undelivered_one_released() {
    let bench = Bench::new().await;
    bench.prepaid(BillingSettings::default(), "1.00").await;
    let delivered = bench.send_and_accept("d-1").await;
    let undelivered = bench.send_and_accept("u-1").await;
    assert_eq!(bench.balance().balance, 1_000_000 - 2 * UK_PRICE);

    bench
        .record(vec![receipt("uk", "d-1", ReceiptState::Delivered, None)])
        .await;
    assert_eq!(bench.message(&delivered).status, "delivered");
    assert_eq!(
        bench.balance().balance,
        1_000_000 - 2 * UK_PRICE,
        "a charge moves nothing"
    );

    bench
        .record(vec![receipt(
            "uk",
            "u-1",
            ReceiptState::Undelivered,
            Some("unreachable"),
        )])
        .await;
    assert_eq!(bench.message(&undelivered).status, "undelivered");
    assert_eq!(
        bench.balance().balance,
        1_000_000 - UK_PRICE,
        "the reservation came back"
    );
    assert_eq!(
        bench.kinds(),
        ["credit", "reservation", "reservation", "charge", "release"]
    );
}

#[tokio::test]
async fn a_failed_or_canceled_message_gives_its_reservation_back() {
    let bench = Bench::new().await;
    bench.prepaid(BillingSettings::default(), "1.00").await;
    let id = bench.send(UK_NUMBER, "hello").await;
    bench.round().await;
    bench.record(vec![refused(&id, 1, true)]).await;
    assert_eq!(bench.message(&id).status, "failed");
    let scheduled = bench.send_at(UK_NUMBER, START + DAY_MS).await;
    assert_eq!(bench.balance().balance, 1_000_000 - UK_PRICE);
    bench
        .app
        .cancel_message(&Caller::operator(&bench.account), &scheduled)
        .await
        .unwrap();
    assert_eq!(bench.balance().balance, 1_000_000);
}

#[tokio::test]
async fn a_refund_is_accepted_on_day_29_and_refused_on_day_31_and_only_once() {
    let bench = Bench::new().await;
    bench.prepaid(BillingSettings::default(), "1.00").await;
    let early = bench.send_and_accept("a-1").await;
    let late = bench.send_and_accept("a-2").await;
    bench
        .record(vec![
            receipt("uk", "a-1", ReceiptState::Delivered, None),
            receipt("uk", "a-2", ReceiptState::Delivered, None),
        ])
        .await;
    let charged = bench.balance().balance;

    bench.advance(29 * DAY_MS);
    let refunded = bench.refund(&early).await.unwrap();
    assert_eq!(refunded.amount, UK_PRICE);
    assert_eq!(bench.balance().balance, charged + UK_PRICE);
    assert_eq!(
        conflict_code(bench.refund(&early).await),
        "already_refunded"
    );

    bench.advance(2 * DAY_MS);
    assert_eq!(
        conflict_code(bench.refund(&late).await),
        "refund_window_closed"
    );
    assert_eq!(bench.balance().balance, charged + UK_PRICE);
}

#[tokio::test]
async fn a_message_that_was_not_charged_is_not_refundable() {
    let bench = Bench::new().await;
    bench.prepaid(BillingSettings::default(), "1.00").await;
    let pending = bench.send_and_accept("p-1").await;
    assert_eq!(
        conflict_code(bench.refund(&pending).await),
        "not_refundable"
    );
    assert!(matches!(
        bench.refund("msg_unknown").await,
        Err(AppError::NotFound("message"))
    ));
}

#[tokio::test]
async fn a_send_the_balance_cannot_cover_is_refused_and_stores_nothing() {
    let bench = Bench::new().await;
    bench.prepaid(BillingSettings::default(), "0.07").await;
    bench.send(UK_NUMBER, "one").await;
    let refused = bench.try_send(UK_NUMBER, "two").await;
    assert!(
        matches!(
            refused,
            Err(AppError::PaymentRequired {
                code: "insufficient_balance",
                ..
            })
        ),
        "{refused:?}"
    );
    // A batch is all or nothing: 0.05 and 0.04 against 0.02 left.
    let batch = bench
        .app
        .send_messages(
            &Caller::operator(&bench.account),
            SendRequest {
                to: vec![UK_NUMBER.into(), "+447400123456".into()],
                to_is_list: true,
                from: "Rampart".into(),
                body: "both".into(),
                ..SendRequest::default()
            },
        )
        .await;
    assert!(matches!(batch, Err(AppError::PaymentRequired { .. })));
    let stored = bench
        .app
        .list_messages(&Caller::operator(&bench.account), Default::default())
        .await
        .unwrap();
    assert_eq!(stored.data.len(), 1, "only the paid-for message is stored");
    assert_eq!(bench.balance().balance, 20_000);
}

#[tokio::test]
async fn a_destination_without_a_price_is_refused_for_a_prepaid_account_only() {
    let bench = Bench::new().await;
    bench
        .send(FRENCH_NUMBER, "unbilled accounts send anywhere")
        .await;
    bench.prepaid(BillingSettings::default(), "1.00").await;
    let refused = bench.try_send(FRENCH_NUMBER, "no price").await;
    assert!(
        matches!(
            refused,
            Err(AppError::Invalid {
                code: "no_price_for_destination",
                ..
            })
        ),
        "{refused:?}"
    );
    // The longest prefix wins, per segment.
    bench.send("+447400123456", TWO_PART_BODY).await;
    assert_eq!(bench.balance().balance, 1_000_000 - 2 * 40_000);
}

#[tokio::test]
async fn daily_and_monthly_caps_refuse_spend_past_them() {
    let bench = Bench::new().await;
    let settings = BillingSettings {
        low_balance_threshold: 0,
        daily_cap: Some(2 * UK_PRICE),
        monthly_cap: Some(3 * UK_PRICE),
    };
    bench.prepaid(settings, "10.00").await;
    let cap_code = |r: Result<SendOutcome, AppError>| match r {
        Err(AppError::PaymentRequired { code, .. }) => code,
        other => panic!("expected a 402, got {other:?}"),
    };
    bench.send(UK_NUMBER, "1").await;
    bench.send(UK_NUMBER, "2").await;
    assert_eq!(
        cap_code(bench.try_send(UK_NUMBER, "3").await),
        "spend_cap_exceeded"
    );
    bench.advance(DAY_MS);
    bench.send(UK_NUMBER, "3").await;
    assert_eq!(
        cap_code(bench.try_send(UK_NUMBER, "4").await),
        "spend_cap_exceeded"
    );
    assert_eq!(bench.balance().balance, 10_000_000 - 3 * UK_PRICE);
}

#[tokio::test]
async fn the_low_balance_event_is_recorded_once_until_the_account_is_topped_up() {
    let bench = Bench::new().await;
    let settings = BillingSettings {
        low_balance_threshold: 180_000,
        ..BillingSettings::default()
    };
    bench.prepaid(settings, "0.30").await;
    let low_events = || {
        bench
            .app
            .audit_trail(Some(&bench.account), 100)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "billing.low_balance")
            .count()
    };
    bench.send(UK_NUMBER, "1").await;
    bench.send(UK_NUMBER, "2").await;
    assert_eq!(low_events(), 0, "0.20 left, over 0.18");
    bench.send(UK_NUMBER, "3").await;
    bench.send(UK_NUMBER, "4").await;
    assert_eq!(low_events(), 1, "once, not once per message");
    bench
        .app
        .credit_account(
            &Caller::operator(&bench.account),
            &bench.account,
            "1.00",
            None,
        )
        .await
        .unwrap();
    bench.send(UK_NUMBER, "5").await;
    assert_eq!(low_events(), 1, "1.05 left after the top-up");
    for n in 0..18 {
        bench.send(UK_NUMBER, &n.to_string()).await;
    }
    assert_eq!(low_events(), 2, "armed again by the top-up");
    bench.balance();
}

#[tokio::test]
async fn a_price_file_with_a_bad_line_is_refused_naming_it_and_changes_nothing() {
    let bench = Bench::new().await;
    bench.prepaid(BillingSettings::default(), "1.00").await;
    let refused = bench
        .app
        .load_prices(
            &Actor::Operator,
            "prefix,price_per_segment\n+33,0.06\n+1,x\n",
        )
        .await;
    match refused {
        Err(AppError::Invalid { code, message, .. }) => {
            assert_eq!(code, "invalid_price_file");
            assert!(message.starts_with("line 3:"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    bench.send(UK_NUMBER, "still priced").await;
    assert!(
        bench
            .try_send(FRENCH_NUMBER, "still unpriced")
            .await
            .is_err()
    );
}
