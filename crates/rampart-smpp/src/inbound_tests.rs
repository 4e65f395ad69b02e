//! Reading receipts and MO parts out of `deliver_sm`.

use std::str::FromStr;

use proptest::prelude::*;
use rusmpp::{
    tlvs::MessageDeliveryRequestTlvValue,
    types::{AnyOctetString, COctetString, OctetString},
    values::{DataCoding, EsmClass, MessagePayload, MessageState, Npi, Ton},
};

use super::*;
use crate::gsm7::pack_septets;

fn deliver(esm_class: u8, data_coding: u8, short_message: &[u8]) -> DeliverSm {
    DeliverSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr(COctetString::from_str("447700900001").unwrap())
        .dest_addr_ton(Ton::Unknown)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(COctetString::from_str("12345").unwrap())
        .esm_class(EsmClass::from(esm_class))
        .data_coding(DataCoding::from(data_coding))
        .short_message(OctetString::from_vec(short_message.to_vec()).unwrap())
        .build()
}

#[test]
fn a_receipt_text_becomes_a_receipt_event() {
    let pdu = deliver(
        0x04,
        0,
        b"id:abc123 sub:001 dlvr:001 submit date:2501011200 done date:2501011201 stat:DELIVRD err:000 text:",
    );
    assert_eq!(
        read_deliver_sm(&pdu, false),
        Delivery::Receipt(SmppEvent::Receipt {
            message_id: "abc123".into(),
            state: ReceiptState::Delivered,
            error: Some("000".into()),
            done_at: Some("2501011201".into()),
        })
    );
}

#[test]
fn receipt_tlvs_win_over_the_text() {
    let mut pdu = deliver(0x04, 0, b"id:wrong stat:DELIVRD err:000");
    pdu.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
        COctetString::from_str("right").unwrap(),
    ));
    pdu.push_tlv(MessageDeliveryRequestTlvValue::MessageState(
        MessageState::Undeliverable,
    ));
    let Delivery::Receipt(SmppEvent::Receipt {
        message_id, state, ..
    }) = read_deliver_sm(&pdu, false)
    else {
        panic!("not a receipt");
    };
    assert_eq!(message_id, "right");
    assert_eq!(state, ReceiptState::Undelivered);
}

#[test]
fn a_receipt_without_any_id_is_unusable() {
    let pdu = deliver(0x04, 0, b"stat:DELIVRD");
    assert_eq!(read_deliver_sm(&pdu, false), Delivery::UnusableReceipt);
}

#[test]
fn an_mo_part_with_udh_loses_its_header() {
    let pdu = deliver(0x40, 0, &[0x05, 0x00, 0x03, 0x09, 0x02, 0x02, b'y', b'o']);
    let Delivery::Part(part) = read_deliver_sm(&pdu, false) else {
        panic!("not a part");
    };
    assert_eq!(part.payload, b"yo");
    assert_eq!(
        part.concat,
        Some(ConcatPosition {
            reference: 9,
            total: 2,
            sequence: 2
        })
    );
    assert_eq!(part.source, Address::new(1, 1, "447700900001"));
}

#[test]
fn an_mo_part_with_sar_tlvs_is_positioned() {
    let mut pdu = deliver(0x00, 0x08, &[0x00, 0x41]);
    pdu.push_tlv(MessageDeliveryRequestTlvValue::SarMsgRefNum(0x1234));
    pdu.push_tlv(MessageDeliveryRequestTlvValue::SarTotalSegments(3));
    pdu.push_tlv(MessageDeliveryRequestTlvValue::SarSegmentSeqnum(1));
    let Delivery::Part(part) = read_deliver_sm(&pdu, false) else {
        panic!("not a part");
    };
    assert_eq!(part.data_coding, 0x08);
    assert_eq!(part.payload, [0x00, 0x41]);
    assert_eq!(part.concat.map(|concat| concat.reference), Some(0x1234));
}

#[test]
fn debug_of_a_read_part_hides_the_numbers_and_text() {
    let pdu = deliver(0x00, 0x00, b"Your code is 918273");
    let delivery = read_deliver_sm(&pdu, false);
    assert!(matches!(delivery, Delivery::Part(_)));
    let debug = format!("{delivery:?}");
    assert!(!debug.contains("447700900001"), "{debug}");
    assert!(!debug.contains("918273"), "{debug}");
    assert!(debug.contains("payload_len: 19"), "{debug}");
}

#[test]
fn packed_gsm7_is_unpacked_when_configured() {
    let pdu = deliver(0x00, 0x00, &pack_septets(b"hello", 0));
    let Delivery::Part(part) = read_deliver_sm(&pdu, true) else {
        panic!("not a part");
    };
    assert_eq!(part.payload, b"hello");
}

#[test]
fn packed_gsm7_after_a_udh_is_unpacked_past_the_fill_bit() {
    let mut user_data = vec![0x05, 0x00, 0x03, 0x01, 0x02, 0x01];
    user_data.extend(pack_septets(b"hellohello", 1));
    let pdu = deliver(0x40, 0x00, &user_data);
    let Delivery::Part(part) = read_deliver_sm(&pdu, true) else {
        panic!("not a part");
    };
    assert_eq!(part.payload, b"hellohello");
    assert_eq!(part.concat.map(|concat| concat.sequence), Some(1));
}

#[test]
fn message_payload_replaces_an_empty_short_message() {
    let mut pdu = deliver(0x00, 0x00, b"");
    pdu.push_tlv(MessageDeliveryRequestTlvValue::MessagePayload(
        MessagePayload::new(AnyOctetString::from_vec(b"long text".to_vec())),
    ));
    let Delivery::Part(part) = read_deliver_sm(&pdu, false) else {
        panic!("not a part");
    };
    assert_eq!(part.payload, b"long text");
}

proptest! {
    #[test]
    fn reading_any_deliver_sm_never_panics(
        esm_class in any::<u8>(),
        data_coding in any::<u8>(),
        short_message in proptest::collection::vec(any::<u8>(), 0..255),
        payload in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..400)),
        sar in proptest::option::of((any::<u16>(), any::<u8>(), any::<u8>())),
        state in proptest::option::of(any::<u8>()),
        packed in any::<bool>(),
    ) {
        let mut pdu = deliver(esm_class, data_coding, &short_message);
        if let Some(payload) = payload {
            pdu.push_tlv(MessageDeliveryRequestTlvValue::MessagePayload(
                MessagePayload::new(AnyOctetString::from_vec(payload)),
            ));
        }
        if let Some((reference, total, sequence)) = sar {
            pdu.push_tlv(MessageDeliveryRequestTlvValue::SarMsgRefNum(reference));
            pdu.push_tlv(MessageDeliveryRequestTlvValue::SarTotalSegments(total));
            pdu.push_tlv(MessageDeliveryRequestTlvValue::SarSegmentSeqnum(sequence));
        }
        if let Some(state) = state {
            pdu.push_tlv(MessageDeliveryRequestTlvValue::MessageState(MessageState::from(state)));
        }
        let _ = read_deliver_sm(&pdu, packed);
    }
}
