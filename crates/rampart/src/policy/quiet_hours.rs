//! Quiet hours: marketing waits out (or is refused during) a nightly window in the
//! recipient's local time, DST included. Other categories are never held.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::document::{QuietAction, QuietHours, parse_hh_mm};
use super::{Category, Outgoing, Violation, recipient_field, zones};
use crate::clock::Millis;

pub const CODE: &str = "quiet_hours";

/// Checks the rule; with action `defer`, the time the whole request may leave (the latest
/// end of a window among its recipients), or `None` when it may leave as asked.
pub fn check(
    rules: Option<&QuietHours>,
    message: &Outgoing<'_>,
    out: &mut Vec<Violation>,
) -> Option<Millis> {
    let rules = rules?;
    if message.category != Category::Marketing {
        return None;
    }
    // The document was validated when stored; a bad window would hold nothing.
    let (start, end) = (parse_hh_mm(&rules.start)?, parse_hh_mm(&rules.end)?);
    let mut latest: Option<Millis> = None;
    for (i, to) in message.recipients.iter().enumerate() {
        let zone = zones::zone_of(to.country());
        let Some(until) = quiet_until(message.send_at, &zone, start, end) else {
            continue;
        };
        match rules.action {
            QuietAction::Defer => latest = Some(latest.map_or(until, |l| l.max(until))),
            QuietAction::Refuse => out.push(Violation {
                code: CODE,
                message: format!(
                    "marketing is not sent from {} to {} in the recipient's time ({})",
                    rules.start,
                    rules.end,
                    zone.iana_name().unwrap_or("UTC")
                ),
                rule: "quiet_hours",
                field: Some(recipient_field(message, i)),
            }),
        }
    }
    latest
}

/// When the window holding `at` ends, or `None` when `at` is outside it. Window bounds are
/// minutes after local midnight; `start > end` passes midnight. An end that falls in a DST
/// gap moves to just after the gap.
pub fn quiet_until(at: Millis, zone: &TimeZone, start: u16, end: u16) -> Option<Millis> {
    let local = Timestamp::from_millisecond(at).ok()?.to_zoned(zone.clone());
    let minute = local.hour() as u16 * 60 + local.minute() as u16;
    let inside = if start < end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    };
    if !inside {
        return None;
    }
    let day = if start > end && minute >= start {
        local.date().tomorrow().ok()?
    } else {
        local.date()
    };
    let until = day
        .at((end / 60) as i8, (end % 60) as i8, 0, 0)
        .to_zoned(zone.clone())
        .ok()?;
    Some(until.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{codes, message, outgoing};
    use super::*;

    fn ms(rfc3339: &str) -> Millis {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn night(action: QuietAction) -> QuietHours {
        QuietHours {
            start: "21:00".into(),
            end: "08:00".into(),
            action,
        }
    }

    fn decide(
        rules: &QuietHours,
        category: Category,
        to: &[&str],
        at: &str,
    ) -> (Vec<&'static str>, Option<Millis>) {
        let (to, sender, body) = outgoing(to, "Acme", "Sale! STOP to end");
        let mut message = message(&to, &sender, &body);
        message.category = category;
        message.send_at = ms(at);
        let mut out = Vec::new();
        let deferred = check(Some(rules), &message, &mut out);
        (codes(&out), deferred)
    }

    const LONDON: &str = "+447400123456";
    const NEW_YORK: &str = "+12125550123";
    const TOKYO: &str = "+819012345678";

    #[test]
    fn marketing_in_the_window_is_deferred_to_its_end_in_the_recipients_time() {
        let rules = night(QuietAction::Defer);
        let m = Category::Marketing;
        let cases: &[(&str, &str, Option<&str>)] = &[
            // 22:00 in London (winter, UTC+0): wait for 08:00 the next morning.
            (LONDON, "2026-01-15T22:00:00Z", Some("2026-01-16T08:00:00Z")),
            // 06:00 in London: the same morning.
            (LONDON, "2026-01-15T06:00:00Z", Some("2026-01-15T08:00:00Z")),
            // 12:00 in London: leaves at once.
            (LONDON, "2026-01-15T12:00:00Z", None),
            // 12:00 UTC is 21:00 in Tokyo (UTC+9): until 08:00 JST = 23:00 UTC.
            (TOKYO, "2026-01-15T12:00:00Z", Some("2026-01-15T23:00:00Z")),
            // 22:00 UTC is 17:00 in New York (EST): leaves at once.
            (NEW_YORK, "2026-01-15T22:00:00Z", None),
            // 03:00 UTC is 22:00 in New York: until 08:00 EST = 13:00 UTC.
            (
                NEW_YORK,
                "2026-01-16T03:00:00Z",
                Some("2026-01-16T13:00:00Z"),
            ),
        ];
        for (to, at, want) in cases {
            let (codes, deferred) = decide(&rules, m, &[to], at);
            assert!(codes.is_empty());
            assert_eq!(deferred, want.map(ms), "{to} at {at}");
        }
    }

    #[test]
    fn the_end_of_the_window_follows_a_dst_change() {
        let rules = night(QuietAction::Defer);
        let m = Category::Marketing;
        // London springs forward on 29 March 2026: 08:00 BST is 07:00 UTC.
        let (_, deferred) = decide(&rules, m, &[LONDON], "2026-03-28T22:00:00Z");
        assert_eq!(deferred, Some(ms("2026-03-29T07:00:00Z")));
        // New York springs forward on 8 March 2026: 08:00 EDT is 12:00 UTC.
        let (_, deferred) = decide(&rules, m, &[NEW_YORK], "2026-03-08T03:00:00Z");
        assert_eq!(deferred, Some(ms("2026-03-08T12:00:00Z")));
        // An end in the gap (01:30 does not exist in London that night) moves past it.
        let gap = QuietHours {
            start: "00:30".into(),
            end: "01:30".into(),
            action: QuietAction::Defer,
        };
        let (_, deferred) = decide(&gap, m, &[LONDON], "2026-03-29T00:45:00Z");
        assert_eq!(deferred, Some(ms("2026-03-29T01:30:00Z")));
    }

    #[test]
    fn a_batch_waits_for_its_last_recipient_and_refusal_names_each_one() {
        let m = Category::Marketing;
        let at = "2026-01-15T22:00:00Z"; // 22:00 London, 07:00 Tokyo, 17:00 New York
        let (codes, deferred) = decide(
            &night(QuietAction::Defer),
            m,
            &[LONDON, TOKYO, NEW_YORK],
            at,
        );
        assert!(codes.is_empty());
        assert_eq!(deferred, Some(ms("2026-01-16T08:00:00Z")));
        let (codes, deferred) = decide(
            &night(QuietAction::Refuse),
            m,
            &[LONDON, TOKYO, NEW_YORK],
            at,
        );
        assert_eq!(codes, [CODE, CODE]);
        assert_eq!(deferred, None);
    }

    #[test]
    fn only_marketing_is_held() {
        let rules = night(QuietAction::Refuse);
        for category in [Category::Transactional, Category::Otp] {
            let (codes, deferred) = decide(&rules, category, &[LONDON], "2026-01-15T23:00:00Z");
            assert!(codes.is_empty() && deferred.is_none(), "{category:?}");
        }
    }

    #[test]
    fn a_window_within_one_day_holds_only_its_hours() {
        let zone = TimeZone::UTC;
        let (start, end) = (13 * 60, 14 * 60);
        assert_eq!(
            quiet_until(ms("2026-01-15T12:59:00Z"), &zone, start, end),
            None
        );
        assert_eq!(
            quiet_until(ms("2026-01-15T13:10:00Z"), &zone, start, end),
            Some(ms("2026-01-15T14:00:00Z"))
        );
        assert_eq!(
            quiet_until(ms("2026-01-15T14:00:00Z"), &zone, start, end),
            None
        );
    }
}
