//! Joins the parts of concatenated MO messages back into one payload. The SMSC is untrusted, so
//! what waits is bounded by [`ReassemblyLimits`]: a message waits at most `part_ttl`, a part or
//! a message too large is dropped, and the oldest messages go when too many are open or their
//! parts hold too many bytes in total.

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use crate::{
    Address, SmppEvent,
    config::{PART_OVERHEAD, ReassemblyLimits},
    inbound::InboundPart,
    redact::mask,
};

#[derive(Clone, PartialEq, Eq, Hash)]
struct MessageKey {
    source: String,
    destination: String,
    reference: u16,
    total: u8,
}

/// Where a message stands in age order: when its first part came, then arrival order.
type AgeKey = (Instant, u64);

struct PendingMessage {
    source: Address,
    destination: Address,
    data_coding: u8,
    /// `(sequence, payload)` of the parts in so far, in arrival order.
    parts: Vec<(u8, Vec<u8>)>,
    /// Bytes charged for this message (payloads plus bookkeeping).
    bytes: usize,
    age: AgeKey,
}

/// Why an incomplete message was dropped, for the log.
#[derive(Debug, Clone, Copy)]
enum DropReason {
    Expired,
    TooManyOpen,
    TotalBytes,
    MessageBytes,
    PartBytes,
}

impl DropReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "its parts did not all arrive in time",
            Self::TooManyOpen => "too many messages wait for parts",
            Self::TotalBytes => "waiting parts hold too many bytes",
            Self::MessageBytes => "the message is too large",
            Self::PartBytes => "a part is too large",
        }
    }
}

/// Parts waiting for their siblings. `Debug` shows how many, never their numbers or text.
pub(crate) struct Reassembler {
    limits: ReassemblyLimits,
    pending: HashMap<MessageKey, PendingMessage>,
    by_age: BTreeMap<AgeKey, MessageKey>,
    next_arrival: u64,
    bytes: usize,
    dropped: u64,
}

impl std::fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("pending", &self.pending.len())
            .field("bytes", &self.bytes)
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl Reassembler {
    pub(crate) fn new(limits: ReassemblyLimits) -> Self {
        Self {
            limits,
            pending: HashMap::new(),
            by_age: BTreeMap::new(),
            next_arrival: 0,
            bytes: 0,
            dropped: 0,
        }
    }

    /// Incomplete messages dropped so far (expired, evicted or over a byte cap).
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped
    }

    /// Adds a part; returns the whole message once every part is in. A part that is not
    /// concatenated is a whole message by itself; a part whose position is impossible is
    /// ignored.
    pub(crate) fn push(&mut self, part: InboundPart, now: Instant) -> Option<SmppEvent> {
        self.expire(now);
        let Some(concat) = part.concat.filter(|concat| concat.total > 1) else {
            return Some(SmppEvent::Inbound {
                source: part.source,
                destination: part.destination,
                data_coding: part.data_coding,
                payload: part.payload,
            });
        };
        if concat.sequence == 0 || concat.sequence > concat.total {
            return None;
        }
        let key = MessageKey {
            source: part.source.addr.clone(),
            destination: part.destination.addr.clone(),
            reference: concat.reference,
            total: concat.total,
        };
        if part.payload.len() > self.limits.max_part_bytes {
            if self.pending.contains_key(&key) {
                self.drop_message(&key, DropReason::PartBytes);
            } else {
                // Nothing waits yet, but the message this part opens can never be whole.
                self.dropped += 1;
                tracing::warn!(
                    source = %mask(&part.source.addr),
                    destination = %mask(&part.destination.addr),
                    reference = key.reference,
                    reason = DropReason::PartBytes.as_str(),
                    "dropping an incomplete MO message"
                );
            }
            return None;
        }
        let charge = part.payload.len() + PART_OVERHEAD;
        if !self.pending.contains_key(&key) {
            while self.pending.len() >= self.limits.max_pending_messages {
                if !self.evict_oldest(DropReason::TooManyOpen) {
                    break;
                }
            }
            let age = (now, self.next_arrival);
            self.next_arrival += 1;
            self.by_age.insert(age, key.clone());
            self.bytes += PART_OVERHEAD;
            self.pending.insert(
                key.clone(),
                PendingMessage {
                    source: part.source,
                    destination: part.destination,
                    data_coding: part.data_coding,
                    parts: Vec::new(),
                    bytes: PART_OVERHEAD,
                    age,
                },
            );
        }
        let message = self.pending.get_mut(&key)?;
        // A repeated part replaces the earlier copy.
        if let Some(index) = message
            .parts
            .iter()
            .position(|(seq, _)| *seq == concat.sequence)
        {
            let (_, old) = message.parts.swap_remove(index);
            message.bytes -= old.len() + PART_OVERHEAD;
            self.bytes -= old.len() + PART_OVERHEAD;
        }
        message.parts.push((concat.sequence, part.payload));
        message.bytes += charge;
        self.bytes += charge;
        if message.bytes > self.limits.max_message_bytes {
            self.drop_message(&key, DropReason::MessageBytes);
            return None;
        }
        let complete = message.parts.len() == usize::from(concat.total);
        while self.bytes > self.limits.max_total_bytes {
            if !self.evict_oldest_except(&key) {
                break;
            }
        }
        if !complete {
            return None;
        }
        let mut message = self.take(&key)?;
        message.parts.sort_unstable_by_key(|(seq, _)| *seq);
        Some(SmppEvent::Inbound {
            source: message.source,
            destination: message.destination,
            data_coding: message.data_coding,
            payload: message
                .parts
                .into_iter()
                .flat_map(|(_, payload)| payload)
                .collect(),
        })
    }

    /// Drops the messages whose first part is older than the TTL.
    fn expire(&mut self, now: Instant) {
        while let Some((&(first_seen, _), _)) = self.by_age.first_key_value() {
            if now.saturating_duration_since(first_seen) < self.limits.part_ttl {
                break;
            }
            self.evict_oldest(DropReason::Expired);
        }
    }

    /// Drops the oldest waiting message; false when none waits.
    fn evict_oldest(&mut self, reason: DropReason) -> bool {
        let Some((_, key)) = self.by_age.pop_first() else {
            return false;
        };
        self.drop_message(&key, reason);
        true
    }

    /// Drops the oldest message other than `keep`; false when there is none.
    fn evict_oldest_except(&mut self, keep: &MessageKey) -> bool {
        let oldest = self.by_age.values().find(|key| *key != keep).cloned();
        match oldest {
            Some(key) => {
                self.drop_message(&key, DropReason::TotalBytes);
                true
            }
            None => false,
        }
    }

    /// Removes a waiting message, counting and logging (numbers masked) the loss.
    fn drop_message(&mut self, key: &MessageKey, reason: DropReason) {
        let Some(message) = self.take(key) else {
            return;
        };
        self.dropped += 1;
        tracing::warn!(
            source = %mask(&message.source.addr),
            destination = %mask(&message.destination.addr),
            reference = key.reference,
            parts_in = message.parts.len(),
            parts_total = key.total,
            reason = reason.as_str(),
            "dropping an incomplete MO message"
        );
    }

    fn take(&mut self, key: &MessageKey) -> Option<PendingMessage> {
        let message = self.pending.remove(key)?;
        self.by_age.remove(&message.age);
        self.bytes -= message.bytes;
        Some(message)
    }

    /// Messages still waiting for parts.
    #[cfg(test)]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes charged for what waits.
    #[cfg(test)]
    pub(crate) fn bytes_held(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::udh::ConcatPosition;
    use proptest::prelude::*;

    fn part(reference: u16, total: u8, sequence: u8, payload: &[u8]) -> InboundPart {
        InboundPart {
            source: Address::new(1, 1, "447700900001"),
            destination: Address::new(0, 1, "12345"),
            data_coding: 0,
            concat: Some(ConcatPosition {
                reference,
                total,
                sequence,
            }),
            payload: payload.to_vec(),
        }
    }

    fn payload_of(event: Option<SmppEvent>) -> Option<Vec<u8>> {
        match event {
            Some(SmppEvent::Inbound { payload, .. }) => Some(payload),
            _ => None,
        }
    }

    fn reassembler() -> Reassembler {
        Reassembler::new(ReassemblyLimits::default())
    }

    /// Small caps, so tests reach them quickly.
    fn small() -> ReassemblyLimits {
        ReassemblyLimits {
            max_pending_messages: 8,
            max_part_bytes: 100,
            max_message_bytes: 400,
            max_total_bytes: 1000,
            part_ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn parts_in_any_order_join_in_sequence_order() {
        let mut reassembler = reassembler();
        let now = Instant::now();
        assert_eq!(reassembler.push(part(1, 3, 3, b"c"), now), None);
        assert_eq!(reassembler.push(part(1, 3, 1, b"a"), now), None);
        let joined = payload_of(reassembler.push(part(1, 3, 2, b"b"), now));
        assert_eq!(joined.as_deref(), Some(&b"abc"[..]));
        assert_eq!(reassembler.pending_len(), 0);
        assert_eq!(reassembler.bytes_held(), 0);
        assert_eq!(reassembler.dropped_total(), 0);
    }

    #[test]
    fn a_repeated_part_replaces_the_earlier_copy() {
        let mut reassembler = reassembler();
        let now = Instant::now();
        assert_eq!(reassembler.push(part(1, 2, 1, b"old"), now), None);
        assert_eq!(reassembler.push(part(1, 2, 1, b"a"), now), None);
        let joined = payload_of(reassembler.push(part(1, 2, 2, b"b"), now));
        assert_eq!(joined.as_deref(), Some(&b"ab"[..]));
        assert_eq!(reassembler.bytes_held(), 0);
    }

    #[test]
    fn a_part_at_an_impossible_position_is_ignored() {
        let mut reassembler = reassembler();
        let now = Instant::now();
        assert_eq!(reassembler.push(part(1, 2, 0, b"a"), now), None);
        assert_eq!(reassembler.push(part(1, 2, 3, b"a"), now), None);
        assert_eq!(reassembler.pending_len(), 0);
    }

    #[test]
    fn debug_shows_how_many_messages_wait_and_nothing_of_them() {
        let mut reassembler = reassembler();
        assert_eq!(
            reassembler.push(part(1, 2, 1, b"code 918273"), Instant::now()),
            None
        );
        let debug = format!("{reassembler:?}");
        assert_eq!(
            debug,
            format!(
                "Reassembler {{ pending: 1, bytes: {}, dropped: 0 }}",
                11 + 2 * PART_OVERHEAD
            )
        );
    }

    #[test]
    fn stale_parts_expire() {
        let mut reassembler = reassembler();
        let start = Instant::now();
        assert_eq!(reassembler.push(part(1, 2, 1, b"a"), start), None);
        let later = start + ReassemblyLimits::default().part_ttl + Duration::from_secs(1);
        assert_eq!(reassembler.push(part(1, 2, 2, b"b"), later), None);
        assert_eq!(reassembler.pending_len(), 1);
        assert_eq!(reassembler.dropped_total(), 1);
    }

    #[test]
    fn open_messages_are_capped_and_the_oldest_goes() {
        let limits = ReassemblyLimits::default();
        let mut reassembler = reassembler();
        let now = Instant::now();
        for reference in 0..(limits.max_pending_messages as u16 + 10) {
            reassembler.push(part(reference, 2, 1, b"a"), now);
        }
        assert_eq!(reassembler.pending_len(), limits.max_pending_messages);
        assert_eq!(reassembler.dropped_total(), 10);
        // Reference 0 was evicted; the newest still completes.
        assert_eq!(reassembler.push(part(0, 2, 2, b"b"), now), None);
        let newest = limits.max_pending_messages as u16 + 9;
        assert!(reassembler.push(part(newest, 2, 2, b"b"), now).is_some());
    }

    #[test]
    fn a_part_over_the_part_cap_drops_its_message() {
        let mut reassembler = Reassembler::new(small());
        let now = Instant::now();
        assert_eq!(reassembler.push(part(1, 2, 1, b"a"), now), None);
        assert_eq!(reassembler.push(part(1, 2, 2, &[0; 101]), now), None);
        assert_eq!(reassembler.pending_len(), 0);
        assert_eq!(reassembler.bytes_held(), 0);
        assert_eq!(reassembler.dropped_total(), 1);
        assert_eq!(reassembler.push(part(2, 2, 1, &[0; 101]), now), None);
        assert_eq!(reassembler.pending_len(), 0);
        assert_eq!(reassembler.dropped_total(), 2);
    }

    #[test]
    fn a_message_over_the_message_cap_is_dropped() {
        let mut reassembler = Reassembler::new(small());
        let now = Instant::now();
        // Each part costs 100 + 64 bytes; the third takes the message past 400.
        for sequence in 1..=2 {
            assert_eq!(reassembler.push(part(1, 5, sequence, &[0; 100]), now), None);
        }
        assert_eq!(reassembler.pending_len(), 1);
        assert_eq!(reassembler.push(part(1, 5, 3, &[0; 100]), now), None);
        assert_eq!(reassembler.pending_len(), 0);
        assert_eq!(reassembler.bytes_held(), 0);
        assert_eq!(reassembler.dropped_total(), 1);
    }

    #[test]
    fn the_total_byte_cap_evicts_the_oldest_messages_first() {
        let mut reassembler = Reassembler::new(small());
        let start = Instant::now();
        // Six messages of 64 + 164 bytes: the fifth and sixth push the total past 1000.
        for reference in 0..6u16 {
            let at = start + Duration::from_millis(u64::from(reference));
            assert_eq!(reassembler.push(part(reference, 2, 1, &[0; 100]), at), None);
        }
        assert!(reassembler.bytes_held() <= 1000);
        assert_eq!(reassembler.pending_len(), 4);
        assert_eq!(reassembler.dropped_total(), 2);
        assert_eq!(reassembler.push(part(0, 2, 2, b"b"), start), None);
        assert!(reassembler.push(part(5, 2, 2, b"b"), start).is_some());
    }

    proptest! {
        #[test]
        fn any_parts_never_panic(
            parts in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..50)
        ) {
            let mut reassembler = reassembler();
            let now = Instant::now();
            for (reference, total, sequence) in parts {
                let _ = reassembler.push(part(reference % 4, total, sequence, b"x"), now);
            }
        }

        #[test]
        fn what_waits_stays_within_every_cap(
            parts in proptest::collection::vec(
                (0u16..20, 1u8..6, 1u8..6, 0usize..120, 0u64..120),
                0..200,
            )
        ) {
            let limits = small();
            let mut reassembler = Reassembler::new(limits);
            let start = Instant::now();
            let mut elapsed = 0;
            for (reference, total, sequence, len, step) in parts {
                elapsed += step;
                let at = start + Duration::from_secs(elapsed);
                let _ = reassembler.push(part(reference, total, sequence, &vec![7; len]), at);
                prop_assert!(reassembler.bytes_held() <= limits.max_total_bytes);
                prop_assert!(reassembler.pending_len() <= limits.max_pending_messages);
                let charged: usize = reassembler.pending.values().map(|m| m.bytes).sum();
                prop_assert_eq!(charged, reassembler.bytes_held());
                prop_assert_eq!(reassembler.by_age.len(), reassembler.pending_len());
                for message in reassembler.pending.values() {
                    prop_assert!(message.bytes <= limits.max_message_bytes);
                }
            }
        }
    }
}
