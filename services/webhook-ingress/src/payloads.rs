//! Partner webhook bodies -> typed, normalized [`PartnerEvent`]s.
//!
//! Both spellings of SPEC.md are accepted (`total_price` | `totalPrice`, ...).
//! Numbers are read from their raw JSON text, never through a float: prices
//! and stakes are parsed exactly by [`Wei::parse`]. Every refusal names the
//! field, for a 422 `{"detail": ...}`.

use std::collections::BTreeMap;

use haven_common::money::Wei;
use haven_messages::{
    Booking, BookingCancellation, BookingRef, CoachingMilestone, Contribution, EventAttendance,
    PartnerEvent, ReferralSuccess, Review, StakingStarted,
};
use serde_json::value::RawValue;

/// The nine webhook routes of SPEC.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookKind {
    /// `POST /webhooks/aurora/booking-created`
    BookingCreated,
    /// `POST /webhooks/aurora/booking-completed`
    BookingCompleted,
    /// `POST /webhooks/aurora/booking-cancelled`
    BookingCancelled,
    /// `POST /webhooks/aurora/review-submitted`
    ReviewSubmitted,
    /// `POST /webhooks/tribe/event-attendance`
    EventAttendance,
    /// `POST /webhooks/tribe/contribution`
    Contribution,
    /// `POST /webhooks/tribe/staking-started`
    StakingStarted,
    /// `POST /webhooks/tribe/coaching-milestone`
    CoachingMilestone,
    /// `POST /webhooks/tribe/referral-success`
    ReferralSuccess,
}

/// Longest id accepted, string or integer, in characters.
pub const MAX_ID_LEN: usize = 255;

/// Why a body was refused; `Display` is the `detail` of the 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The body is not a JSON object.
    #[error("body must be a JSON object")]
    NotAnObject,
    /// A required field is absent or null.
    #[error("field `{0}` is required")]
    Missing(&'static str),
    /// A field that only other kinds of event carry.
    #[error(
        "field `{field}` does not belong in a {route} webhook; was this body written for another route?"
    )]
    Foreign {
        /// The field, as the body spells it.
        field: &'static str,
        /// The route's kind, e.g. `booking-cancelled`.
        route: &'static str,
    },
    /// A field has the wrong type or value.
    #[error("field `{field}` {problem}")]
    Invalid {
        /// The field, in its first spelling.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

type Fields<'a> = BTreeMap<String, &'a RawValue>;

/// One field: its spellings, the first naming it in errors.
type Field = &'static [&'static str];

const BOOKING_ID: Field = &["id", "booking_id"];
const GUEST_ID: Field = &["guest_id", "guestId"];
const GUEST_EMAIL: Field = &["guest_email", "email"];
const TOTAL_PRICE: Field = &["total_price", "totalPrice"];
const NIGHTS: Field = &["nights", "numberOfNights"];
const CHECK_IN: Field = &["check_in", "checkIn"];
const CHECK_OUT: Field = &["check_out", "checkOut"];
const CANCELLATION_REASON: Field = &["cancellation_reason", "cancellationReason"];
const REVIEW_ID: Field = &["id", "review_id"];
const REVIEWED_BOOKING: Field = &["booking_id", "bookingId"];
const RATING: Field = &["rating"];
const EVENT_ID: Field = &["id", "event_id"];
const ATTENDEE_ID: Field = &["attendee_id", "user_id"];
const EVENT_NAME: Field = &["name", "event_name"];
const EVENT_TYPE: Field = &["type", "event_type"];
const ATTENDED: Field = &["attended"];
const TIMESTAMP: Field = &["timestamp"];
const CONTRIBUTION_ID: Field = &["id", "contribution_id"];
const USER_ID: Field = &["user_id", "userId"];
const CONTRIBUTION_TYPE: Field = &["type", "contribution_type"];
const QUALITY_SCORE: Field = &["quality_score", "qualityScore"];
const STAKE_ID: Field = &["id", "stake_id"];
const STAKE_AMOUNT: Field = &["amount"];
const MILESTONE_NAME: Field = &["milestone_name", "milestoneName"];
const TIER: Field = &["tier"];
const REFERRER_ID: Field = &["referrer_id", "referrerId"];
const REFERRED_ID: Field = &["referred_id", "referredId"];

impl WebhookKind {
    /// Every kind, in route order.
    pub const ALL: [Self; 9] = [
        Self::BookingCreated,
        Self::BookingCompleted,
        Self::BookingCancelled,
        Self::ReviewSubmitted,
        Self::EventAttendance,
        Self::Contribution,
        Self::StakingStarted,
        Self::CoachingMilestone,
        Self::ReferralSuccess,
    ];

    /// The last segment of the kind's route, e.g. `booking-cancelled`.
    pub fn route_name(self) -> &'static str {
        match self {
            Self::BookingCreated => "booking-created",
            Self::BookingCompleted => "booking-completed",
            Self::BookingCancelled => "booking-cancelled",
            Self::ReviewSubmitted => "review-submitted",
            Self::EventAttendance => "event-attendance",
            Self::Contribution => "contribution",
            Self::StakingStarted => "staking-started",
            Self::CoachingMilestone => "coaching-milestone",
            Self::ReferralSuccess => "referral-success",
        }
    }

    /// The fields a body of this kind may carry. A field that only other
    /// kinds have is refused: a signature over the body alone does not bind
    /// the route, so a body must not be accepted by a route it was not
    /// written for.
    fn fields(self) -> &'static [Field] {
        match self {
            Self::BookingCreated => &[
                BOOKING_ID,
                GUEST_ID,
                GUEST_EMAIL,
                TOTAL_PRICE,
                NIGHTS,
                CHECK_IN,
                CHECK_OUT,
            ],
            Self::BookingCompleted => &[BOOKING_ID, GUEST_ID],
            Self::BookingCancelled => &[BOOKING_ID, GUEST_ID, CANCELLATION_REASON],
            Self::ReviewSubmitted => &[REVIEW_ID, REVIEWED_BOOKING, GUEST_ID, RATING],
            Self::EventAttendance => &[
                EVENT_ID,
                ATTENDEE_ID,
                EVENT_NAME,
                EVENT_TYPE,
                ATTENDED,
                TIMESTAMP,
            ],
            Self::Contribution => &[CONTRIBUTION_ID, USER_ID, CONTRIBUTION_TYPE, QUALITY_SCORE],
            Self::StakingStarted => &[STAKE_ID, USER_ID, STAKE_AMOUNT],
            Self::CoachingMilestone => &[USER_ID, MILESTONE_NAME, TIER],
            Self::ReferralSuccess => &[REFERRER_ID, REFERRED_ID, TIER],
        }
    }

    /// The spellings of each field this kind's body may carry, for the
    /// OpenAPI description.
    pub fn field_spellings(self) -> impl Iterator<Item = &'static [&'static str]> {
        self.fields().iter().copied()
    }

    fn has_field(self, name: &str) -> bool {
        self.fields().iter().any(|field| field.contains(&name))
    }

    /// The first field of `body` that another kind has and this one does
    /// not, as that kind spells it. Fields no kind knows are let through:
    /// partners may add to their payloads.
    fn foreign_field(self, body: &Fields<'_>) -> Option<&'static str> {
        Self::ALL
            .iter()
            .flat_map(|other| other.fields().iter().copied())
            .flatten()
            .copied()
            .find(|name| body.contains_key(*name) && !self.has_field(name))
    }
}

/// Parses and validates a webhook body of `kind`.
pub fn parse(kind: WebhookKind, body: &[u8]) -> Result<PartnerEvent, ValidationError> {
    let fields: Fields<'_> =
        serde_json::from_slice(body).map_err(|_| ValidationError::NotAnObject)?;
    if let Some(field) = kind.foreign_field(&fields) {
        return Err(ValidationError::Foreign {
            field,
            route: kind.route_name(),
        });
    }
    let f = Reader {
        fields: &fields,
        kind,
    };
    Ok(match kind {
        WebhookKind::BookingCreated => PartnerEvent::AuroraBookingCreated(Booking {
            booking_id: f.id(BOOKING_ID)?,
            guest_id: f.id(GUEST_ID)?,
            guest_email: f.opt_string(GUEST_EMAIL)?,
            total_price: f.amount(TOTAL_PRICE)?.to_decimal_string(),
            nights: f.nights(NIGHTS)?,
            check_in: f.opt_string(CHECK_IN)?,
            check_out: f.opt_string(CHECK_OUT)?,
        }),
        WebhookKind::BookingCompleted => PartnerEvent::AuroraBookingCompleted(BookingRef {
            booking_id: f.id(BOOKING_ID)?,
            guest_id: f.id(GUEST_ID)?,
        }),
        WebhookKind::BookingCancelled => {
            PartnerEvent::AuroraBookingCancelled(BookingCancellation {
                booking_id: f.id(BOOKING_ID)?,
                guest_id: f.id(GUEST_ID)?,
                cancellation_reason: Some(f.string(CANCELLATION_REASON)?),
            })
        }
        WebhookKind::ReviewSubmitted => PartnerEvent::AuroraReviewSubmitted(Review {
            review_id: f.id(REVIEW_ID)?,
            booking_id: f.opt_id(REVIEWED_BOOKING)?,
            guest_id: f.id(GUEST_ID)?,
            rating: f.rating(RATING)?,
        }),
        WebhookKind::EventAttendance => PartnerEvent::TribeEventAttendance(EventAttendance {
            event_id: f.id(EVENT_ID)?,
            attendee_id: f.id(ATTENDEE_ID)?,
            event_name: f.opt_string(EVENT_NAME)?,
            event_type: f
                .opt_string(EVENT_TYPE)?
                .map_or_else(|| "general".to_owned(), |t| t.to_lowercase()),
            attended: f.opt_bool(ATTENDED)?.unwrap_or(true),
            timestamp: f.opt_string(TIMESTAMP)?,
        }),
        WebhookKind::Contribution => PartnerEvent::TribeContribution(Contribution {
            contribution_id: f.id(CONTRIBUTION_ID)?,
            user_id: f.id(USER_ID)?,
            contribution_type: f
                .opt_string(CONTRIBUTION_TYPE)?
                .map_or_else(|| "unknown".to_owned(), |t| t.to_lowercase()),
            quality_score: f.opt_non_negative_decimal(QUALITY_SCORE)?,
        }),
        WebhookKind::StakingStarted => PartnerEvent::TribeStakingStarted(StakingStarted {
            stake_id: f.id(STAKE_ID)?,
            user_id: f.id(USER_ID)?,
            amount_wei: f.amount(STAKE_AMOUNT)?.as_wei(),
        }),
        WebhookKind::CoachingMilestone => PartnerEvent::TribeCoachingMilestone(CoachingMilestone {
            user_id: f.id(USER_ID)?,
            milestone_name: f.string(MILESTONE_NAME)?,
            tier: f.string(TIER)?.to_lowercase(),
        }),
        WebhookKind::ReferralSuccess => PartnerEvent::TribeReferralSuccess(ReferralSuccess {
            referrer_id: f.id(REFERRER_ID)?,
            referred_id: f.id(REFERRED_ID)?,
            tier: f.string(TIER)?.to_lowercase(),
        }),
    })
}

/// Field access by any of a field's spellings; the first spelling names it in errors.
struct Reader<'a, 'b> {
    fields: &'b Fields<'a>,
    kind: WebhookKind,
}

impl Reader<'_, '_> {
    /// The raw value under the first present, non-null spelling.
    fn raw(&self, names: &[&'static str]) -> Option<&RawValue> {
        // Reading a field the kind does not list would let the foreign-field
        // check and the parser disagree.
        debug_assert!(self.kind.fields().contains(&names), "{names:?}");
        names
            .iter()
            .filter_map(|name| self.fields.get(*name))
            .map(|raw| &**raw)
            .find(|raw| raw.get() != "null")
    }

    fn invalid(names: &[&'static str], problem: impl Into<String>) -> ValidationError {
        ValidationError::Invalid {
            field: names[0],
            problem: problem.into(),
        }
    }

    fn opt_string(&self, names: &[&'static str]) -> Result<Option<String>, ValidationError> {
        self.raw(names)
            .map(|raw| {
                let s = serde_json::from_str::<String>(raw.get())
                    .map_err(|_| Self::invalid(names, "must be a string"))?;
                // PostgreSQL text and jsonb cannot hold U+0000.
                if s.contains('\0') {
                    return Err(Self::invalid(names, "must not contain a NUL character"));
                }
                Ok(s)
            })
            .transpose()
    }

    fn string(&self, names: &[&'static str]) -> Result<String, ValidationError> {
        let s = self
            .opt_string(names)?
            .ok_or(ValidationError::Missing(names[0]))?;
        if s.trim().is_empty() {
            return Err(Self::invalid(names, "must not be empty"));
        }
        Ok(s)
    }

    /// An identifier: a non-empty string, or an integer written as one.
    fn opt_id(&self, names: &[&'static str]) -> Result<Option<String>, ValidationError> {
        let Some(raw) = self.raw(names) else {
            return Ok(None);
        };
        let text = raw.get();
        if text.bytes().all(|b| b.is_ascii_digit()) {
            if text.len() > MAX_ID_LEN {
                return Err(Self::invalid(names, "must be 1 to 255 characters"));
            }
            return Ok(Some(text.to_owned()));
        }
        let s: String = serde_json::from_str(text)
            .map_err(|_| Self::invalid(names, "must be a string or an integer"))?;
        if s.trim().is_empty() || s.chars().count() > MAX_ID_LEN {
            return Err(Self::invalid(names, "must be 1 to 255 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(Self::invalid(names, "must not contain control characters"));
        }
        Ok(Some(s))
    }

    fn id(&self, names: &[&'static str]) -> Result<String, ValidationError> {
        self.opt_id(names)?
            .ok_or(ValidationError::Missing(names[0]))
    }

    /// An exact positive decimal number (JSON number or numeric string).
    fn amount(&self, names: &[&'static str]) -> Result<Wei, ValidationError> {
        let raw = self.raw(names).ok_or(ValidationError::Missing(names[0]))?;
        let text = raw.get();
        let text = serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_owned());
        Wei::parse(&text)
            .map_err(|err| Self::invalid(names, format!("is not a valid amount: {err}")))
    }

    fn opt_non_negative_decimal(
        &self,
        names: &[&'static str],
    ) -> Result<Option<String>, ValidationError> {
        let Some(raw) = self.raw(names) else {
            return Ok(None);
        };
        let text = raw.get();
        let zero_fraction = text
            .strip_prefix("0.")
            .is_some_and(|f| f.len() <= 18 && f.bytes().all(|b| b == b'0'));
        if text == "0" || zero_fraction {
            return Ok(Some("0".to_owned()));
        }
        Wei::parse(text)
            .map(|w| Some(w.to_decimal_string()))
            .map_err(|err| Self::invalid(names, format!("must be a non-negative number: {err}")))
    }

    fn nights(&self, names: &[&'static str]) -> Result<u32, ValidationError> {
        let raw = self.raw(names).ok_or(ValidationError::Missing(names[0]))?;
        let n: u32 = serde_json::from_str(raw.get())
            .map_err(|_| Self::invalid(names, "must be a whole number of nights"))?;
        if n == 0 || n > 365 {
            return Err(Self::invalid(names, "must be between 1 and 365"));
        }
        Ok(n)
    }

    fn rating(&self, names: &[&'static str]) -> Result<u8, ValidationError> {
        let raw = self.raw(names).ok_or(ValidationError::Missing(names[0]))?;
        match serde_json::from_str::<u8>(raw.get()) {
            Ok(r @ 1..=5) => Ok(r),
            _ => Err(Self::invalid(names, "must be a whole number from 1 to 5")),
        }
    }

    fn opt_bool(&self, names: &[&'static str]) -> Result<Option<bool>, ValidationError> {
        self.raw(names)
            .map(|raw| {
                serde_json::from_str::<bool>(raw.get())
                    .map_err(|_| Self::invalid(names, "must be true or false"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(kind: WebhookKind, body: &str) -> PartnerEvent {
        parse(kind, body.as_bytes()).unwrap()
    }

    fn err(kind: WebhookKind, body: &str) -> String {
        parse(kind, body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn booking_in_both_spellings_is_the_same_event() {
        let snake = ok(
            WebhookKind::BookingCreated,
            r#"{"id":"booking_123","guest_id":"guest_456","guest_email":"g@example.com","total_price":100.0,"nights":2}"#,
        );
        let camel = ok(
            WebhookKind::BookingCreated,
            r#"{"booking_id":"booking_123","guestId":"guest_456","email":"g@example.com","totalPrice":"100.00","numberOfNights":2}"#,
        );
        assert_eq!(snake, camel);
        let PartnerEvent::AuroraBookingCreated(b) = snake else {
            panic!()
        };
        assert_eq!(b.total_price, "100.0");
        assert_eq!(b.nights, 2);
    }

    #[test]
    fn nul_and_control_characters_are_refused_not_stored() {
        let e = err(
            WebhookKind::BookingCreated,
            r#"{"id":"b\u0000","guest_id":"g","total_price":1,"nights":1}"#,
        );
        assert!(e.contains("`id`") && e.contains("control"), "{e}");
        let e = err(
            WebhookKind::BookingCreated,
            r#"{"id":"b","guest_id":"g","guest_email":"a\u0000b","total_price":1,"nights":1}"#,
        );
        assert!(e.contains("`guest_email`") && e.contains("NUL"), "{e}");
    }

    #[test]
    fn prices_are_exact_beyond_float_precision() {
        let PartnerEvent::AuroraBookingCreated(b) = ok(
            WebhookKind::BookingCreated,
            r#"{"id":"b","guest_id":"g","total_price":123456789.123456789123456789,"nights":1}"#,
        ) else {
            panic!()
        };
        assert_eq!(b.total_price, "123456789.123456789123456789");
    }

    #[test]
    fn bad_fields_are_named() {
        let k = WebhookKind::BookingCreated;
        assert_eq!(
            err(k, r#"{"guest_id":"g","total_price":1,"nights":1}"#),
            "field `id` is required"
        );
        assert!(
            err(
                k,
                r#"{"id":"b","guest_id":"g","total_price":-5,"nights":1}"#
            )
            .starts_with("field `total_price` is not a valid amount")
        );
        assert!(
            err(
                k,
                r#"{"id":"b","guest_id":"g","total_price":"abc","nights":1}"#
            )
            .starts_with("field `total_price`")
        );
        assert!(
            err(k, r#"{"id":"b","guest_id":"g","total_price":0,"nights":1}"#)
                .starts_with("field `total_price`")
        );
        assert!(
            err(
                k,
                r#"{"id":"b","guest_id":"g","total_price":1,"nights":"two"}"#
            )
            .starts_with("field `nights`")
        );
        assert!(
            err(k, r#"{"id":"b","guest_id":"g","total_price":1,"nights":0}"#)
                .starts_with("field `nights`")
        );
        assert_eq!(
            err(k, r#"{"id":"b","guest_id":"","total_price":1,"nights":1}"#),
            "field `guest_id` must be 1 to 255 characters"
        );
        assert_eq!(err(k, "[1,2]"), "body must be a JSON object");
        assert_eq!(err(k, "not json"), "body must be a JSON object");
        assert!(
            err(
                WebhookKind::ReviewSubmitted,
                r#"{"id":"r","guest_id":"g","rating":6}"#
            )
            .starts_with("field `rating`")
        );
    }

    #[test]
    fn tribe_defaults_follow_the_spec() {
        let PartnerEvent::TribeEventAttendance(e) = ok(
            WebhookKind::EventAttendance,
            r#"{"id":"event_123","attendee_id":"journey_guest_1","name":"Wisdom Circle","type":"Wisdom_Circle"}"#,
        ) else {
            panic!()
        };
        assert!(e.attended);
        assert_eq!(e.event_type, "wisdom_circle");
        let PartnerEvent::TribeContribution(c) = ok(
            WebhookKind::Contribution,
            r#"{"id":7,"user_id":"u","type":"guide","quality_score":0}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (c.contribution_id.as_str(), c.quality_score.as_deref()),
            ("7", Some("0"))
        );
        let PartnerEvent::TribeStakingStarted(s) = ok(
            WebhookKind::StakingStarted,
            r#"{"id":"s","user_id":"u","amount":1000.5}"#,
        ) else {
            panic!()
        };
        assert_eq!(s.amount_wei, 1_000_500_000_000_000_000_000);
    }

    #[test]
    fn every_route_parses_its_minimal_body() {
        for (kind, body) in [
            (
                WebhookKind::BookingCompleted,
                r#"{"id":"b","guest_id":"g"}"#,
            ),
            (
                WebhookKind::BookingCancelled,
                r#"{"id":"b","guest_id":"g","cancellation_reason":"x"}"#,
            ),
            (
                WebhookKind::ReviewSubmitted,
                r#"{"id":"r","booking_id":"b","guest_id":"g","rating":4}"#,
            ),
            (
                WebhookKind::CoachingMilestone,
                r#"{"user_id":"u","milestone_name":"m","tier":"Advanced"}"#,
            ),
            (
                WebhookKind::ReferralSuccess,
                r#"{"referrer_id":"a","referred_id":"b","tier":"gold"}"#,
            ),
        ] {
            parse(kind, body.as_bytes()).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        }
    }

    #[test]
    fn every_field_of_another_kind_is_refused_by_name() {
        for kind in WebhookKind::ALL {
            for other in WebhookKind::ALL {
                for name in other.field_spellings().flatten() {
                    if kind.has_field(name) {
                        continue;
                    }
                    let body = format!(r#"{{"{name}":"x"}}"#);
                    assert_eq!(
                        parse(kind, body.as_bytes()),
                        Err(ValidationError::Foreign {
                            field: name,
                            route: kind.route_name()
                        }),
                        "{name} in {kind:?}"
                    );
                }
            }
        }
        // Fields no kind knows pass: partners may add to their payloads.
        ok(
            WebhookKind::BookingCompleted,
            r#"{"id":"b","guest_id":"g","hotel":"h1"}"#,
        );
    }

    #[test]
    fn ids_of_more_than_255_characters_are_refused_in_either_form() {
        let k = WebhookKind::BookingCompleted;
        let at_limit = format!(r#"{{"id":{},"guest_id":"g"}}"#, "9".repeat(255));
        ok(k, &at_limit);
        let integer = format!(r#"{{"id":{},"guest_id":"g"}}"#, "9".repeat(256));
        assert_eq!(err(k, &integer), "field `id` must be 1 to 255 characters");
        let string = format!(r#"{{"id":"{}","guest_id":"g"}}"#, "é".repeat(256));
        assert_eq!(err(k, &string), "field `id` must be 1 to 255 characters");
        // 255 characters of two bytes each are 255 characters.
        ok(
            k,
            &format!(r#"{{"id":"{}","guest_id":"g"}}"#, "é".repeat(255)),
        );
    }
}
