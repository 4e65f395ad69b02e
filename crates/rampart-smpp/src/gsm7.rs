//! GSM-7 septet packing (3GPP TS 23.038 §6.1.2.1.1): 8 septets into 7 octets, optionally after
//! fill bits that align the text to a septet boundary behind a user data header.

/// Packs septets (one per byte; the top bit is ignored) after `fill_bits` zero bits (0..=6).
pub(crate) fn pack_septets(septets: &[u8], fill_bits: u8) -> Vec<u8> {
    let fill = usize::from(fill_bits % 7);
    let total_bits = fill + septets.len() * 7;
    let mut packed = vec![0u8; total_bits.div_ceil(8)];
    for (index, septet) in septets.iter().enumerate() {
        let septet = u16::from(septet & 0x7f);
        let bit = fill + index * 7;
        let (byte, shift) = (bit / 8, bit % 8);
        let spread = septet << shift;
        if let Some(low) = packed.get_mut(byte) {
            *low |= (spread & 0xff) as u8;
        }
        if let Some(high) = packed.get_mut(byte + 1) {
            *high |= (spread >> 8) as u8;
        }
    }
    packed
}

/// Unpacks every septet that `packed` holds after `fill_bits` (0..=6) fill bits.
///
/// When the octets leave 7 spare bits at the end, the decoder cannot tell a real last septet
/// from padding; a trailing `@` (0x00) or CR (0x0D) in that position is taken as padding, as
/// TS 23.038 §6.1.2.3.1 prescribes for CR.
pub(crate) fn unpack_septets(packed: &[u8], fill_bits: u8) -> Vec<u8> {
    let fill = usize::from(fill_bits % 7);
    let available_bits = (packed.len() * 8).saturating_sub(fill);
    let count = available_bits / 7;
    let mut septets = Vec::with_capacity(count);
    for index in 0..count {
        let bit = fill + index * 7;
        let (byte, shift) = (bit / 8, bit % 8);
        let low = u16::from(packed.get(byte).copied().unwrap_or(0));
        let high = u16::from(packed.get(byte + 1).copied().unwrap_or(0));
        septets.push((((low | (high << 8)) >> shift) & 0x7f) as u8);
    }
    let last_is_padding = count >= 1 && (fill + (count - 1) * 7).div_ceil(8) == packed.len();
    if last_is_padding && matches!(septets.last(), Some(0x00 | 0x0d)) {
        septets.pop();
    }
    septets
}

/// Fill bits that follow a user data header of `header_len` octets (UDHL byte included) so
/// that the first septet starts on a septet boundary.
pub(crate) fn fill_bits_after_header(header_len: usize) -> u8 {
    ((7 - (header_len * 8) % 7) % 7) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packs_hello_like_the_spec_example() {
        // "hellohello" in GSM-7 packs to E8 32 9B FD 46 97 D9 EC 37 (TS 23.038 examples).
        let septets = b"hellohello";
        assert_eq!(
            pack_septets(septets, 0),
            vec![0xe8, 0x32, 0x9b, 0xfd, 0x46, 0x97, 0xd9, 0xec, 0x37]
        );
        assert_eq!(
            unpack_septets(&pack_septets(septets, 0), 0),
            septets.to_vec()
        );
    }

    #[test]
    fn one_fill_bit_follows_a_six_octet_concatenation_header() {
        assert_eq!(fill_bits_after_header(6), 1);
        assert_eq!(fill_bits_after_header(7), 0);
        // "A" after one fill bit: 0x41 << 1 = 0x82.
        assert_eq!(pack_septets(b"A", 1), vec![0x82]);
    }

    #[test]
    fn eight_septets_fit_seven_octets() {
        assert_eq!(pack_septets(&[0x7f; 8], 0), vec![0xff; 7]);
        assert_eq!(pack_septets(&[0x7f; 160], 0).len(), 140);
    }

    #[test]
    fn seven_septets_also_fill_seven_octets_and_the_spare_bits_unpack_as_padding() {
        let packed = pack_septets(&[0x41; 7], 0);
        assert_eq!(packed.len(), 7);
        assert_eq!(unpack_septets(&packed, 0), vec![0x41; 7]);
    }

    #[test]
    fn the_top_bit_of_an_input_byte_is_ignored() {
        assert_eq!(pack_septets(&[0xC1], 0), pack_septets(&[0x41], 0));
    }

    proptest! {
        #[test]
        fn unpack_never_panics_and_yields_only_septets(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            fill in any::<u8>(),
        ) {
            let septets = unpack_septets(&bytes, fill);
            prop_assert!(septets.len() <= bytes.len() * 8 / 7);
            prop_assert!(septets.iter().all(|&septet| septet < 0x80));
        }

        #[test]
        fn pack_then_unpack_round_trips(
            septets in proptest::collection::vec(0x01u8..0x7f, 0..200),
            fill in 0u8..7,
        ) {
            // 0x00 and 0x0D are excluded at the end only, where they are ambiguous with padding.
            let mut septets = septets;
            if matches!(septets.last(), Some(0x0d)) {
                septets.pop();
            }
            prop_assert_eq!(unpack_septets(&pack_septets(&septets, fill), fill), septets);
        }
    }
}
