//! Sending through SMPP: the exact bytes on the wire, receipts, and TLS.

use serde_json::{Value, json};

use crate::harness::{DataDir, Rampart, Smsc, hex, self_signed};
use crate::require_node;

/// The accepted `submit_sm` to one destination (digits, as on the wire).
fn submits_to(smsc: &Smsc, destination: &str) -> Vec<Value> {
    smsc.accepted()
        .into_iter()
        .filter(|r| r["destination_addr"] == destination)
        .collect()
}

/// A server whose every destination goes to the SMSC through connector `carrier`.
async fn server_on(smsc: &Smsc, extra: &[&str]) -> Rampart {
    let dir = DataDir::new();
    dir.add_connector("carrier", smsc.port, extra);
    dir.cli(&["route", "add", "--prefix", "", "--connector", "carrier"]);
    let app = Rampart::start(dir);
    app.wait_until_bound("carrier").await;
    app
}

#[tokio::test]
async fn gsm7_ucs2_and_concatenated_messages_reach_the_smsc_byte_exact() {
    require_node!();
    let smsc = Smsc::start(json!({"port": 0})).await;
    let app = server_on(&smsc, &[]).await;

    let gsm = app.send(json!("+447911123456"), "Price 5€ [ok] {x}").await;
    let ucs2 = app.send(json!("+447911123457"), "Привет 👋").await;
    let long_body: String = (0..200u8).map(|i| char::from(b'a' + i % 26)).collect();
    let long = app.send(json!("+447911123458"), &long_body).await;
    for id in [&gsm[0], &ucs2[0], &long[0]] {
        app.wait_for_status(id, &["delivered"]).await;
    }

    // GSM-7, one septet per byte, extension characters escaped with 0x1B.
    let sent = submits_to(&smsc, "447911123456");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let expected = "50726963652035".to_owned()
        + "1b65"
        + "20"
        + "1b3c"
        + "6f6b"
        + "1b3e"
        + "20"
        + "1b28"
        + "78"
        + "1b29";
    assert_eq!(sent[0]["short_message"], expected);
    assert_eq!(sent[0]["data_coding"], 0);
    assert_eq!(sent[0]["esm_class"], 0);
    assert_eq!(sent[0]["registered_delivery"], 1);
    assert_eq!(
        (
            sent[0]["dest_addr_ton"].clone(),
            sent[0]["dest_addr_npi"].clone()
        ),
        (json!(1), json!(1))
    );
    assert_eq!(sent[0]["source_addr"], "Rampart");
    assert_eq!(sent[0]["source_addr_ton"], 5);

    // UCS-2 as UTF-16BE, the emoji as a surrogate pair.
    let sent = submits_to(&smsc, "447911123457");
    assert_eq!(sent.len(), 1, "{sent:?}");
    let utf16: Vec<u8> = "Привет 👋"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    assert_eq!(sent[0]["short_message"], hex(&utf16));
    assert_eq!(sent[0]["data_coding"], 8);

    // Two parts of 153 and 47 septets, each behind a concatenation header with one reference.
    let mut parts = submits_to(&smsc, "447911123458");
    assert_eq!(parts.len(), 2, "{parts:?}");
    parts.sort_by_key(|p| p["short_message"].as_str().unwrap()[10..12].to_owned());
    let headers: Vec<String> = parts
        .iter()
        .map(|p| p["short_message"].as_str().unwrap()[..12].to_owned())
        .collect();
    let reference = &headers[0][6..8];
    assert_eq!(headers[0], format!("050003{reference}0201"));
    assert_eq!(headers[1], format!("050003{reference}0202"));
    let text: String = parts
        .iter()
        .map(|p| p["short_message"].as_str().unwrap()[12..].to_owned())
        .collect();
    assert_eq!(text, hex(long_body.as_bytes()));
    assert_eq!(
        parts[0]["short_message"].as_str().unwrap().len(),
        (6 + 153) * 2
    );
    for part in &parts {
        assert_eq!(part["esm_class"], 0x40);
    }
    assert_eq!(app.message(&long[0]).await["segments"], 2);
}

#[tokio::test]
async fn receipts_drive_messages_to_delivered_and_undelivered() {
    require_node!();
    let smsc = Smsc::start(json!({"port": 0, "undeliverable": "447911123459"})).await;
    let app = server_on(&smsc, &[]).await;
    let ids = app
        .send(
            json!(["+447911123456", "+447911123459"]),
            "Your code is 1234",
        )
        .await;
    let delivered = app.wait_for_status(&ids[0], &["delivered"]).await;
    assert!(delivered.get("error_code").is_none(), "{delivered}");
    let undelivered = app.wait_for_status(&ids[1], &["undelivered"]).await;
    assert_eq!(undelivered["error_code"], "smpp_err_001", "{undelivered}");
    assert_eq!(smsc.recorded("receipt_sent").len(), 2);
}

#[tokio::test]
async fn tls_bind_delivers_only_to_an_smsc_whose_certificate_is_trusted() {
    require_node!();
    let dir = DataDir::new();
    let (cert, key) = self_signed(dir.root());
    let smsc = Smsc::start(json!({"port": 0, "tls_cert": cert, "tls_key": key})).await;
    dir.add_connector(
        "untrusted",
        smsc.port,
        &["--tls", "--option=tls_server_name=localhost"],
    );
    dir.add_connector(
        "secure",
        smsc.port,
        &[
            "--tls-ca",
            cert.to_str().unwrap(),
            "--option=tls_server_name=localhost",
        ],
    );
    dir.cli(&[
        "route",
        "add",
        "--prefix",
        "+44",
        "--connector",
        "untrusted",
    ]);
    dir.cli(&[
        "route",
        "add",
        "--prefix",
        "+44",
        "--connector",
        "secure",
        "--priority",
        "1",
    ]);
    let app = Rampart::start(dir);
    let secure = app.wait_until_bound("secure").await;
    assert_eq!(secure["tls"], true, "{secure}");
    assert!(
        !app.log().contains("SMPP connector without TLS"),
        "{}",
        app.log()
    );

    let ids = app.send(json!("+447911123456"), "over TLS").await;
    app.wait_for_status(&ids[0], &["delivered"]).await;
    assert_eq!(submits_to(&smsc, "447911123456").len(), 1);
    let untrusted = app.wait_for_connector("untrusted", |c| c.is_object()).await;
    assert_eq!(untrusted["up"], false, "{untrusted}");
    // The untrusted connector never got past the handshake, so it never bound.
    assert_eq!(
        smsc.recorded("bind").len(),
        1,
        "{:?}",
        smsc.recorded("bind")
    );
}
