//! User data headers (3GPP TS 23.040 §9.2.3.24): the concatenation header we put in front of
//! each part, and a total parser for the headers SMSCs hand us on inbound parts.

/// Information element "concatenated short messages, 8-bit reference".
const IEI_CONCAT_8BIT: u8 = 0x00;
/// Information element "concatenated short messages, 16-bit reference".
const IEI_CONCAT_16BIT: u8 = 0x08;

/// Where a part sits in a concatenated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ConcatPosition {
    /// Same for every part of one message (8- or 16-bit on the air).
    pub reference: u16,
    /// Number of parts, at least 1.
    pub total: u8,
    /// 1-based position of this part, at most `total`.
    pub sequence: u8,
}

/// The 6-octet header `05 00 03 ref total seq` (UDHL included).
pub(crate) fn concat_header_8bit(reference: u8, total: u8, sequence: u8) -> [u8; 6] {
    [0x05, IEI_CONCAT_8BIT, 0x03, reference, total, sequence]
}

/// A user data that starts with a header (UDHI set), split in two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitUserData<'a> {
    /// The concatenation element, if the header has a valid one.
    pub concat: Option<ConcatPosition>,
    /// Length of the header in octets, UDHL byte included.
    pub header_len: usize,
    /// What follows the header.
    pub body: &'a [u8],
}

/// Splits user data whose UDHI bit is set. `None` when the header length runs past the data
/// or an element runs past the header: the caller then treats the whole as text.
pub(crate) fn split_user_data(user_data: &[u8]) -> Option<SplitUserData<'_>> {
    let header_len = usize::from(*user_data.first()?) + 1;
    let header = user_data.get(1..header_len)?;
    let body = user_data.get(header_len..)?;
    let mut concat = None;
    let mut rest = header;
    while !rest.is_empty() {
        let (&id, after_id) = rest.split_first()?;
        let (&len, after_len) = after_id.split_first()?;
        let data = after_len.get(..usize::from(len))?;
        rest = after_len.get(usize::from(len)..)?;
        let position = match (id, data) {
            (IEI_CONCAT_8BIT, &[reference, total, sequence]) => {
                Some((u16::from(reference), total, sequence))
            }
            (IEI_CONCAT_16BIT, &[high, low, total, sequence]) => {
                Some((u16::from_be_bytes([high, low]), total, sequence))
            }
            _ => None,
        };
        if let Some((reference, total, sequence)) = position
            && total >= 1
            && (1..=total).contains(&sequence)
        {
            concat = Some(ConcatPosition {
                reference,
                total,
                sequence,
            });
        }
    }
    Some(SplitUserData {
        concat,
        header_len,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_an_8bit_concatenation_header() {
        let data = [0x05, 0x00, 0x03, 0x2a, 0x02, 0x01, b'h', b'i'];
        let split = split_user_data(&data);
        assert_eq!(
            split,
            Some(SplitUserData {
                concat: Some(ConcatPosition {
                    reference: 0x2a,
                    total: 2,
                    sequence: 1
                }),
                header_len: 6,
                body: b"hi",
            })
        );
    }

    #[test]
    fn reads_a_16bit_concatenation_header_among_other_elements() {
        // A port-addressing element (0x05) before the 16-bit concatenation element.
        let data = [
            0x0c, 0x05, 0x04, 0x0b, 0x84, 0x23, 0xf0, 0x08, 0x04, 0x12, 0x34, 0x03, 0x03, b'x',
        ];
        let split = split_user_data(&data);
        assert_eq!(
            split.and_then(|split| split.concat),
            Some(ConcatPosition {
                reference: 0x1234,
                total: 3,
                sequence: 3
            })
        );
    }

    #[test]
    fn a_header_longer_than_the_data_is_refused() {
        assert_eq!(split_user_data(&[0x05, 0x00, 0x03]), None);
        assert_eq!(split_user_data(&[]), None);
    }

    #[test]
    fn a_sequence_beyond_the_total_is_no_concatenation() {
        let data = [0x05, 0x00, 0x03, 0x01, 0x02, 0x03];
        assert_eq!(split_user_data(&data).and_then(|split| split.concat), None);
    }

    proptest! {
        #[test]
        fn split_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some(split) = split_user_data(&bytes) {
                prop_assert_eq!(split.header_len + split.body.len(), bytes.len());
            }
        }
    }
}
