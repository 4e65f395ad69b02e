//! Binding, submitting and receiving receipts, over plain TCP and TLS, transceiver and
//! transmitter + receiver.

use rampart_smpp::{Address, BindMode, LinkState, ReceiptState, SmppEvent, TlsConfig};
use serde_json::json;

use crate::harness::{Smsc, TestClient, config, gsm7_submission, smsc_options};
use crate::require_node;

#[tokio::test]
async fn plain_bind_submit_and_delivered_receipt() {
    require_node!();
    let smsc = Smsc::start(smsc_options()).await;
    let mut client = TestClient::spawn(config(smsc.port));
    client
        .wait_for(|event| *event == SmppEvent::Link(LinkState::Bound))
        .await;
    client.submit(gsm7_submission(1, b"Hello")).await;

    let SmppEvent::Submitted {
        reference,
        part,
        message_id,
    } = client
        .wait_for(|event| matches!(event, SmppEvent::Submitted { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!((reference, part), (1, 0));
    let receipt = client
        .wait_for(|event| matches!(event, SmppEvent::Receipt { .. }))
        .await;
    assert_eq!(
        receipt,
        SmppEvent::Receipt {
            message_id: message_id.clone(),
            state: ReceiptState::Delivered,
            error: Some("000".into()),
            done_at: Some("2501011201".into()),
        }
    );

    let submit = &smsc.recorded("submit_sm")[0];
    assert_eq!(submit["esm_class"], 0x00);
    assert_eq!(submit["registered_delivery"], 0x01);
    assert_eq!(submit["data_coding"], 0x00);
    assert_eq!(submit["short_message"], "48656c6c6f");
    assert_eq!(submit["source_addr_ton"], 5);
    assert_eq!(submit["source_addr"], "Rampart");
    assert_eq!(submit["dest_addr_ton"], 1);
    assert_eq!(submit["destination_addr"], "447700900123");
    let bind = &smsc.recorded("bind")[0];
    assert_eq!(bind["mode"], "transceiver");
    assert_eq!(bind["interface_version"], 0x34);
    // The receipt was acknowledged with deliver_sm_resp, status 0.
    smsc.wait_for_record(|record| {
        record["event"] == "deliver_sm_resp" && record["message_id"] == message_id.as_str()
    })
    .await;
    let status = client.handle.status();
    assert!(status.bound);
    assert_eq!(status.submitted_total, 1);

    client.shutdown().await;
    smsc.wait_for_record(|record| record["event"] == "unbind")
        .await;
}

#[tokio::test]
async fn undeliverable_destination_gets_an_undelivered_receipt() {
    require_node!();
    let smsc = Smsc::start(json!({ "port": 0, "undeliverable": "447700900666" })).await;
    let mut client = TestClient::spawn(config(smsc.port));
    let mut submission = gsm7_submission(2, b"Nope");
    submission.destination = Address::from_sender("+447700900666").unwrap();
    client.submit(submission).await;
    let receipt = client
        .wait_for(|event| matches!(event, SmppEvent::Receipt { .. }))
        .await;
    let SmppEvent::Receipt { state, error, .. } = receipt else {
        unreachable!()
    };
    assert_eq!(state, ReceiptState::Undelivered);
    assert_eq!(error.as_deref(), Some("001"));
    client.shutdown().await;
}

#[tokio::test]
async fn tls_bind_with_a_self_signed_certificate_and_tlv_receipts() {
    require_node!();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let smsc = Smsc::start(json!({
        "port": 0,
        "tls_cert": cert_path,
        "tls_key": key_path,
        "receipt_tlvs": true,
    }))
    .await;

    let mut tls = TlsConfig::new("localhost");
    tls.extra_root_ca_pem = Some(certified.cert.pem());
    let mut settings = config(smsc.port);
    settings.tls = Some(tls);
    let mut client = TestClient::spawn(settings);
    client.submit(gsm7_submission(3, b"Secret")).await;
    let SmppEvent::Submitted { message_id, .. } = client
        .wait_for(|event| matches!(event, SmppEvent::Submitted { .. }))
        .await
    else {
        unreachable!()
    };
    let receipt = client
        .wait_for(|event| matches!(event, SmppEvent::Receipt { .. }))
        .await;
    assert!(matches!(
        receipt,
        SmppEvent::Receipt { message_id: ref id, state: ReceiptState::Delivered, .. } if *id == message_id
    ));
    assert_eq!(
        smsc.recorded("submit_sm")[0]["short_message"],
        "536563726574"
    );
    client.shutdown().await;
}

#[tokio::test]
async fn tls_refuses_an_smsc_certificate_it_does_not_trust() {
    require_node!();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();
    let smsc = Smsc::start(json!({ "port": 0, "tls_cert": cert_path, "tls_key": key_path })).await;
    let mut settings = config(smsc.port);
    settings.tls = Some(TlsConfig::new("localhost"));
    let mut client = TestClient::spawn(settings);
    let down = client
        .wait_for(|event| matches!(event, SmppEvent::Link(LinkState::Down { .. })))
        .await;
    let SmppEvent::Link(LinkState::Down { reason }) = down else {
        unreachable!()
    };
    assert!(reason.contains("TLS"), "{reason}");
    assert!(smsc.recorded("bind").is_empty());
    client.shutdown().await;
}

#[tokio::test]
async fn transmitter_receiver_pair_gets_receipts_on_the_receiver() {
    require_node!();
    let smsc = Smsc::start(smsc_options()).await;
    let mut settings = config(smsc.port);
    settings.bind = BindMode::TransmitterReceiver;
    let mut client = TestClient::spawn(settings);
    client.submit(gsm7_submission(4, b"Pair")).await;
    let SmppEvent::Submitted { message_id, .. } = client
        .wait_for(|event| matches!(event, SmppEvent::Submitted { .. }))
        .await
    else {
        unreachable!()
    };
    let receipt = client
        .wait_for(|event| matches!(event, SmppEvent::Receipt { .. }))
        .await;
    assert!(matches!(receipt, SmppEvent::Receipt { message_id: ref id, .. } if *id == message_id));
    let modes: Vec<_> = smsc
        .recorded("bind")
        .iter()
        .map(|bind| bind["mode"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(modes, ["transmitter", "receiver"]);
    client.shutdown().await;
    smsc.wait_for_records(2, |record| record["event"] == "unbind")
        .await;
}
