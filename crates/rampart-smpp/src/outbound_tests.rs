//! Exact bytes of the `submit_sm` bodies we build.

use rusmpp::encode::{Encode, Length};

use super::*;
use crate::DATA_CODING_UCS2;

fn encode(pdu: &SubmitSm) -> Vec<u8> {
    let mut bytes = vec![0u8; pdu.length()];
    let written = pdu.encode(&mut bytes);
    bytes.truncate(written);
    bytes
}

fn submission(parts: Vec<Vec<u8>>) -> Submission {
    Submission {
        reference: 7,
        source: Address::new(5, 0, "Rampart"),
        destination: Address::new(1, 1, "447700900123"),
        data_coding: DATA_CODING_GSM7,
        parts,
        registered_delivery: true,
        validity: None,
    }
}

const UNPACKED_UDH: Encoding = Encoding {
    concatenation: Concatenation::Udh,
    gsm7_packed: false,
};

/// Everything from service_type to sm_default_msg_id, for the submission above.
fn header_fields(esm_class: u8, registered_delivery: u8, data_coding: u8) -> Vec<u8> {
    let mut bytes = vec![0x00, 0x05, 0x00];
    bytes.extend_from_slice(b"Rampart\0");
    bytes.extend_from_slice(&[0x01, 0x01]);
    bytes.extend_from_slice(b"447700900123\0");
    bytes.extend_from_slice(&[esm_class, 0x00, 0x00, 0x00, 0x00]);
    bytes.extend_from_slice(&[registered_delivery, 0x00, data_coding, 0x00]);
    bytes
}

#[test]
fn single_part_gsm7_has_esm_class_zero_and_receipt_request_one() {
    let pdus = build_submit_sms(&submission(vec![b"Hi".to_vec()]), UNPACKED_UDH).unwrap();
    assert_eq!(pdus.len(), 1);
    let mut expected = header_fields(0x00, 0x01, 0x00);
    expected.extend_from_slice(&[0x02, b'H', b'i']);
    assert_eq!(encode(&pdus[0]), expected);
}

#[test]
fn no_receipt_request_encodes_zero() {
    let mut submission = submission(vec![b"Hi".to_vec()]);
    submission.registered_delivery = false;
    let pdus = build_submit_sms(&submission, UNPACKED_UDH).unwrap();
    assert_eq!(encode(&pdus[0])[31], 0x00);
}

#[test]
fn multipart_ucs2_gets_udhi_and_the_8bit_concatenation_header() {
    let mut submission = submission(vec![vec![0x00, 0x41], vec![0x00, 0x42]]);
    submission.data_coding = DATA_CODING_UCS2;
    let reference = concat_reference(7).to_be_bytes()[1];
    let pdus = build_submit_sms(&submission, UNPACKED_UDH).unwrap();
    assert_eq!(pdus.len(), 2);
    for (index, pdu) in pdus.iter().enumerate() {
        let mut expected = header_fields(0x40, 0x01, 0x08);
        expected.extend_from_slice(&[8, 0x05, 0x00, 0x03, reference, 0x02, index as u8 + 1]);
        expected.extend_from_slice(&[0x00, 0x41 + index as u8]);
        assert_eq!(encode(pdu), expected);
    }
}

#[test]
fn packed_gsm7_multipart_aligns_text_after_one_fill_bit() {
    let encoding = Encoding {
        concatenation: Concatenation::Udh,
        gsm7_packed: true,
    };
    let pdus = build_submit_sms(&submission(vec![b"A".to_vec(), b"B".to_vec()]), encoding).unwrap();
    let bytes = encode(&pdus[0]);
    let short_message = &bytes[bytes.len() - 7..];
    assert_eq!(
        short_message[..6],
        [0x05, 0x00, 0x03, short_message[3], 2, 1]
    );
    assert_eq!(short_message[6], 0x82);
}

#[test]
fn sar_tlvs_carry_reference_total_and_sequence_without_udhi() {
    let encoding = Encoding {
        concatenation: Concatenation::SarTlvs,
        gsm7_packed: false,
    };
    let pdus = build_submit_sms(&submission(vec![b"A".to_vec(), b"B".to_vec()]), encoding).unwrap();
    let [high, low] = concat_reference(7).to_be_bytes();
    let mut expected = header_fields(0x00, 0x01, 0x00);
    expected.extend_from_slice(&[0x01, b'B']);
    expected.extend_from_slice(&[0x02, 0x0c, 0x00, 0x02, high, low]);
    expected.extend_from_slice(&[0x02, 0x0e, 0x00, 0x01, 0x02]);
    expected.extend_from_slice(&[0x02, 0x0f, 0x00, 0x01, 0x02]);
    assert_eq!(encode(&pdus[1]), expected);
}

#[test]
fn message_payload_sends_one_pdu_with_the_whole_text() {
    let encoding = Encoding {
        concatenation: Concatenation::MessagePayload,
        gsm7_packed: false,
    };
    let pdus =
        build_submit_sms(&submission(vec![b"AB".to_vec(), b"C".to_vec()]), encoding).unwrap();
    assert_eq!(pdus.len(), 1);
    let mut expected = header_fields(0x00, 0x01, 0x00);
    expected.push(0x00);
    expected.extend_from_slice(&[0x04, 0x24, 0x00, 0x03, b'A', b'B', b'C']);
    assert_eq!(encode(&pdus[0]), expected);
}

#[test]
fn validity_is_relative_days_hours_minutes_seconds() {
    let mut submission = submission(vec![b"Hi".to_vec()]);
    submission.validity = Some(Duration::from_secs(86_400 + 2 * 3_600 + 3 * 60 + 4));
    let bytes = encode(&build_submit_sms(&submission, UNPACKED_UDH).unwrap()[0]);
    let needle = b"000001020304000R\0";
    assert!(bytes.windows(needle.len()).any(|window| window == needle));
}

#[test]
fn overlong_parts_and_non_septets_are_refused() {
    assert!(build_submit_sms(&submission(vec![vec![b'a'; 161]]), UNPACKED_UDH).is_err());
    assert!(
        build_submit_sms(&submission(vec![vec![b'a'; 154], vec![b'b']]), UNPACKED_UDH).is_err()
    );
    assert!(build_submit_sms(&submission(vec![vec![0x80]]), UNPACKED_UDH).is_err());
    assert!(build_submit_sms(&submission(vec![]), UNPACKED_UDH).is_err());
    let mut ucs2 = submission(vec![vec![0; 141]]);
    ucs2.data_coding = DATA_CODING_UCS2;
    assert!(build_submit_sms(&ucs2, UNPACKED_UDH).is_err());
}

#[test]
fn a_full_single_part_fits() {
    assert!(build_submit_sms(&submission(vec![vec![b'a'; 160]]), UNPACKED_UDH).is_ok());
}

#[test]
fn resubmission_reuses_the_concatenation_reference() {
    assert_eq!(concat_reference(42), concat_reference(42));
    assert_ne!(concat_reference(42), concat_reference(43));
}

#[test]
fn debug_of_a_queued_job_leaves_the_pdus_out() {
    let pdus = build_submit_sms(&submission(vec![b"code 918273".to_vec()]), UNPACKED_UDH).unwrap();
    let job = crate::client::Job { reference: 7, pdus };
    let debug = format!("{job:?}");
    assert!(!debug.contains("447700900123"), "{debug}");
    assert!(!debug.contains("918273"), "{debug}");
    assert_eq!(debug, "Job { reference: 7, pdus: 1 }");
}
