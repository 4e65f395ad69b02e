//! Mobile-originated messages from the SMSC, single and in parts.

use rampart_smpp::{Address, SmppEvent};
use serde_json::json;

use crate::harness::{Smsc, TestClient, config, hex, smsc_options};
use crate::require_node;

async fn bound_pair() -> (Smsc, TestClient) {
    let smsc = Smsc::start(smsc_options()).await;
    let mut client = TestClient::spawn(config(smsc.port));
    client
        .wait_for(|event| matches!(event, SmppEvent::Link(rampart_smpp::LinkState::Bound)))
        .await;
    (smsc, client)
}

async fn next_inbound(client: &mut TestClient) -> SmppEvent {
    client
        .wait_for(|event| matches!(event, SmppEvent::Inbound { .. }))
        .await
}

#[tokio::test]
async fn a_single_mo_message_arrives_as_inbound() {
    require_node!();
    let (mut smsc, mut client) = bound_pair().await;
    smsc.control(json!({
        "cmd": "mo", "source": "447700900001", "destination": "12345",
        "data_coding": 0, "short_message_hex": hex(b"STOP"),
    }))
    .await;
    assert_eq!(
        next_inbound(&mut client).await,
        SmppEvent::Inbound {
            source: Address::new(1, 1, "447700900001"),
            destination: Address::new(0, 0, "12345"),
            data_coding: 0,
            payload: b"STOP".to_vec(),
        }
    );
    let answer = smsc
        .wait_for_record(|record| record["event"] == "deliver_sm_resp" && record["kind"] == "mo")
        .await;
    assert_eq!(answer["command_status"], 0);
    client.shutdown().await;
}

#[tokio::test]
async fn udh_parts_out_of_order_are_reassembled_without_headers() {
    require_node!();
    let (mut smsc, mut client) = bound_pair().await;
    // 8-bit reference, part 2 first; then a 16-bit reference message.
    for (header, body) in [
        ("0500037f0202", "world"),
        ("0500037f0201", "hello "),
        ("060804abcd0201", "sixteen "),
        ("060804abcd0202", "bits"),
    ] {
        smsc.control(json!({
            "cmd": "mo", "source": "447700900002", "destination": "12345",
            "esm_class": 0x40, "data_coding": 0,
            "short_message_hex": format!("{header}{}", hex(body.as_bytes())),
        }))
        .await;
    }
    let SmppEvent::Inbound { payload, .. } = next_inbound(&mut client).await else {
        unreachable!()
    };
    assert_eq!(payload, b"hello world");
    let SmppEvent::Inbound { payload, .. } = next_inbound(&mut client).await else {
        unreachable!()
    };
    assert_eq!(payload, b"sixteen bits");
    client.shutdown().await;
}

#[tokio::test]
async fn sar_tlv_parts_are_reassembled() {
    require_node!();
    let (mut smsc, mut client) = bound_pair().await;
    let text: Vec<u8> = "Ünïcödé"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let (first, second) = text.split_at(6);
    for (sequence, part) in [(1, first), (2, second)] {
        smsc.control(json!({
            "cmd": "mo", "source": "447700900003", "destination": "12345",
            "data_coding": 8, "short_message_hex": hex(part),
            "tlvs": { "sar_msg_ref_num": 513, "sar_total_segments": 2, "sar_segment_seqnum": sequence },
        }))
        .await;
    }
    let SmppEvent::Inbound {
        payload,
        data_coding,
        ..
    } = next_inbound(&mut client).await
    else {
        unreachable!()
    };
    assert_eq!((payload, data_coding), (text, 8));
    client.shutdown().await;
}

#[tokio::test]
async fn a_long_mo_in_message_payload_arrives_whole() {
    require_node!();
    let (mut smsc, mut client) = bound_pair().await;
    let text = vec![b'z'; 300];
    smsc.control(json!({
        "cmd": "mo", "source": "447700900004", "destination": "12345",
        "data_coding": 0, "short_message_hex": "",
        "tlvs": { "message_payload": hex(&text) },
    }))
    .await;
    let SmppEvent::Inbound { payload, .. } = next_inbound(&mut client).await else {
        unreachable!()
    };
    assert_eq!(payload, text);
    client.shutdown().await;
}
