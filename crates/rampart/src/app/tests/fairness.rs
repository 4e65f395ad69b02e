//! Fair sharing of the delivery queue: one account's large backlog does not hold back
//! another account's message.

use super::*;
use crate::clock::Clock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_message_is_in_the_next_claim_behind_a_backlog_of_200000() {
    let bench = Bench::new().await;
    let busy = Caller::operator(&bench.account);
    let numbers: Vec<String> = (0..1_000).map(|i| format!("+4479111{i:05}")).collect();
    for _ in 0..200 {
        accepted(&bench.app, &busy, &numbers, "newsletter").await;
    }
    bench.clock.advance(1_000);
    let other = bench
        .app
        .create_account(&Actor::Operator, "b")
        .await
        .unwrap()
        .id;
    let code = accepted(
        &bench.app,
        &Caller::operator(&other),
        &[NUMBER.into()],
        BODY,
    )
    .await;
    bench.clock.advance(1_000);
    let now = bench.clock.now_ms();
    let claimed = bench
        .app
        .store
        .write(move |tx| tx.claim_due(now, 256))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 256);
    assert!(
        claimed.iter().any(|m| m.id == code[0]),
        "the other account's message is claimed at once"
    );
    assert_eq!(
        claimed
            .iter()
            .filter(|m| m.account_id == bench.account)
            .count(),
        255,
        "the busy account gets the rest of the claim"
    );
    // The busy account's own order is kept: its oldest first.
    let next = bench
        .app
        .store
        .write(move |tx| tx.claim_due(now, 10))
        .await
        .unwrap();
    assert_eq!(next.len(), 10);
    assert!(next.iter().all(|m| m.account_id == bench.account));
}
