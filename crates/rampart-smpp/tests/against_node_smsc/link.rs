//! Bind failures and keep-alive.

use rampart_smpp::{LinkState, SecretString, SmppEvent};

use crate::harness::{Smsc, TestClient, config, smsc_options};
use crate::require_node;

#[tokio::test]
async fn a_wrong_password_is_reported_and_retried() {
    require_node!();
    let smsc = Smsc::start(smsc_options()).await;
    let mut settings = config(smsc.port);
    settings.password = SecretString::from("wrong");
    let mut client = TestClient::spawn(settings);
    for _ in 0..2 {
        let down = client
            .wait_for(|event| matches!(event, SmppEvent::Link(LinkState::Down { .. })))
            .await;
        let SmppEvent::Link(LinkState::Down { reason }) = down else {
            unreachable!()
        };
        assert!(reason.contains("0x0000000d"), "{reason}");
        assert!(
            !reason.contains("wrong"),
            "the reason must not leak the password"
        );
    }
    assert!(smsc.recorded("bind").len() >= 2);
    assert!(!client.handle.status().bound);
    client.shutdown().await;
}

#[tokio::test]
async fn the_smscs_enquire_link_is_answered() {
    require_node!();
    let mut smsc = Smsc::start(smsc_options()).await;
    let mut client = TestClient::spawn(config(smsc.port));
    client
        .wait_for(|event| *event == SmppEvent::Link(LinkState::Bound))
        .await;
    smsc.control(serde_json::json!({ "cmd": "enquire_link" }))
        .await;
    let answer = smsc
        .wait_for_record(|record| record["event"] == "enquire_link_resp")
        .await;
    assert_eq!(answer["command_status"], 0);
    client.shutdown().await;
}

#[tokio::test]
async fn the_client_sends_enquire_link_to_keep_the_link_alive() {
    require_node!();
    let smsc = Smsc::start(smsc_options()).await;
    let mut settings = config(smsc.port);
    settings.enquire_link_interval = std::time::Duration::from_millis(300);
    let client = TestClient::spawn(settings);
    smsc.wait_for_records(2, |record| record["event"] == "enquire_link")
        .await;
    assert!(client.handle.status().bound);
    client.shutdown().await;
}
