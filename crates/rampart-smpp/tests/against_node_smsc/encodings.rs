//! The bytes that reach the SMSC: GSM-7 with extension characters, UCS-2, packing and each
//! way of sending a multipart message.

use rampart_smpp::{Concatenation, DATA_CODING_UCS2, SmppEvent};
use serde_json::Value;

use crate::harness::{Smsc, TestClient, config, gsm7_submission, hex, smsc_options};
use crate::require_node;

/// Submits and waits until every part is accepted; returns what the SMSC recorded.
async fn submit_and_record(
    smsc: &Smsc,
    client: &mut TestClient,
    submission: rampart_smpp::Submission,
    expected_submit_sms: usize,
) -> Vec<Value> {
    let reference = submission.reference;
    client.submit(submission).await;
    for _ in 0..expected_submit_sms {
        client
            .wait_for(|event| matches!(event, SmppEvent::Submitted { reference: r, .. } if *r == reference))
            .await;
    }
    smsc.wait_for_records(expected_submit_sms, |record| record["event"] == "submit_sm")
        .await
}

#[tokio::test]
async fn gsm7_extension_characters_arrive_as_escaped_septets() {
    require_node!();
    let smsc = Smsc::start(smsc_options()).await;
    let mut client = TestClient::spawn(config(smsc.port));
    // "€[x]" in GSM-7: ESC 0x65, ESC 0x3C, 'x', ESC 0x3E — one septet per byte.
    let septets = [0x1b, 0x65, 0x1b, 0x3c, b'x', 0x1b, 0x3e];
    let recorded = submit_and_record(&smsc, &mut client, gsm7_submission(10, &septets), 1).await;
    assert_eq!(recorded[0]["short_message"], hex(&septets));
    assert_eq!(recorded[0]["data_coding"], 0);
    client.shutdown().await;
}

#[tokio::test]
async fn ucs2_arrives_as_utf16be_with_data_coding_8() {
    require_node!();
    let smsc = Smsc::start(smsc_options()).await;
    let mut client = TestClient::spawn(config(smsc.port));
    let text: Vec<u8> = "Привет 👋"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let mut submission = gsm7_submission(11, b"");
    submission.data_coding = DATA_CODING_UCS2;
    submission.parts = vec![text.clone()];
    let recorded = submit_and_record(&smsc, &mut client, submission, 1).await;
    assert_eq!(recorded[0]["short_message"], hex(&text));
    assert_eq!(recorded[0]["data_coding"], 8);
    assert_eq!(recorded[0]["esm_class"], 0);
    client.shutdown().await;
}

#[tokio::test]
async fn multipart_gsm7_gets_a_concatenation_udh_on_each_part() {
    require_node!();
    let smsc = Smsc::start(smsc_options()).await;
    let mut client = TestClient::spawn(config(smsc.port));
    let mut submission = gsm7_submission(12, b"");
    submission.parts = vec![vec![b'a'; 153], vec![b'b'; 10]];
    let recorded = submit_and_record(&smsc, &mut client, submission, 2).await;
    let first = recorded[0]["short_message"].as_str().unwrap().to_owned();
    let reference = &first[6..8];
    for (index, (record, body)) in recorded
        .iter()
        .zip([vec![b'a'; 153], vec![b'b'; 10]])
        .enumerate()
    {
        assert_eq!(record["esm_class"], 0x40);
        let header = format!("050003{reference}02{:02x}", index + 1);
        assert_eq!(record["short_message"], format!("{header}{}", hex(&body)));
    }
    client.shutdown().await;
}

#[tokio::test]
async fn multipart_with_sar_tlvs_has_no_udh() {
    require_node!();
    let smsc = Smsc::start(smsc_options()).await;
    let mut settings = config(smsc.port);
    settings.concatenation = Concatenation::SarTlvs;
    let mut client = TestClient::spawn(settings);
    let mut submission = gsm7_submission(13, b"");
    submission.parts = vec![b"first".to_vec(), b"second".to_vec()];
    let recorded = submit_and_record(&smsc, &mut client, submission, 2).await;
    let reference = recorded[0]["tlvs"]["sar_msg_ref_num"].clone();
    for (index, record) in recorded.iter().enumerate() {
        assert_eq!(record["esm_class"], 0);
        assert_eq!(record["tlvs"]["sar_total_segments"], 2);
        assert_eq!(record["tlvs"]["sar_segment_seqnum"], index + 1);
        assert_eq!(record["tlvs"]["sar_msg_ref_num"], reference);
    }
    assert_eq!(recorded[1]["short_message"], hex(b"second"));
    client.shutdown().await;
}

#[tokio::test]
async fn multipart_in_message_payload_is_one_submit_sm() {
    require_node!();
    let smsc = Smsc::start(smsc_options()).await;
    let mut settings = config(smsc.port);
    settings.concatenation = Concatenation::MessagePayload;
    let mut client = TestClient::spawn(settings);
    let mut submission = gsm7_submission(14, b"");
    submission.parts = vec![vec![b'a'; 153], vec![b'b'; 47]];
    let recorded = submit_and_record(&smsc, &mut client, submission, 1).await;
    assert_eq!(recorded[0]["short_message"], "");
    let payload = [vec![b'a'; 153], vec![b'b'; 47]].concat();
    assert_eq!(recorded[0]["tlvs"]["message_payload"]["hex"], hex(&payload));
    client.shutdown().await;
}

#[tokio::test]
async fn packed_gsm7_multipart_packs_after_the_header() {
    require_node!();
    let smsc = Smsc::start(smsc_options()).await;
    let mut settings = config(smsc.port);
    settings.gsm7_packed = true;
    let mut client = TestClient::spawn(settings);
    let mut submission = gsm7_submission(15, b"");
    submission.parts = vec![b"hellohello".to_vec(), b"A".to_vec()];
    let recorded = submit_and_record(&smsc, &mut client, submission, 2).await;
    let first = recorded[0]["short_message"].as_str().unwrap();
    // 6 header octets, then "hellohello" packed after one fill bit: 10 septets + 1 bit = 71 bits.
    assert_eq!(first.len(), (6 + 9) * 2);
    assert!(first.starts_with("050003"));
    let second = recorded[1]["short_message"].as_str().unwrap();
    assert_eq!(&second[12..], "82", "'A' shifted by the fill bit");
    client.shutdown().await;
}
