//! Joins the parts of concatenated MO messages back into one payload. Bounded: incomplete
//! messages are dropped after [`PART_TTL`], and the oldest goes when [`MAX_PENDING`] are open.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::{Address, SmppEvent, inbound::InboundPart};

/// How long the first part of a message waits for the others.
pub(crate) const PART_TTL: Duration = Duration::from_secs(600);
/// Most messages waiting for parts at once (a sender cannot make us hold more).
pub(crate) const MAX_PENDING: usize = 1024;

#[derive(Clone, PartialEq, Eq, Hash)]
struct MessageKey {
    source: String,
    destination: String,
    reference: u16,
    total: u8,
}

struct PendingMessage {
    source: Address,
    destination: Address,
    data_coding: u8,
    parts: Vec<Option<Vec<u8>>>,
    first_seen: Instant,
}

/// Parts waiting for their siblings. `Debug` shows how many, never their numbers or text.
#[derive(Default)]
pub(crate) struct Reassembler {
    pending: HashMap<MessageKey, PendingMessage>,
}

impl std::fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Reassembler {
    /// Adds a part; returns the whole message once every part is in. A part that is not
    /// concatenated is a whole message by itself.
    pub(crate) fn push(&mut self, part: InboundPart, now: Instant) -> Option<SmppEvent> {
        self.pending
            .retain(|_, message| now.saturating_duration_since(message.first_seen) < PART_TTL);
        let Some(concat) = part.concat.filter(|concat| concat.total > 1) else {
            return Some(SmppEvent::Inbound {
                source: part.source,
                destination: part.destination,
                data_coding: part.data_coding,
                payload: part.payload,
            });
        };
        let key = MessageKey {
            source: part.source.addr.clone(),
            destination: part.destination.addr.clone(),
            reference: concat.reference,
            total: concat.total,
        };
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING {
            self.evict_oldest();
        }
        let message = self
            .pending
            .entry(key.clone())
            .or_insert_with(|| PendingMessage {
                source: part.source,
                destination: part.destination,
                data_coding: part.data_coding,
                parts: vec![None; usize::from(concat.total)],
                first_seen: now,
            });
        let slot = message
            .parts
            .get_mut(usize::from(concat.sequence).checked_sub(1)?)?;
        *slot = Some(part.payload);
        if message.parts.iter().any(Option::is_none) {
            return None;
        }
        let message = self.pending.remove(&key)?;
        Some(SmppEvent::Inbound {
            source: message.source,
            destination: message.destination,
            data_coding: message.data_coding,
            payload: message.parts.into_iter().flatten().flatten().collect(),
        })
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .pending
            .iter()
            .min_by_key(|(_, message)| message.first_seen)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            tracing::warn!(
                reference = key.reference,
                "dropping an incomplete MO message: too many open"
            );
            self.pending.remove(&key);
        }
    }

    /// Messages still waiting for parts.
    #[cfg(test)]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn parts_in_any_order_join_in_sequence_order() {
        let mut reassembler = Reassembler::default();
        let now = Instant::now();
        assert_eq!(reassembler.push(part(1, 3, 3, b"c"), now), None);
        assert_eq!(reassembler.push(part(1, 3, 1, b"a"), now), None);
        let joined = payload_of(reassembler.push(part(1, 3, 2, b"b"), now));
        assert_eq!(joined.as_deref(), Some(&b"abc"[..]));
        assert_eq!(reassembler.pending_len(), 0);
    }

    #[test]
    fn debug_shows_how_many_messages_wait_and_nothing_of_them() {
        let mut reassembler = Reassembler::default();
        assert_eq!(
            reassembler.push(part(1, 2, 1, b"code 918273"), Instant::now()),
            None
        );
        let debug = format!("{reassembler:?}");
        assert_eq!(debug, "Reassembler { pending: 1 }");
    }

    #[test]
    fn stale_parts_expire() {
        let mut reassembler = Reassembler::default();
        let start = Instant::now();
        assert_eq!(reassembler.push(part(1, 2, 1, b"a"), start), None);
        let later = start + PART_TTL + Duration::from_secs(1);
        assert_eq!(reassembler.push(part(1, 2, 2, b"b"), later), None);
        assert_eq!(reassembler.pending_len(), 1);
    }

    #[test]
    fn open_messages_are_capped() {
        let mut reassembler = Reassembler::default();
        let now = Instant::now();
        for reference in 0..(MAX_PENDING as u16 + 10) {
            reassembler.push(part(reference, 2, 1, b"a"), now);
        }
        assert_eq!(reassembler.pending_len(), MAX_PENDING);
    }

    proptest! {
        #[test]
        fn any_parts_never_panic(
            parts in proptest::collection::vec((any::<u16>(), any::<u8>(), any::<u8>()), 0..50)
        ) {
            let mut reassembler = Reassembler::default();
            let now = Instant::now();
            for (reference, total, sequence) in parts {
                let _ = reassembler.push(part(reference % 4, total, sequence, b"x"), now);
            }
        }
    }
}
