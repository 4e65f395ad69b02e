//! Turns a [`Submission`] into the `submit_sm` PDUs that go on the wire: addresses, esm_class,
//! registered_delivery, validity, GSM-7 packing and the chosen concatenation.

use std::time::Duration;

use rusmpp::{
    pdus::SubmitSm,
    tlvs::MessageSubmissionRequestTlvValue,
    types::{AnyOctetString, COctetString, EmptyOrFullCOctetString, OctetString},
    values::{
        DataCoding, EsmClass, MessagePayload, Npi, PriorityFlag, RegisteredDelivery,
        ReplaceIfPresentFlag, ServiceType, Ton,
    },
};

use crate::{
    Address, Concatenation, DATA_CODING_GSM7, SmppError, Submission,
    gsm7::{fill_bits_after_header, pack_septets},
    udh::concat_header_8bit,
};

/// esm_class for a plain message in the SMSC's default mode.
const ESM_CLASS_DEFAULT: u8 = 0x00;
/// esm_class with the UDH indicator set.
const ESM_CLASS_UDHI: u8 = 0x40;
/// registered_delivery asking for a receipt on success or failure, and nothing else.
const REGISTERED_DELIVERY_RECEIPT: u8 = 0x01;

/// Limits of one part, by data coding and by whether a concatenation header shares the SMS.
const MAX_SEPTETS_SINGLE: usize = 160;
const MAX_SEPTETS_MULTIPART: usize = 153;
const MAX_OCTETS_SINGLE: usize = 140;
const MAX_OCTETS_MULTIPART: usize = 134;
/// Largest message_payload we build (the TLV length is 16-bit; SMSCs rarely take more).
const MAX_PAYLOAD_OCTETS: usize = 0xffff;
/// Longest relative validity the SMPP format can say in days.
const MAX_VALIDITY_DAYS: u64 = 99;

/// Which option packs a part for the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encoding {
    pub concatenation: Concatenation,
    pub gsm7_packed: bool,
}

/// Builds every `submit_sm` for a submission, checking it first. Multipart messages get a
/// concatenation reference derived from the submission's reference, so a resubmission after
/// `Requeue` reuses it and handsets can still join old and new parts.
pub(crate) fn build_submit_sms(
    submission: &Submission,
    encoding: Encoding,
) -> Result<Vec<SubmitSm>, SmppError> {
    check_parts(submission, encoding)?;
    let gsm7 = submission.data_coding == DATA_CODING_GSM7;
    let packed = gsm7 && encoding.gsm7_packed;
    let total = submission.parts.len();
    let reference = concat_reference(submission.reference);
    if total == 1 || encoding.concatenation == Concatenation::MessagePayload {
        let text: Vec<u8> = submission.parts.concat();
        let text = if packed { pack_septets(&text, 0) } else { text };
        let mut pdu = base_pdu(submission, ESM_CLASS_DEFAULT)?;
        if total == 1 {
            pdu.set_short_message(octets(text)?);
        } else {
            pdu.push_tlv(MessageSubmissionRequestTlvValue::MessagePayload(
                MessagePayload::new(AnyOctetString::from_vec(text)),
            ));
        }
        return Ok(vec![pdu]);
    }
    let total_u8 = u8::try_from(total).map_err(|_| invalid("more than 255 parts"))?;
    let mut pdus = Vec::with_capacity(total);
    for (index, part) in submission.parts.iter().enumerate() {
        let sequence = u8::try_from(index + 1).map_err(|_| invalid("more than 255 parts"))?;
        let pdu = match encoding.concatenation {
            Concatenation::Udh => {
                let header = concat_header_8bit(reference.to_be_bytes()[1], total_u8, sequence);
                let body = if packed {
                    pack_septets(part, fill_bits_after_header(header.len()))
                } else {
                    part.clone()
                };
                let mut pdu = base_pdu(submission, ESM_CLASS_UDHI)?;
                pdu.set_short_message(octets([header.as_slice(), &body].concat())?);
                pdu
            }
            Concatenation::SarTlvs | Concatenation::MessagePayload => {
                let body = if packed {
                    pack_septets(part, 0)
                } else {
                    part.clone()
                };
                let mut pdu = base_pdu(submission, ESM_CLASS_DEFAULT)?;
                pdu.set_short_message(octets(body)?);
                pdu.push_tlv(MessageSubmissionRequestTlvValue::SarMsgRefNum(reference));
                pdu.push_tlv(MessageSubmissionRequestTlvValue::SarTotalSegments(total_u8));
                pdu.push_tlv(MessageSubmissionRequestTlvValue::SarSegmentSeqnum(sequence));
                pdu
            }
        };
        pdus.push(pdu);
    }
    Ok(pdus)
}

fn invalid(why: &str) -> SmppError {
    SmppError::InvalidSubmission(why.to_owned())
}

fn check_parts(submission: &Submission, encoding: Encoding) -> Result<(), SmppError> {
    let parts = &submission.parts;
    if parts.is_empty() {
        return Err(invalid("no parts"));
    }
    if parts.len() > 255 {
        return Err(invalid("more than 255 parts"));
    }
    let gsm7 = submission.data_coding == DATA_CODING_GSM7;
    if gsm7 && parts.iter().flatten().any(|&septet| septet > 0x7f) {
        return Err(invalid(
            "a GSM-7 part holds a byte above 0x7f (not a septet)",
        ));
    }
    if parts.len() > 1 && encoding.concatenation == Concatenation::MessagePayload {
        let octets: usize = parts.iter().map(Vec::len).sum();
        if octets > MAX_PAYLOAD_OCTETS {
            return Err(invalid("message longer than message_payload can carry"));
        }
        return Ok(());
    }
    let limit = match (gsm7, parts.len() > 1) {
        (true, false) => MAX_SEPTETS_SINGLE,
        (true, true) => MAX_SEPTETS_MULTIPART,
        (false, false) => MAX_OCTETS_SINGLE,
        (false, true) => MAX_OCTETS_MULTIPART,
    };
    if let Some(index) = parts.iter().position(|part| part.len() > limit) {
        return Err(SmppError::InvalidSubmission(format!(
            "part {index} is longer than {limit} {}",
            if gsm7 { "septets" } else { "octets" }
        )));
    }
    Ok(())
}

/// A 16-bit reference that scatters consecutive submission references.
pub(crate) fn concat_reference(reference: u64) -> u16 {
    // SplitMix64 finaliser: consecutive references land far apart.
    let mut mixed = reference.wrapping_add(0x9e37_79b9_7f4a_7c15);
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^= mixed >> 31;
    (mixed & 0xffff) as u16
}

fn base_pdu(submission: &Submission, esm_class: u8) -> Result<SubmitSm, SmppError> {
    let registered_delivery = if submission.registered_delivery {
        REGISTERED_DELIVERY_RECEIPT
    } else {
        0
    };
    let validity = match submission.validity {
        Some(validity) => relative_validity(validity)?,
        None => EmptyOrFullCOctetString::empty(),
    };
    Ok(SubmitSm::new(
        ServiceType::default(),
        Ton::from(submission.source.ton),
        Npi::from(submission.source.npi),
        address(&submission.source)?,
        Ton::from(submission.destination.ton),
        Npi::from(submission.destination.npi),
        address(&submission.destination)?,
        EsmClass::from(esm_class),
        0,
        PriorityFlag::from(0),
        EmptyOrFullCOctetString::empty(),
        validity,
        RegisteredDelivery::from(registered_delivery),
        ReplaceIfPresentFlag::DoNotReplace,
        DataCoding::from(submission.data_coding),
        0,
        OctetString::empty(),
        Vec::new(),
    ))
}

fn address(address: &Address) -> Result<COctetString<1, 21>, SmppError> {
    if address.addr.is_empty()
        || !address
            .addr
            .bytes()
            .all(|byte| (0x20..0x7f).contains(&byte))
    {
        return Err(SmppError::InvalidAddress(
            "1 to 20 printable ASCII characters".into(),
        ));
    }
    COctetString::from_string(address.addr.clone())
        .map_err(|_| SmppError::InvalidAddress("longer than 20 characters".into()))
}

fn octets(bytes: Vec<u8>) -> Result<OctetString<0, 255>, SmppError> {
    OctetString::from_vec(bytes).map_err(|_| invalid("part longer than 255 octets"))
}

/// SMPP relative time `YYMMDDhhmmss000R`, counted in days, hours, minutes and seconds.
pub(crate) fn relative_validity(
    validity: Duration,
) -> Result<EmptyOrFullCOctetString<17>, SmppError> {
    let seconds = validity.as_secs();
    let days = seconds / 86_400;
    if days > MAX_VALIDITY_DAYS {
        return Err(invalid("validity longer than 99 days"));
    }
    if seconds == 0 {
        return Err(invalid("validity of zero seconds"));
    }
    let text = format!(
        "0000{days:02}{:02}{:02}{:02}000R\0",
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60
    );
    EmptyOrFullCOctetString::from_slice(text.as_bytes())
        .map_err(|_| invalid("validity does not encode"))
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
