//! A hostile SMSC: floods of multi-part fragments that never complete and of receipts for ids
//! never issued. The server must hold them in bounded memory and bounded rows.

use std::time::Instant;

use serde_json::json;

use crate::harness::{DataDir, Rampart, Smsc, WAIT};
use crate::require_node;

/// Early receipts kept per connector in this test.
const EARLY_RECEIPTS_CAP: i64 = 500;
const BOGUS_RECEIPTS: usize = 5_000;
/// Growth of the server's peak RSS the floods may cause (about 2.5 MiB measured). The caps
/// under test hold at most 256 KiB of fragments; the exact accounting is proven by the
/// reassembler's property tests, this is the end-to-end guard, with room for allocator slack
/// and the recorder's batches.
const MAX_RSS_GROWTH_KIB: u64 = 16 * 1024;

#[tokio::test]
async fn floods_of_orphan_fragments_and_bogus_receipts_stay_within_memory_and_row_caps() {
    require_node!();
    let mut smsc = Smsc::start(json!({"port": 0})).await;
    let dir = DataDir::new();
    dir.add_connector(
        "carrier",
        smsc.port,
        &[
            "--option=mo_max_pending=64",
            "--option=mo_max_total_bytes=262144",
        ],
    );
    let cap = EARLY_RECEIPTS_CAP.to_string();
    let app = Rampart::start_with_env(
        dir,
        &[("RAMPART_DELIVERY__EARLY_RECEIPTS_MAX_PER_CONNECTOR", &cap)],
    );
    app.wait_until_bound("carrier").await;
    let baseline = app.peak_rss_kib();

    // Messages of 255 parts that never complete: 2,000 with one small part each (the count cap
    // binds), then 300 with 50 parts of 130 bytes each, about 10 KiB a message (the byte cap
    // binds): 17,000 fragments against caps of 64 messages and 256 KiB.
    smsc.control(
        json!({"cmd": "flood_mo", "messages": 2_000, "parts": 1, "total": 255,
        "part_bytes": 10}),
    )
    .await;
    smsc.control(
        json!({"cmd": "flood_mo", "messages": 300, "parts": 50, "total": 255,
        "part_bytes": 130}),
    )
    .await;
    smsc.control(json!({"cmd": "flood_receipts", "count": BOGUS_RECEIPTS}))
        .await;
    let done = smsc.wait_for(3, |r| r["event"] == "flood_done").await;
    for flood in &done {
        assert_eq!(
            flood["failed"], 0,
            "every deliver_sm is answered OK: {flood}"
        );
    }

    let last = format!(
        "SELECT COUNT(*) FROM early_receipts WHERE provider_id = 'bogus-{}'",
        BOGUS_RECEIPTS - 1
    );
    let deadline = Instant::now() + WAIT;
    let mut most_rows = 0;
    loop {
        let rows = app.query_count("SELECT COUNT(*) FROM early_receipts");
        most_rows = most_rows.max(rows);
        if app.query_count(&last) == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the last bogus receipt was never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        most_rows <= EARLY_RECEIPTS_CAP,
        "early_receipts grew to {most_rows} rows, over the cap of {EARLY_RECEIPTS_CAP}"
    );
    assert_eq!(
        app.query_count("SELECT COUNT(*) FROM early_receipts"),
        EARLY_RECEIPTS_CAP
    );

    let growth = app.peak_rss_kib().saturating_sub(baseline);
    assert!(
        growth < MAX_RSS_GROWTH_KIB,
        "peak RSS grew by {growth} KiB (from {baseline} KiB)"
    );
    let log = app.log();
    for reason in [
        "too many messages wait for parts",
        "waiting parts hold too many bytes",
    ] {
        assert!(log.contains(reason), "no eviction for `{reason}`");
    }
    assert!(
        !log.contains("447700900001"),
        "dropped fragments are logged with masked numbers only"
    );
    eprintln!("peak RSS {baseline} KiB -> +{growth} KiB; early_receipts peaked at {most_rows}");
}
