//! SMPP 3.4 vocabulary callers need: `command_status` values and their names, type of number
//! (TON) and numbering plan (NPI) values, and `data_coding` values.
//!
//! Plain integers, as they travel in [`crate::Address`], [`crate::Submission`] and
//! [`crate::SmppEvent`], so callers can speak SMPP without depending on `rusmpp`.

/// `command_status` ESME_RINVMSGLEN: invalid message length.
pub const ESME_RINVMSGLEN: u32 = 0x01;
/// `command_status` ESME_RSYSERR: system error.
pub const ESME_RSYSERR: u32 = 0x08;
/// `command_status` ESME_RINVSRCADR: invalid source address.
pub const ESME_RINVSRCADR: u32 = 0x0A;
/// `command_status` ESME_RINVDSTADR: invalid destination address.
pub const ESME_RINVDSTADR: u32 = 0x0B;
/// `command_status` ESME_RMSGQFUL: the SMSC's queue is full (transient).
pub const ESME_RMSGQFUL: u32 = 0x14;
/// `command_status` ESME_RSUBMITFAIL: submit failed.
pub const ESME_RSUBMITFAIL: u32 = 0x45;
/// `command_status` ESME_RINVSRCTON: invalid source TON.
pub const ESME_RINVSRCTON: u32 = 0x48;
/// `command_status` ESME_RINVSRCNPI: invalid source NPI.
pub const ESME_RINVSRCNPI: u32 = 0x49;
/// `command_status` ESME_RINVDSTTON: invalid destination TON.
pub const ESME_RINVDSTTON: u32 = 0x50;
/// `command_status` ESME_RINVDSTNPI: invalid destination NPI.
pub const ESME_RINVDSTNPI: u32 = 0x51;
/// `command_status` ESME_RTHROTTLED: we exceeded the SMSC's rate (transient).
pub const ESME_RTHROTTLED: u32 = 0x58;
/// `command_status` ESME_RINVEXPIRY: invalid validity period.
pub const ESME_RINVEXPIRY: u32 = 0x62;
/// `command_status` ESME_RX_T_APPN: temporary application error.
pub const ESME_RX_T_APPN: u32 = 0x64;
/// `command_status` ESME_RX_P_APPN: permanent application error.
pub const ESME_RX_P_APPN: u32 = 0x65;
/// `command_status` ESME_RX_R_APPN: the application rejected the message.
pub const ESME_RX_R_APPN: u32 = 0x66;

/// Name and meaning of the command statuses carriers commonly refuse with, for error details
/// shown to operators. Carriers also use vendor-specific values (0x400 and up), which only
/// their own tables explain.
pub fn command_status_name(status: u32) -> &'static str {
    match status {
        ESME_RINVMSGLEN => "ESME_RINVMSGLEN: invalid message length",
        ESME_RSYSERR => "ESME_RSYSERR: system error",
        ESME_RINVSRCADR => "ESME_RINVSRCADR: invalid source address",
        ESME_RINVDSTADR => "ESME_RINVDSTADR: invalid destination address",
        ESME_RMSGQFUL => "ESME_RMSGQFUL: message queue full",
        ESME_RSUBMITFAIL => "ESME_RSUBMITFAIL: submit failed",
        ESME_RINVSRCTON => "ESME_RINVSRCTON: invalid source TON",
        ESME_RINVSRCNPI => "ESME_RINVSRCNPI: invalid source NPI",
        ESME_RINVDSTTON => "ESME_RINVDSTTON: invalid destination TON",
        ESME_RINVDSTNPI => "ESME_RINVDSTNPI: invalid destination NPI",
        ESME_RTHROTTLED => "ESME_RTHROTTLED: throttled",
        ESME_RINVEXPIRY => "ESME_RINVEXPIRY: invalid validity period",
        ESME_RX_T_APPN => "ESME_RX_T_APPN: temporary application error",
        ESME_RX_P_APPN => "ESME_RX_P_APPN: permanent application error",
        ESME_RX_R_APPN => "ESME_RX_R_APPN: application rejected the message",
        _ => "see the carrier's status table",
    }
}

/// TON unknown: the SMSC applies its own numbering rules.
pub const TON_UNKNOWN: u8 = 0;
/// TON international: E.164 digits, sent without the `+`.
pub const TON_INTERNATIONAL: u8 = 1;
/// TON national.
pub const TON_NATIONAL: u8 = 2;
/// TON network specific (some carriers want it for short codes).
pub const TON_NETWORK_SPECIFIC: u8 = 3;
/// TON alphanumeric: a sender name rather than digits.
pub const TON_ALPHANUMERIC: u8 = 5;

/// NPI unknown (goes with alphanumeric senders).
pub const NPI_UNKNOWN: u8 = 0;
/// NPI ISDN/telephone (E.164).
pub const NPI_ISDN: u8 = 1;

/// `data_coding` of GSM-7 (the SMSC default alphabet).
pub const DATA_CODING_GSM7: u8 = 0x00;
/// `data_coding` of UCS-2 (UTF-16BE).
pub const DATA_CODING_UCS2: u8 = 0x08;

/// Whether a `data_coding` value means the GSM-7 default alphabet: 0x00, or the "message
/// class" group 0xF_ with its alphabet bit (bit 2) clear.
pub fn is_gsm7_data_coding(data_coding: u8) -> bool {
    data_coding == DATA_CODING_GSM7 || data_coding & 0xf4 == 0xf0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_statuses_have_their_spec_values() {
        assert_eq!(ESME_RMSGQFUL, 0x14);
        assert_eq!(ESME_RTHROTTLED, 0x58);
        assert_eq!(
            command_status_name(0x0B),
            "ESME_RINVDSTADR: invalid destination address"
        );
        assert_eq!(command_status_name(0x401), "see the carrier's status table");
    }

    #[test]
    fn gsm7_is_the_default_alphabet_and_the_message_class_group() {
        for gsm7 in [0x00, 0xF0, 0xF1, 0xF2, 0xF3] {
            assert!(is_gsm7_data_coding(gsm7), "{gsm7:#04x}");
        }
        for other in [DATA_CODING_UCS2, 0x03, 0x04, 0xF4, 0xF7] {
            assert!(!is_gsm7_data_coding(other), "{other:#04x}");
        }
    }
}
