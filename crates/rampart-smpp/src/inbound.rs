//! Reads a `deliver_sm` from the SMSC: a delivery receipt (from TLVs or the receipt text) or
//! one part of a mobile-originated message (UDH or SAR TLVs, GSM-7 unpacked when configured).

use rusmpp::{pdus::DeliverSm, tlvs::TlvValue};

use crate::{
    Address, ReceiptState, SmppEvent,
    codes::is_gsm7_data_coding,
    gsm7::{fill_bits_after_header, unpack_septets},
    receipt::parse_receipt_text,
    udh::{ConcatPosition, split_user_data},
};

/// esm_class bits 2–5: the message type.
const ESM_MESSAGE_TYPE_MASK: u8 = 0x3c;
/// Message type "SMSC delivery receipt".
const ESM_DELIVERY_RECEIPT: u8 = 0x04;
/// Message type "intermediate delivery notification".
const ESM_INTERMEDIATE_NOTIFICATION: u8 = 0x20;
/// esm_class bit 6: the short message starts with a user data header.
const ESM_UDHI: u8 = 0x40;

/// What one `deliver_sm` carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// A delivery receipt, as the event to report.
    Receipt(SmppEvent),
    /// One part (or the whole) of a mobile-originated message.
    Part(InboundPart),
    /// A receipt we cannot tie to a message (no id anywhere).
    UnusableReceipt,
}

/// One part of a mobile-originated message, header removed. `Debug` masks the addresses and
/// shows the text's length only.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct InboundPart {
    pub source: Address,
    pub destination: Address,
    pub data_coding: u8,
    pub concat: Option<ConcatPosition>,
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for InboundPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundPart")
            .field("source", &self.source)
            .field("destination", &self.destination)
            .field("data_coding", &self.data_coding)
            .field("concat", &self.concat)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Classifies a `deliver_sm` and extracts what it carries. Total: any field values work.
pub(crate) fn read_deliver_sm(deliver: &DeliverSm, gsm7_packed: bool) -> Delivery {
    let esm_class = u8::from(deliver.esm_class);
    let data_coding = u8::from(deliver.data_coding);
    let mut payload_tlv = None;
    let mut receipted_id = None;
    let mut message_state = None;
    let (mut sar_reference, mut sar_total, mut sar_sequence) = (None, None, None);
    for tlv in deliver.tlvs() {
        match tlv.value() {
            Some(TlvValue::MessagePayload(payload)) => payload_tlv = Some(payload.value.to_vec()),
            Some(TlvValue::ReceiptedMessageId(id)) => receipted_id = Some(id.to_string()),
            Some(TlvValue::MessageState(state)) => message_state = Some(u8::from(*state)),
            Some(TlvValue::SarMsgRefNum(reference)) => sar_reference = Some(*reference),
            Some(TlvValue::SarTotalSegments(total)) => sar_total = Some(*total),
            Some(TlvValue::SarSegmentSeqnum(sequence)) => sar_sequence = Some(*sequence),
            _ => {}
        }
    }
    let user_data = match payload_tlv {
        Some(payload) if !payload.is_empty() => payload,
        _ => deliver.short_message().to_vec(),
    };
    let message_type = esm_class & ESM_MESSAGE_TYPE_MASK;
    let is_receipt = message_type == ESM_DELIVERY_RECEIPT
        || message_type == ESM_INTERMEDIATE_NOTIFICATION
        || receipted_id.is_some();
    if is_receipt {
        return read_receipt(&user_data, receipted_id, message_state);
    }
    let source = Address::new(
        u8::from(deliver.source_addr_ton),
        u8::from(deliver.source_addr_npi),
        deliver.source_addr.to_string(),
    );
    let destination = Address::new(
        u8::from(deliver.dest_addr_ton),
        u8::from(deliver.dest_addr_npi),
        deliver.destination_addr.to_string(),
    );
    let unpack = gsm7_packed && is_gsm7_data_coding(data_coding);
    let split = if esm_class & ESM_UDHI != 0 {
        split_user_data(&user_data)
    } else {
        None
    };
    let (mut concat, payload) = match split {
        Some(split) if unpack => (
            split.concat,
            unpack_septets(split.body, fill_bits_after_header(split.header_len)),
        ),
        Some(split) => (split.concat, split.body.to_vec()),
        None if unpack => (None, unpack_septets(&user_data, 0)),
        None => (None, user_data),
    };
    if concat.is_none()
        && let (Some(reference), Some(total), Some(sequence)) =
            (sar_reference, sar_total, sar_sequence)
        && total >= 1
        && (1..=total).contains(&sequence)
    {
        concat = Some(ConcatPosition {
            reference,
            total,
            sequence,
        });
    }
    Delivery::Part(InboundPart {
        source,
        destination,
        data_coding,
        concat,
        payload,
    })
}

fn read_receipt(
    user_data: &[u8],
    receipted_id: Option<String>,
    message_state: Option<u8>,
) -> Delivery {
    let text = parse_receipt_text(&String::from_utf8_lossy(user_data));
    let Some(message_id) = receipted_id.filter(|id| !id.is_empty()).or(text.id) else {
        return Delivery::UnusableReceipt;
    };
    let state = match (message_state, text.stat.as_deref()) {
        (Some(state), _) => ReceiptState::from_message_state(state),
        (None, Some(stat)) => ReceiptState::from_stat(stat),
        (None, None) => ReceiptState::Unknown,
    };
    Delivery::Receipt(SmppEvent::Receipt {
        message_id,
        state,
        error: text.err,
        done_at: text.done_date,
    })
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
