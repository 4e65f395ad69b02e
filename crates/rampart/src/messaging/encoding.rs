//! SMS text encoding and segmentation: the one place that knows the GSM 03.38 alphabet (basic and
//! extension tables), how a body is costed and split into parts, and how inbound bytes decode.
//!
//! Billing, the API's cost preview and the SMPP connector all go through [`analyze`] and
//! [`encode`], and [`encode`] splits with the same walker [`analyze`] counts with, so a quoted
//! segment count always equals the number of parts actually sent.

use std::fmt;

/// Septets in a single-part GSM-7 message (140 bytes packed).
pub const SINGLE_PART_SEPTETS: usize = 160;
/// Septets per part of a multipart GSM-7 message; 7 septets go to the 6-byte concatenation UDH.
pub const MULTIPART_SEPTETS: usize = 153;
/// UTF-16 code units in a single-part UCS-2 message (140 bytes).
pub const SINGLE_PART_UCS2_UNITS: usize = 70;
/// UTF-16 code units per part of a multipart UCS-2 message (134 bytes, leaving 6 for the UDH).
pub const MULTIPART_UCS2_UNITS: usize = 67;

/// The GSM escape septet: the next septet is read from the extension table.
const ESCAPE: u8 = 0x1B;
/// What a lone or unsupported escape is shown as; 3GPP TS 23.038 tells receivers to display a
/// space for an escape they cannot interpret.
const ESCAPE_DISPLAY: char = ' ';

/// GSM 03.38 basic table, indexed by septet. Slot 0x1B is the escape, never a character: it is
/// skipped when building the reverse maps and handled explicitly when decoding. Rows of 16 follow
/// the spec's layout, hence the formatting skip.
#[rustfmt::skip]
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ESCAPE_DISPLAY, 'Æ', 'æ', 'ß', 'É',
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// GSM 03.38 extension table (septet after an escape, character). Each costs two septets.
/// 0x0D (page break) and 0x1B (a further extension table) are deliberately absent: neither is a
/// character we can be asked to send.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// Marks an extension-table code in the packed reverse-map entries below.
const EXTENDED_FLAG: u8 = 0x80;
/// An ASCII char with no GSM-7 representation.
const NOT_GSM: u8 = 0xFF;

/// ASCII char → GSM code (septet, `EXTENDED_FLAG` set for extension codes, or `NOT_GSM`).
/// Built at compile time from the tables above so there is one source of truth, and a table
/// index keeps the common all-ASCII body on the fast path.
const ASCII_TO_GSM: [u8; 128] = build_ascii_to_gsm();

/// Non-ASCII char → GSM code, sorted by char for binary search; built from the same tables.
const NON_ASCII_TO_GSM: [(char, u8); count_non_ascii()] = build_non_ascii_to_gsm();

const fn build_ascii_to_gsm() -> [u8; 128] {
    let mut map = [NOT_GSM; 128];
    let mut septet = 0;
    while septet < BASIC.len() {
        let c = BASIC[septet] as u32;
        if septet != ESCAPE as usize && c < 0x80 {
            map[c as usize] = septet as u8;
        }
        septet += 1;
    }
    let mut i = 0;
    while i < EXTENSION.len() {
        let (code, c) = EXTENSION[i];
        if (c as u32) < 0x80 {
            map[c as usize] = code | EXTENDED_FLAG;
        }
        i += 1;
    }
    map
}

const fn count_non_ascii() -> usize {
    let mut n = 0;
    let mut septet = 0;
    while septet < BASIC.len() {
        if septet != ESCAPE as usize && BASIC[septet] as u32 >= 0x80 {
            n += 1;
        }
        septet += 1;
    }
    let mut i = 0;
    while i < EXTENSION.len() {
        if EXTENSION[i].1 as u32 >= 0x80 {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn build_non_ascii_to_gsm() -> [(char, u8); count_non_ascii()] {
    let mut map = [('\0', 0u8); count_non_ascii()];
    let mut n = 0;
    let mut septet = 0;
    while septet < BASIC.len() {
        if septet != ESCAPE as usize && BASIC[septet] as u32 >= 0x80 {
            map[n] = (BASIC[septet], septet as u8);
            n += 1;
        }
        septet += 1;
    }
    let mut i = 0;
    while i < EXTENSION.len() {
        let (code, c) = EXTENSION[i];
        if c as u32 >= 0x80 {
            map[n] = (c, code | EXTENDED_FLAG);
            n += 1;
        }
        i += 1;
    }
    // Insertion sort: `[T]::sort` is not const, and the table has ~30 entries.
    let mut i = 1;
    while i < map.len() {
        let mut j = i;
        while j > 0 && (map[j - 1].0 as u32) > (map[j].0 as u32) {
            let swap = map[j];
            map[j] = map[j - 1];
            map[j - 1] = swap;
            j -= 1;
        }
        i += 1;
    }
    map
}

/// A character's place in the GSM 03.38 alphabet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GsmCode {
    /// One septet from the basic table.
    Basic(u8),
    /// Escape then this septet from the extension table.
    Extended(u8),
}

impl GsmCode {
    fn septets(self) -> usize {
        match self {
            Self::Basic(_) => 1,
            Self::Extended(_) => 2,
        }
    }

    fn write_to(self, out: &mut Vec<u8>) {
        match self {
            Self::Basic(code) => out.push(code),
            Self::Extended(code) => out.extend_from_slice(&[ESCAPE, code]),
        }
    }
}

/// Looks a char up in the GSM 03.38 tables.
fn gsm_code(c: char) -> Option<GsmCode> {
    // Both lookups are in bounds by construction (ASCII < 128, index from the search); `get`
    // just keeps the hot path free of panic branches.
    let packed = if c.is_ascii() {
        *ASCII_TO_GSM.get(c as usize)?
    } else {
        let i = NON_ASCII_TO_GSM
            .binary_search_by_key(&c, |&(k, _)| k)
            .ok()?;
        NON_ASCII_TO_GSM.get(i)?.1
    };
    match packed {
        NOT_GSM => None,
        code if code & EXTENDED_FLAG != 0 => Some(GsmCode::Extended(code & !EXTENDED_FLAG)),
        code => Some(GsmCode::Basic(code)),
    }
}

/// Whether `c` can be sent in GSM-7 (basic or extension table).
#[must_use]
pub fn is_gsm7_char(c: char) -> bool {
    gsm_code(c).is_some()
}

/// Which alphabet a body is sent in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// GSM 03.38 default alphabet, 7 bits per septet.
    Gsm7,
    /// UCS-2, sent as UTF-16BE so characters outside the BMP travel as surrogate pairs.
    Ucs2,
}

impl Encoding {
    /// The stable name used in the API and the database: `"gsm7"` or `"ucs2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gsm7 => "gsm7",
            Self::Ucs2 => "ucs2",
        }
    }

    /// Inverse of [`Encoding::as_str`]; exact match only, since it reads back what we stored.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gsm7" => Some(Self::Gsm7),
            "ucs2" => Some(Self::Ucs2),
            _ => None,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cost of a body: alphabet, length in code units (septets for GSM-7 counting escapes as 2;
/// UTF-16 code units for UCS-2, so an emoji counts 2), and segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyInfo {
    /// The alphabet the body will be sent in.
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// SMS parts the body is sent as; 0 only for an empty body.
    pub segments: usize,
}

/// Walks a body unit by unit and decides where parts start, never splitting a character (an
/// escape pair or a surrogate pair). [`analyze`] and [`encode`] share it so they cannot disagree.
struct Segmenter {
    limit: usize,
    units: usize,
    parts: usize,
    filled: usize,
}

impl Segmenter {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            units: 0,
            parts: 0,
            filled: 0,
        }
    }

    /// Adds a character costing `cost` units; returns true when it starts a new part.
    fn push(&mut self, cost: usize) -> bool {
        self.units += cost;
        let starts_part = self.parts == 0 || self.filled + cost > self.limit;
        if starts_part {
            self.parts += 1;
            self.filled = cost;
        } else {
            self.filled += cost;
        }
        starts_part
    }

    /// Segments for the walked body, given the single-part capacity of its alphabet.
    fn segments(&self, single_part_limit: usize) -> usize {
        match self.units {
            0 => 0,
            units if units <= single_part_limit => 1,
            _ => self.parts,
        }
    }
}

/// GSM-7 if every char is in the basic or extension table, else UCS-2, with the body's length
/// in units and its segment count. Parts are counted by walking the text, so an escape pair or
/// surrogate pair that would straddle a boundary moves whole to the next part (which can cost
/// one more segment than `ceil(units / per_part)`). An empty body has 0 segments.
///
/// Runs on every API send, so it never allocates: at most two passes over the chars.
#[must_use]
pub fn analyze(body: &str) -> BodyInfo {
    let mut gsm = Segmenter::new(MULTIPART_SEPTETS);
    let all_gsm = body.chars().all(|c| match gsm_code(c) {
        Some(code) => {
            gsm.push(code.septets());
            true
        }
        None => false,
    });
    if all_gsm {
        return BodyInfo {
            encoding: Encoding::Gsm7,
            units: gsm.units,
            segments: gsm.segments(SINGLE_PART_SEPTETS),
        };
    }
    let mut ucs2 = Segmenter::new(MULTIPART_UCS2_UNITS);
    for c in body.chars() {
        ucs2.push(c.len_utf16());
    }
    BodyInfo {
        encoding: Encoding::Ucs2,
        units: ucs2.units,
        segments: ucs2.segments(SINGLE_PART_UCS2_UNITS),
    }
}

/// The body encoded for the wire, already split into parts that each fit one SMS (single part:
/// up to 160 septets / 140 bytes UCS-2; multipart: up to 153 septets / 134 bytes (67 units) per
/// part to leave room for a 6-byte concatenation UDH).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedBody {
    /// The alphabet of every part.
    pub encoding: Encoding,
    /// GSM-7: unpacked septets, one per byte (escape 0x1B included). UCS-2: UTF-16BE bytes.
    pub parts: Vec<Vec<u8>>,
}

/// Encodes and splits a body. GSM-7 parts are unpacked septets, one per byte (escape 0x1B
/// included); UCS-2 parts are UTF-16 big-endian bytes. `parts.len() == analyze(body).segments`
/// always; an empty body yields no parts.
#[must_use]
pub fn encode(body: &str) -> EncodedBody {
    let info = analyze(body);
    let parts = match info.encoding {
        Encoding::Gsm7 => {
            let limit = part_limit(info.segments, SINGLE_PART_SEPTETS, MULTIPART_SEPTETS);
            split(body, info.segments, limit, 1, |c, part| {
                // analyze has already checked every char is in the tables; the '?' fallback only
                // keeps this function total without a panic path.
                gsm_code(c).unwrap_or(GsmCode::Basic(b'?')).write_to(part);
            })
        }
        Encoding::Ucs2 => {
            let limit = part_limit(info.segments, SINGLE_PART_UCS2_UNITS, MULTIPART_UCS2_UNITS);
            split(body, info.segments, limit, 2, |c, part| {
                for unit in c.encode_utf16(&mut [0u16; 2]) {
                    part.extend_from_slice(&unit.to_be_bytes());
                }
            })
        }
    };
    EncodedBody {
        encoding: info.encoding,
        parts,
    }
}

fn part_limit(segments: usize, single: usize, multi: usize) -> usize {
    if segments > 1 { multi } else { single }
}

/// Splits `body` into parts of at most `limit` units using the same [`Segmenter`] as
/// [`analyze`]; `write` appends one char's encoding, and its cost in units is the bytes written
/// divided by `bytes_per_unit` (1 for septets, 2 for UTF-16 code units).
fn split(
    body: &str,
    segments: usize,
    limit: usize,
    bytes_per_unit: usize,
    mut write: impl FnMut(char, &mut Vec<u8>),
) -> Vec<Vec<u8>> {
    let mut segmenter = Segmenter::new(limit);
    let mut parts = Vec::with_capacity(segments);
    let mut current = Vec::with_capacity(limit * bytes_per_unit);
    let mut scratch = Vec::with_capacity(4);
    for c in body.chars() {
        scratch.clear();
        write(c, &mut scratch);
        if segmenter.push(scratch.len() / bytes_per_unit) && !current.is_empty() {
            let full = std::mem::replace(&mut current, Vec::with_capacity(limit * bytes_per_unit));
            parts.push(full);
        }
        current.extend_from_slice(&scratch);
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

/// Decodes unpacked GSM-7 septets from an inbound (MO) message. Never panics. Per 3GPP TS
/// 23.038: an escape followed by a code missing from the extension table decodes as that code's
/// basic-table char; a lone trailing escape, or escape + escape (reserved for a further table),
/// decodes as a space. Bytes above 0x7F are not septets and decode as U+FFFD (an escape before
/// one is absorbed into that U+FFFD).
#[must_use]
pub fn decode_gsm7_unpacked(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut bytes = septets.iter().copied();
    while let Some(septet) = bytes.next() {
        let c = if septet == ESCAPE {
            match bytes.next() {
                None | Some(ESCAPE) => ESCAPE_DISPLAY,
                Some(code) => decode_extended(code),
            }
        } else {
            decode_basic(septet)
        };
        out.push(c);
    }
    out
}

fn decode_basic(septet: u8) -> char {
    BASIC
        .get(usize::from(septet))
        .copied()
        .unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn decode_extended(code: u8) -> char {
    EXTENSION
        .iter()
        .find(|&&(ext, _)| ext == code)
        .map_or_else(|| decode_basic(code), |&(_, c)| c)
}

/// Decodes UTF-16BE from an inbound UCS-2 message. An odd trailing byte or a lone surrogate
/// becomes U+FFFD; never panics.
#[must_use]
pub fn decode_ucs2(bytes: &[u8]) -> String {
    let (pairs, odd_tail) = bytes.as_chunks::<2>();
    let units = pairs.iter().map(|&pair| u16::from_be_bytes(pair));
    let mut out: String = char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    if !odd_tail.is_empty() {
        out.push(char::REPLACEMENT_CHARACTER);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gsm_part_units(part: &[u8]) -> usize {
        part.len()
    }

    fn ucs2_part_units(part: &[u8]) -> usize {
        part.len() / 2
    }

    fn all_gsm_chars() -> Vec<char> {
        BASIC
            .iter()
            .enumerate()
            .filter(|&(septet, _)| septet != usize::from(ESCAPE))
            .map(|(_, &c)| c)
            .chain(EXTENSION.iter().map(|&(_, c)| c))
            .collect()
    }

    #[test]
    fn euro_sign_costs_two_septets() {
        let info = analyze("€");
        assert_eq!(
            info,
            BodyInfo {
                encoding: Encoding::Gsm7,
                units: 2,
                segments: 1
            }
        );
        assert_eq!(encode("€").parts, vec![vec![0x1B, 0x65]]);
    }

    #[test]
    fn opening_square_bracket_costs_two_septets() {
        let info = analyze("[");
        assert_eq!(
            info,
            BodyInfo {
                encoding: Encoding::Gsm7,
                units: 2,
                segments: 1
            }
        );
        assert_eq!(encode("[").parts, vec![vec![0x1B, 0x3C]]);
    }

    #[test]
    fn every_extension_character_costs_two_septets() {
        for c in ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\u{0C}'] {
            let info = analyze(&c.to_string());
            assert_eq!((info.encoding, info.units), (Encoding::Gsm7, 2), "{c:?}");
        }
    }

    #[test]
    fn one_hundred_sixty_plain_chars_fit_one_segment() {
        let info = analyze(&"a".repeat(160));
        assert_eq!(
            info,
            BodyInfo {
                encoding: Encoding::Gsm7,
                units: 160,
                segments: 1
            }
        );
    }

    #[test]
    fn one_hundred_sixty_one_plain_chars_need_two_segments() {
        assert_eq!(analyze(&"a".repeat(161)).segments, 2);
        let parts = encode(&"a".repeat(161)).parts;
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![153, 8]);
    }

    #[test]
    fn three_hundred_six_plain_chars_fit_two_segments() {
        assert_eq!(analyze(&"a".repeat(306)).segments, 2);
    }

    #[test]
    fn three_hundred_seven_plain_chars_need_three_segments() {
        assert_eq!(analyze(&"a".repeat(307)).segments, 3);
    }

    #[test]
    fn escape_pair_at_part_boundary_moves_whole_to_next_part() {
        let body = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let info = analyze(&body);
        assert_eq!(
            info,
            BodyInfo {
                encoding: Encoding::Gsm7,
                units: 164,
                segments: 2
            }
        );
        let parts = encode(&body).parts;
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], vec![b'a'; 152]);
        assert_eq!(&parts[1][..2], &[0x1B, 0x65]);
        assert_eq!(parts[1].len(), 12);
    }

    #[test]
    fn unsplit_escape_pair_can_cost_an_extra_segment() {
        // 306 septets would be 2 parts of 153 if the escape pair could be split.
        let body = format!("{}€{}", "a".repeat(152), "b".repeat(152));
        let info = analyze(&body);
        assert_eq!((info.units, info.segments), (306, 3));
        let lens: Vec<usize> = encode(&body).parts.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![152, 153, 1]);
    }

    #[test]
    fn emoji_forces_ucs2_and_counts_two_units() {
        let info = analyze("😀");
        assert_eq!(
            info,
            BodyInfo {
                encoding: Encoding::Ucs2,
                units: 2,
                segments: 1
            }
        );
        assert_eq!(encode("😀").parts, vec![vec![0xD8, 0x3D, 0xDE, 0x00]]);
    }

    #[test]
    fn one_non_gsm_char_makes_the_whole_body_ucs2() {
        let info = analyze("hello [world] ж");
        assert_eq!(
            info,
            BodyInfo {
                encoding: Encoding::Ucs2,
                units: 15,
                segments: 1
            }
        );
    }

    #[test]
    fn seventy_ucs2_units_fit_one_segment() {
        let info = analyze(&"ж".repeat(70));
        assert_eq!(
            info,
            BodyInfo {
                encoding: Encoding::Ucs2,
                units: 70,
                segments: 1
            }
        );
        assert_eq!(encode(&"ж".repeat(70)).parts[0].len(), 140);
    }

    #[test]
    fn seventy_one_ucs2_units_need_two_segments() {
        assert_eq!(analyze(&"ж".repeat(71)).segments, 2);
        let lens: Vec<usize> = encode(&"ж".repeat(71)).parts.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![134, 8]);
    }

    #[test]
    fn surrogate_pair_straddling_part_boundary_moves_to_next_part() {
        // 134 units = 2 × 67, but the emoji occupies units 67 and 68 (1-based), across the line.
        let body = format!("{}😀{}", "ж".repeat(66), "ж".repeat(66));
        let info = analyze(&body);
        assert_eq!(
            (info.encoding, info.units, info.segments),
            (Encoding::Ucs2, 134, 3)
        );
        let parts = encode(&body).parts;
        let lens: Vec<usize> = parts.iter().map(Vec::len).collect();
        assert_eq!(lens, vec![132, 134, 2]);
        assert_eq!(&parts[1][..4], &[0xD8, 0x3D, 0xDE, 0x00]);
        assert_eq!(decode_ucs2(&parts[1]).chars().next(), Some('😀'));
    }

    #[test]
    fn greek_capitals_in_basic_table_stay_gsm7() {
        let expected = [
            ('\u{0394}', 0x10), // Δ
            ('\u{03A6}', 0x12), // Φ
            ('\u{0393}', 0x13), // Γ
            ('\u{039B}', 0x14), // Λ
            ('\u{03A9}', 0x15), // Ω
            ('\u{03A0}', 0x16), // Π
            ('\u{03A8}', 0x17), // Ψ
            ('\u{03A3}', 0x18), // Σ
            ('\u{0398}', 0x19), // Θ
            ('\u{039E}', 0x1A), // Ξ
        ];
        let body: String = expected.iter().map(|&(c, _)| c).collect();
        let encoded = encode(&body);
        assert_eq!(encoded.encoding, Encoding::Gsm7);
        let codes: Vec<u8> = expected.iter().map(|&(_, code)| code).collect();
        assert_eq!(encoded.parts, vec![codes]);
        assert_eq!(analyze("ΔΦΓΛΩΠΨΣΘΞ").units, 10);
    }

    #[test]
    fn greek_capitals_outside_basic_table_force_ucs2() {
        // Α (alpha) looks like Latin A but is not in GSM-7.
        assert_eq!(analyze("\u{0391}").encoding, Encoding::Ucs2);
    }

    #[test]
    fn lowercase_c_cedilla_is_not_gsm7() {
        assert_eq!(analyze("ç").encoding, Encoding::Ucs2);
        assert_eq!(encode("Ç").parts, vec![vec![0x09]]);
    }

    #[test]
    fn at_dollar_newline_and_carriage_return_map_to_their_spec_codes() {
        assert_eq!(encode("@$\n\r").parts, vec![vec![0x00, 0x02, 0x0A, 0x0D]]);
    }

    #[test]
    fn ascii_chars_missing_from_gsm7_force_ucs2() {
        for c in ['`', '\t', '\u{1B}', '\0'] {
            assert_eq!(analyze(&c.to_string()).encoding, Encoding::Ucs2, "{c:?}");
        }
    }

    #[test]
    fn empty_body_has_zero_segments_and_no_parts() {
        assert_eq!(
            analyze(""),
            BodyInfo {
                encoding: Encoding::Gsm7,
                units: 0,
                segments: 0
            }
        );
        assert!(encode("").parts.is_empty());
    }

    #[test]
    fn every_table_char_round_trips_through_encode_and_decode() {
        let chars = all_gsm_chars();
        assert_eq!(chars.len(), 127 + EXTENSION.len());
        for c in chars {
            let body = c.to_string();
            let encoded = encode(&body);
            assert_eq!(encoded.encoding, Encoding::Gsm7, "{c:?}");
            assert_eq!(decode_gsm7_unpacked(&encoded.parts[0]), body, "{c:?}");
        }
    }

    #[test]
    fn reverse_maps_cover_each_table_char_exactly_once() {
        let ascii = ASCII_TO_GSM.iter().filter(|&&code| code != NOT_GSM).count();
        assert_eq!(ascii + NON_ASCII_TO_GSM.len(), all_gsm_chars().len());
        assert!(NON_ASCII_TO_GSM.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn encoding_names_round_trip_and_match_serde() {
        for encoding in [Encoding::Gsm7, Encoding::Ucs2] {
            assert_eq!(Encoding::parse(encoding.as_str()), Some(encoding));
            assert_eq!(encoding.to_string(), encoding.as_str());
            let json = serde_json::to_string(&encoding).unwrap();
            assert_eq!(json, format!("\"{}\"", encoding.as_str()));
        }
        assert_eq!(Encoding::parse("GSM7"), None);
    }

    #[test]
    fn lone_trailing_escape_decodes_as_space() {
        assert_eq!(decode_gsm7_unpacked(&[0x41, 0x1B]), "A ");
    }

    #[test]
    fn escape_followed_by_unknown_code_decodes_as_basic_char() {
        assert_eq!(decode_gsm7_unpacked(&[0x1B, 0x41, 0x1B, 0x00]), "A@");
    }

    #[test]
    fn double_escape_decodes_as_one_space() {
        assert_eq!(decode_gsm7_unpacked(&[0x1B, 0x1B, 0x41]), " A");
    }

    #[test]
    fn bytes_above_seven_bits_decode_as_replacement() {
        assert_eq!(
            decode_gsm7_unpacked(&[0x80, 0x41, 0x1B, 0xFF]),
            "\u{FFFD}A\u{FFFD}"
        );
    }

    #[test]
    fn ucs2_odd_trailing_byte_decodes_as_replacement() {
        assert_eq!(decode_ucs2(&[0x00, 0x41, 0x00]), "A\u{FFFD}");
    }

    #[test]
    fn ucs2_lone_surrogates_decode_as_replacement() {
        assert_eq!(decode_ucs2(&[0xD8, 0x3D, 0x00, 0x41]), "\u{FFFD}A");
        assert_eq!(decode_ucs2(&[0xDE, 0x00]), "\u{FFFD}");
    }

    /// Bodies biased towards the interesting cases: mostly GSM-7 with many escape pairs, some
    /// BMP non-GSM chars and some astral chars (surrogate pairs), at lengths around boundaries.
    fn body_strategy() -> impl Strategy<Value = String> {
        let gsm = prop::sample::select(all_gsm_chars());
        let extension = prop::sample::select(EXTENSION.iter().map(|&(_, c)| c).collect::<Vec<_>>());
        let char_strategy = prop_oneof![
            12 => gsm,
            4 => extension,
            1 => any::<char>(),
            1 => prop::sample::select(vec!['😀', '𝄞', 'ж', 'ç']),
        ];
        let mixed = prop::collection::vec(char_strategy, 0..400).prop_map(String::from_iter);
        let pure_gsm = prop::collection::vec(prop::sample::select(all_gsm_chars()), 0..400)
            .prop_map(String::from_iter);
        prop_oneof![mixed, pure_gsm, any::<String>()]
    }

    fn decode_parts(encoded: &EncodedBody) -> String {
        encoded
            .parts
            .iter()
            .map(|part| match encoded.encoding {
                Encoding::Gsm7 => decode_gsm7_unpacked(part),
                Encoding::Ucs2 => decode_ucs2(part),
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn part_count_equals_analyzed_segments(body in body_strategy()) {
            let info = analyze(&body);
            let encoded = encode(&body);
            prop_assert_eq!(encoded.encoding, info.encoding);
            prop_assert_eq!(encoded.parts.len(), info.segments);
        }

        #[test]
        fn every_part_fits_one_sms(body in body_strategy()) {
            let encoded = encode(&body);
            let multipart = encoded.parts.len() > 1;
            for part in &encoded.parts {
                prop_assert!(!part.is_empty());
                match (encoded.encoding, multipart) {
                    (Encoding::Gsm7, false) => prop_assert!(part.len() <= 160),
                    (Encoding::Gsm7, true) => prop_assert!(part.len() <= 153),
                    (Encoding::Ucs2, false) => prop_assert!(part.len() <= 140),
                    (Encoding::Ucs2, true) => prop_assert!(part.len() <= 134),
                }
                if encoded.encoding == Encoding::Gsm7 {
                    prop_assert!(part.iter().all(|&septet| septet < 0x80));
                    prop_assert_ne!(part.last(), Some(&ESCAPE), "escape pair split");
                } else {
                    prop_assert_eq!(part.len() % 2, 0);
                }
            }
        }

        #[test]
        fn non_final_parts_are_filled_as_far_as_a_whole_char_allows(body in body_strategy()) {
            let encoded = encode(&body);
            let (min_units, units_of): (usize, fn(&[u8]) -> usize) = match encoded.encoding {
                Encoding::Gsm7 => (MULTIPART_SEPTETS - 1, gsm_part_units),
                Encoding::Ucs2 => (MULTIPART_UCS2_UNITS - 1, ucs2_part_units),
            };
            if let Some((_, full_parts)) = encoded.parts.split_last() {
                for part in full_parts {
                    prop_assert!(units_of(part) >= min_units);
                }
            }
        }

        #[test]
        fn each_part_decodes_on_its_own_and_together_they_give_back_the_body(
            body in body_strategy()
        ) {
            let encoded = encode(&body);
            prop_assert_eq!(decode_parts(&encoded), body.clone());
            let concatenated: Vec<u8> = encoded.parts.concat();
            let whole = match encoded.encoding {
                Encoding::Gsm7 => decode_gsm7_unpacked(&concatenated),
                Encoding::Ucs2 => decode_ucs2(&concatenated),
            };
            prop_assert_eq!(whole, body);
        }

        #[test]
        fn analyzed_units_equal_the_sum_of_part_units(body in body_strategy()) {
            let info = analyze(&body);
            let encoded = encode(&body);
            let units_of = match encoded.encoding {
                Encoding::Gsm7 => gsm_part_units,
                Encoding::Ucs2 => ucs2_part_units,
            };
            let total: usize = encoded.parts.iter().map(|part| units_of(part)).sum();
            prop_assert_eq!(total, info.units);
            if info.encoding == Encoding::Ucs2 {
                prop_assert_eq!(info.units, body.encode_utf16().count());
            }
        }

        #[test]
        fn decoders_never_panic_on_arbitrary_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            let gsm = decode_gsm7_unpacked(&bytes);
            prop_assert!(gsm.chars().count() <= bytes.len());
            let ucs2 = decode_ucs2(&bytes);
            prop_assert!(ucs2.encode_utf16().count() <= bytes.len().div_ceil(2));
        }
    }
}
