//! The SMS pumping defence on a manual clock: a burst of sequential numbers in one range is
//! blocked within a bounded number of messages with a security event, other ranges and other
//! accounts go on, a safe-listed range is never blocked, and the block lifts after 12 hours
//! (or when an admin lifts it).

use super::*;
use crate::clock::Clock;

fn to(number: &str) -> SendRequest {
    SendRequest {
        to: vec![number.to_owned()],
        from: "Rampart".into(),
        body: BODY.into(),
        ..SendRequest::default()
    }
}

async fn send(bench: &Bench, caller: &Caller, number: &str) -> Result<(), &'static str> {
    match bench.app.send_messages(caller, to(number)).await {
        Ok(_) => Ok(()),
        Err(AppError::Invalid { code, field, .. }) => {
            assert_eq!(field.as_deref(), Some("to"));
            Err(code)
        }
        Err(e) => panic!("{e:?}"),
    }
}

/// The account's audit trail once an event with `action` is in it (a block's event is
/// written without making the refused request wait).
async fn trail_with(bench: &Bench, action: &str) -> Vec<crate::store::audit::AuditRecord> {
    for _ in 0..200 {
        let trail = bench.app.audit_trail(Some(&bench.account), 50).unwrap();
        if trail.iter().any(|e| e.action == action) {
            return trail;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no {action} event");
}

/// Sends to sequential numbers of `range` (`+` and 9 digits), 10 a second, until one is
/// refused; how many were accepted before.
async fn burst(bench: &Bench, caller: &Caller, range: &str, at_most: u32) -> Option<u32> {
    for i in 0..at_most {
        bench.clock.advance(100);
        if let Err(code) = send(bench, caller, &format!("{range}{i:03}")).await {
            assert_eq!(code, "destination_suspected_pumping");
            return Some(i);
        }
    }
    None
}

#[tokio::test]
async fn a_burst_of_sequential_numbers_blocks_its_range_within_ten_messages_for_twelve_hours() {
    let bench = Bench::with_pumping_defence().await;
    let caller = bench.operator();
    let accepted = burst(&bench, &caller, "+447911123", 1000).await;
    // The tenth distinct number in a run trips the range, and is itself refused.
    assert_eq!(accepted, Some(9), "the range was not blocked in time");
    assert_eq!(
        send(&bench, &caller, "+447911123777").await,
        Err("destination_suspected_pumping"),
        "any number of the range is refused now"
    );

    // The security event names the range masked, the rule and the counts, never a number.
    let trail = trail_with(&bench, "security.pumping_blocked").await;
    let event = trail
        .iter()
        .find(|e| e.action == "security.pumping_blocked")
        .expect("a security event");
    assert_eq!(
        event.target,
        "prefix=+447911*** reason=sequential_numbers count=10 distinct=10"
    );
    assert!(!trail.iter().any(|e| e.target.contains("+447911123")));
    let blocks = bench.app.list_pumping_blocks_for(&caller).unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].prefix, "+447911123");
    assert_eq!(blocks[0].until, bench.clock.now_ms() + 12 * 3_600_000);

    // Other ranges, and other accounts in this one, are unaffected.
    send(&bench, &caller, OTHER_NUMBER).await.unwrap();
    send(&bench, &caller, "+447911124001").await.unwrap();
    let other = bench
        .app
        .create_account(&Actor::Operator, "b")
        .await
        .unwrap();
    send(&bench, &Caller::operator(&other.id), "+447911123777")
        .await
        .unwrap();

    // After 12 hours the block is over.
    bench.clock.advance(12 * 3_600_000);
    send(&bench, &caller, "+447911123777").await.unwrap();
}

#[tokio::test]
async fn a_safe_listed_range_is_never_blocked() {
    let bench = Bench::with_pumping_defence().await;
    let caller = bench.operator();
    assert!(
        bench
            .app
            .edit_pumping_safe_list(&caller, "+447911", false)
            .await
            .unwrap()
    );
    assert_eq!(burst(&bench, &caller, "+447911123", 300).await, None);
    assert_eq!(
        bench.app.pumping_safe_list(&caller).unwrap(),
        ["+447911".to_owned()]
    );
    // Taken off the list, the same burst is held again.
    bench
        .app
        .edit_pumping_safe_list(&caller, "+447911", true)
        .await
        .unwrap();
    assert_eq!(burst(&bench, &caller, "+447911124", 300).await, Some(9));
    bench
        .app
        .edit_pumping_safe_list(&caller, "447911", false)
        .await
        .unwrap_err();
}

#[tokio::test]
async fn scattered_numbers_in_one_range_are_blocked_past_its_velocity_and_an_admin_can_lift_it() {
    let bench = Bench::with_pumping_defence().await;
    let caller = bench.operator();
    let limit = Config::default().pumping.max_per_prefix;
    for i in 0..limit {
        bench.clock.advance(100);
        // Every third ending: no run, but many messages.
        let n = format!("+447911123{:03}", i * 3 % 1000);
        send(&bench, &caller, &n).await.unwrap();
    }
    assert_eq!(
        send(&bench, &caller, "+447911123999").await,
        Err("destination_suspected_pumping")
    );
    let trail = trail_with(&bench, "security.pumping_blocked").await;
    assert!(
        trail.iter().any(|e| e.action == "security.pumping_blocked"
            && e.target.contains("reason=prefix_velocity"))
    );

    bench
        .app
        .lift_pumping_block(&caller, "+447911123")
        .await
        .unwrap();
    send(&bench, &caller, "+447911123999").await.unwrap();
    assert!(matches!(
        bench.app.lift_pumping_block(&caller, "+447911123").await,
        Err(AppError::NotFound(_))
    ));
    let trail = bench.app.audit_trail(Some(&bench.account), 10).unwrap();
    assert!(trail.iter().any(|e| e.action == "pumping.lift"));
}
