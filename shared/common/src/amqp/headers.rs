//! Reading and writing the `x-haven-*` headers.

use haven_messages::names::{HEADER_ATTEMPT, HEADER_DEAD_REASON};
use lapin::types::{AMQPValue, FieldTable, LongString};

use crate::telemetry::TraceHeaders;

/// Headers the broker manages itself when it dead-letters; copying them onto
/// a republished message would only grow them.
const BROKER_HEADERS: &[&str] = &[
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
];

/// Longest reason written to a header; handlers may put whole error chains in it.
const MAX_REASON_BYTES: usize = 4096;

/// How many times the message was handled before this delivery (0 when the
/// header is missing). Any integer encoding is accepted, since other clients
/// (the management UI, scripts) pick their own; garbage reads as 0.
pub fn attempt(headers: Option<&FieldTable>) -> u32 {
    let Some(value) = headers.and_then(|h| h.inner().get(HEADER_ATTEMPT)) else {
        return 0;
    };
    let n: Option<i128> = match value {
        AMQPValue::ShortShortInt(v) => Some((*v).into()),
        AMQPValue::ShortShortUInt(v) => Some((*v).into()),
        AMQPValue::ShortInt(v) => Some((*v).into()),
        AMQPValue::ShortUInt(v) => Some((*v).into()),
        AMQPValue::LongInt(v) => Some((*v).into()),
        AMQPValue::LongUInt(v) => Some((*v).into()),
        AMQPValue::LongLongInt(v) => Some((*v).into()),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        _ => None,
    };
    n.map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// The headers of a republished message: the original ones minus what the
/// broker manages, with the attempt count (and the dead reason) set.
pub(crate) fn republish(
    original: Option<&FieldTable>,
    attempt: u32,
    dead_reason: Option<&str>,
) -> FieldTable {
    let mut out = FieldTable::default();
    if let Some(original) = original {
        for (k, v) in original.inner() {
            if !BROKER_HEADERS.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    // 'l' (signed 64-bit) is the integer type every AMQP client and RabbitMQ read.
    out.insert(
        HEADER_ATTEMPT.into(),
        AMQPValue::LongLongInt(attempt.into()),
    );
    if let Some(reason) = dead_reason {
        out.insert(
            HEADER_DEAD_REASON.into(),
            AMQPValue::LongString(LongString::from(truncate(reason, MAX_REASON_BYTES))),
        );
    }
    out
}

/// The headers of a dead letter sent back to its work queue by an
/// operator: the original ones minus what the broker manages and minus the
/// dead reason, with the attempt count back at 0, so the message gets the
/// whole retry budget again instead of being dead-lettered by its first new
/// failure.
pub(crate) fn replayed(original: Option<&FieldTable>) -> FieldTable {
    let mut out = FieldTable::default();
    if let Some(original) = original {
        for (k, v) in original.inner() {
            if !BROKER_HEADERS.contains(&k.as_str()) && k.as_str() != HEADER_DEAD_REASON {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out.insert(HEADER_ATTEMPT.into(), AMQPValue::LongLongInt(0));
    out
}

/// Why a dead letter is dead: the reason the consumer loop wrote, or, for a
/// message the broker dead-lettered itself (its delivery limit), the
/// broker's own reason (`delivery_limit`, `rejected`, `expired`).
pub fn dead_reason(headers: Option<&FieldTable>) -> Option<String> {
    if let Some(reason) = text(headers, HEADER_DEAD_REASON) {
        return Some(reason);
    }
    let broker = text(headers, "x-first-death-reason").or_else(|| {
        // Older brokers only write the `x-death` array (newest first).
        match headers?.inner().get("x-death")? {
            AMQPValue::FieldArray(deaths) => {
                deaths.as_slice().iter().find_map(|death| match death {
                    AMQPValue::FieldTable(death) => text(Some(death), "reason"),
                    _ => None,
                })
            }
            _ => None,
        }
    })?;
    Some(format!("dead-lettered by the broker: {broker}"))
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The W3C trace context a message carries (`traceparent`, `tracestate`);
/// empty when it carries none. Bounded as [`TraceHeaders`] is.
pub fn trace(headers: Option<&FieldTable>) -> TraceHeaders {
    let Some(headers) = headers else {
        return TraceHeaders::default();
    };
    TraceHeaders::from_lookup(|name| match headers.inner().get(name)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    })
}

/// Sets the trace-context headers of `trace` on `headers` (long strings,
/// as other AMQP clients' propagators write them).
pub fn insert_trace(headers: &mut FieldTable, trace: &TraceHeaders) {
    for (name, value) in trace.iter() {
        headers.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
    }
}

/// A header as text, for tests and logs.
pub fn text(headers: Option<&FieldTable>, key: &str) -> Option<String> {
    match headers?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert(HEADER_ATTEMPT.into(), value);
        t
    }

    #[test]
    fn attempt_reads_any_integer_encoding_and_defaults_to_zero() {
        assert_eq!(attempt(None), 0);
        assert_eq!(attempt(Some(&FieldTable::default())), 0);
        assert_eq!(attempt(Some(&with(AMQPValue::LongLongInt(3)))), 3);
        assert_eq!(attempt(Some(&with(AMQPValue::ShortShortUInt(4)))), 4);
        assert_eq!(attempt(Some(&with(AMQPValue::LongString("7".into())))), 7);
        assert_eq!(attempt(Some(&with(AMQPValue::LongLongInt(-5)))), 0);
        assert_eq!(
            attempt(Some(&with(AMQPValue::LongLongInt(i64::MAX)))),
            u32::MAX
        );
        assert_eq!(attempt(Some(&with(AMQPValue::LongString("x".into())))), 0);
        assert_eq!(attempt(Some(&with(AMQPValue::Boolean(true)))), 0);
    }

    #[test]
    fn republish_sets_the_count_and_drops_broker_headers() {
        let mut original = with(AMQPValue::LongLongInt(1));
        original.insert("x-death".into(), AMQPValue::Void);
        original.insert("traceparent".into(), AMQPValue::LongString("abc".into()));
        let h = republish(Some(&original), 2, Some("boom"));
        assert_eq!(attempt(Some(&h)), 2);
        assert!(!h.contains_key("x-death"));
        assert_eq!(text(Some(&h), "traceparent").as_deref(), Some("abc"));
        assert_eq!(text(Some(&h), HEADER_DEAD_REASON).as_deref(), Some("boom"));
    }

    #[test]
    fn trace_headers_round_trip_and_nothing_else_is_read() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace =
            TraceHeaders::from_lookup(|name| (name == "traceparent").then_some(traceparent));
        let mut table = with(AMQPValue::LongLongInt(1));
        insert_trace(&mut table, &trace);
        table.insert("x-other".into(), AMQPValue::LongString("y".into()));
        let read = super::trace(Some(&table));
        assert_eq!(read, trace);
        assert_eq!(read.get("traceparent"), Some(traceparent));
        assert_eq!(read.iter().count(), 1);
        // A retry's copy keeps the trace.
        let retried = republish(Some(&table), 2, None);
        assert_eq!(super::trace(Some(&retried)), trace);
        // An over-long value is not carried on.
        let mut hostile = FieldTable::default();
        hostile.insert(
            "tracestate".into(),
            AMQPValue::LongString("k=v,".repeat(1000).as_str().into()),
        );
        assert!(super::trace(Some(&hostile)).is_empty());
        assert!(super::trace(None).is_empty());
    }

    #[test]
    fn a_replayed_message_starts_over_without_its_dead_reason() {
        let mut original = with(AMQPValue::LongLongInt(5));
        original.insert("x-death".into(), AMQPValue::Void);
        original.insert(
            HEADER_DEAD_REASON.into(),
            AMQPValue::LongString("boom".into()),
        );
        original.insert("traceparent".into(), AMQPValue::LongString("abc".into()));
        let h = replayed(Some(&original));
        assert_eq!(attempt(Some(&h)), 0);
        assert!(!h.contains_key("x-death"));
        assert!(!h.contains_key(HEADER_DEAD_REASON));
        assert_eq!(text(Some(&h), "traceparent").as_deref(), Some("abc"));
        assert_eq!(attempt(Some(&replayed(None))), 0);
    }

    #[test]
    fn the_dead_reason_is_ours_or_the_brokers() {
        let ours = republish(None, 3, Some("gave up"));
        assert_eq!(dead_reason(Some(&ours)).as_deref(), Some("gave up"));
        let mut broker = FieldTable::default();
        broker.insert(
            "x-first-death-reason".into(),
            AMQPValue::LongString("delivery_limit".into()),
        );
        assert_eq!(
            dead_reason(Some(&broker)).as_deref(),
            Some("dead-lettered by the broker: delivery_limit")
        );
        let mut death = FieldTable::default();
        death.insert("reason".into(), AMQPValue::LongString("rejected".into()));
        let mut old = FieldTable::default();
        old.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        );
        assert_eq!(
            dead_reason(Some(&old)).as_deref(),
            Some("dead-lettered by the broker: rejected")
        );
        assert_eq!(dead_reason(None), None);
    }

    #[test]
    fn long_reasons_are_cut_on_a_char_boundary() {
        let reason = "é".repeat(MAX_REASON_BYTES);
        let h = republish(None, 0, Some(&reason));
        let written = text(Some(&h), HEADER_DEAD_REASON).unwrap();
        assert!(written.len() <= MAX_REASON_BYTES);
        assert!(written.chars().all(|c| c == 'é'));
    }
}
