//! The reward rules: which partner event earns how much.
//!
//! Loaded from a TOML rules file (`REWARD_RULES_FILE`, or the shipped
//! `rules/default.toml` holding SPEC.md's table) and checked once at start:
//! a mistake stops the service with a line naming the key. Evaluation is
//! pure: [`Rules::evaluate`] turns an event into the rule that pays it and
//! the amount, or nothing.
//!
//! # Arithmetic
//! Everything is exact ([`Ratio`]): decimal text from the payloads and the
//! rules file becomes a fraction, the fractions are multiplied, and the
//! amount in wei is rounded **down** once, at the very end. So a reward is
//! never more than the exact product, and is less by under one wei.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy_primitives::U256;
use haven_common::money::{WEI_PER_HNV, Wei};
use haven_messages::PartnerEvent;
use serde::Deserialize;

use crate::exact::{DecimalError, Ratio};

/// The shipped rules: SPEC.md's table.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

/// Longest reason the contract can carry minus one, kept as a margin: the
/// chain encodes a reason in a `bytes32`.
pub const MAX_REASON_LEN: usize = 31;

/// Largest amount any single rule may pay, in HNV: the supply cap.
const MAX_RULE_HNV: u128 = haven_common::money::SUPPLY_CAP_HNV;
/// Largest multiplier or rate accepted from the rules file.
const MAX_FACTOR: u128 = 1_000;

/// The rule that paid a reward; also its chain reason and metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Aurora booking created.
    Booking,
    /// Aurora review submitted.
    Review,
    /// Tribe event attendance.
    EventAttendance,
    /// Tribe contribution.
    Contribution,
    /// Tribe coaching milestone.
    CoachingMilestone,
    /// Tribe referral success.
    Referral,
    /// Weekly interest of a Tribe stake.
    StakingInterest,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 7] = [
        Rule::Booking,
        Rule::Review,
        Rule::EventAttendance,
        Rule::Contribution,
        Rule::CoachingMilestone,
        Rule::Referral,
        Rule::StakingInterest,
    ];

    /// The name stored in `rewards.rule`, used as the mint's reason (short
    /// ASCII: the contract carries it in a `bytes32`) and as the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Booking => "booking",
            Rule::Review => "review",
            Rule::EventAttendance => "event_attendance",
            Rule::Contribution => "contribution",
            Rule::CoachingMilestone => "coaching_milestone",
            Rule::Referral => "referral",
            Rule::StakingInterest => "staking_interest",
        }
    }
}

/// A reward to grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The rule that pays it.
    pub rule: Rule,
    /// How much, positive.
    pub amount: Wei,
}

/// Why an event cannot be evaluated. Never transient: the consumer
/// dead-letters the event with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A decimal field of the payload is malformed.
    #[error("field `{field}`: {source}")]
    Field {
        /// The payload field.
        field: &'static str,
        /// What is wrong with it.
        source: DecimalError,
    },
    /// A type or tier the rules file has no amount (and no `default`) for.
    #[error("the rules file has no amount for {what} `{value}` and no default")]
    NoRule {
        /// `coaching milestone tier`, ...
        what: &'static str,
        /// The value the event carried.
        value: String,
    },
    /// An intermediate product does not fit in 256 bits.
    #[error("the reward computation overflows")]
    Overflow,
    /// The reward would exceed the whole supply cap.
    #[error("the reward of {0} wei is above the supply cap")]
    TooLarge(U256),
}

/// Why a rules file cannot be used; names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The file cannot be read.
    #[error("cannot read the rules file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or keys missing, unknown or of the wrong type.
    #[error("rules file {origin}: {message}")]
    Syntax {
        /// The file (or `built-in default`).
        origin: String,
        /// The parser's message, with the line.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("rules file {origin}: `{key}` {problem}")]
    Invalid {
        /// The file (or `built-in default`).
        origin: String,
        /// Dotted key, e.g. `booking.multiplier`.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// The checked rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    version: i32,
    booking: BookingRule,
    review: ReviewRule,
    event_attendance: AmountTable,
    contribution: ContributionRule,
    coaching_milestone: AmountTable,
    referral: AmountTable,
    staking: StakingRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct BookingRule {
    hnv_per_cad: Ratio,
    multiplier: Ratio,
    multiplier_above_nights: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ReviewRule {
    amount: Ratio,
    min_rating: u8,
}

/// HNV per type or tier, with an optional fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AmountTable {
    by_key: BTreeMap<String, Ratio>,
    default: Option<Ratio>,
}

impl AmountTable {
    fn amount(&self, key: &str, what: &'static str) -> Result<Ratio, RuleError> {
        self.by_key
            .get(key)
            .or(self.default.as_ref())
            .copied()
            .ok_or_else(|| RuleError::NoRule {
                what,
                value: key.to_owned(),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ContributionRule {
    amounts: AmountTable,
    quality_min: Ratio,
    quality_max: Ratio,
    quality_default: Ratio,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct StakingRule {
    /// yearly_rate / periods_per_year, exact.
    per_period: Ratio,
}

impl Rules {
    /// The shipped defaults.
    pub fn default_rules() -> Result<Self, RulesError> {
        Self::from_toml(DEFAULT_RULES, "built-in default")
    }

    /// The rules in `path`, or the shipped defaults when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, RulesError> {
        let Some(path) = path else {
            return Self::default_rules();
        };
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and checks rules; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, RulesError> {
        let raw: RawRules = toml::from_str(text).map_err(|err| RulesError::Syntax {
            origin: origin.to_owned(),
            message: syntax_message(text, &err),
        })?;
        raw.check().map_err(|(key, problem)| RulesError::Invalid {
            origin: origin.to_owned(),
            key,
            problem,
        })
    }

    /// The rules file's `version`, recorded on every reward.
    pub fn version(&self) -> i32 {
        self.version
    }

    /// What `event` earns: `Ok(None)` for events that earn nothing (a review
    /// below the threshold, an event not attended, a zero amount) and for
    /// kinds that are not rewards (booking completed or cancelled, staking
    /// started: its interest is paid by [`Rules::staking_interest`]).
    pub fn evaluate(&self, event: &PartnerEvent) -> Result<Option<Grant>, RuleError> {
        let (rule, hnv) = match event {
            PartnerEvent::AuroraBookingCreated(booking) => {
                let price = decimal("total_price", &booking.total_price)?;
                let mut hnv = mul(price, self.booking.hnv_per_cad)?;
                if booking.nights > self.booking.multiplier_above_nights {
                    hnv = mul(hnv, self.booking.multiplier)?;
                }
                (Rule::Booking, hnv)
            }
            PartnerEvent::AuroraReviewSubmitted(review) => {
                if review.rating < self.review.min_rating {
                    return Ok(None);
                }
                (Rule::Review, self.review.amount)
            }
            PartnerEvent::TribeEventAttendance(attendance) => {
                if !attendance.attended {
                    return Ok(None);
                }
                let hnv = self
                    .event_attendance
                    .amount(&attendance.event_type, "event type")?;
                (Rule::EventAttendance, hnv)
            }
            PartnerEvent::TribeContribution(contribution) => {
                let rule = &self.contribution;
                let base = rule
                    .amounts
                    .amount(&contribution.contribution_type, "contribution type")?;
                let quality = match &contribution.quality_score {
                    Some(score) => decimal("quality_score", score)?,
                    None => rule.quality_default,
                };
                let quality = quality
                    .checked_clamp(rule.quality_min, rule.quality_max)
                    .ok_or(RuleError::Overflow)?;
                (Rule::Contribution, mul(base, quality)?)
            }
            PartnerEvent::TribeCoachingMilestone(milestone) => {
                let hnv = self
                    .coaching_milestone
                    .amount(&milestone.tier, "coaching milestone tier")?;
                (Rule::CoachingMilestone, hnv)
            }
            PartnerEvent::TribeReferralSuccess(referral) => {
                let hnv = self.referral.amount(&referral.tier, "referral tier")?;
                (Rule::Referral, hnv)
            }
            PartnerEvent::AuroraBookingCompleted(_)
            | PartnerEvent::AuroraBookingCancelled(_)
            | PartnerEvent::TribeStakingStarted(_) => return Ok(None),
        };
        let amount = to_wei(mul(hnv, Ratio::integer(WEI_PER_HNV))?)?;
        Ok((!amount.is_zero()).then_some(Grant { rule, amount }))
    }

    /// One period's interest on a stake of `stake`: stake x yearly_rate /
    /// periods_per_year, rounded down to the wei; `None` when that is zero.
    pub fn staking_interest(&self, stake: Wei) -> Result<Option<Wei>, RuleError> {
        let amount = to_wei(mul(
            Ratio::integer(stake.as_wei()),
            self.staking.per_period,
        )?)?;
        Ok((!amount.is_zero()).then_some(amount))
    }
}

fn decimal(field: &'static str, text: &str) -> Result<Ratio, RuleError> {
    Ratio::parse_decimal(text).map_err(|source| RuleError::Field { field, source })
}

fn mul(a: Ratio, b: Ratio) -> Result<Ratio, RuleError> {
    a.checked_mul(b).ok_or(RuleError::Overflow)
}

/// Rounds a number of wei down to a whole wei; above the supply cap is an error.
fn to_wei(wei: Ratio) -> Result<Wei, RuleError> {
    let floor = wei.floor();
    if floor > U256::from(Wei::SUPPLY_CAP.as_wei()) {
        return Err(RuleError::TooLarge(floor));
    }
    Ok(Wei::from_wei(floor.to::<u128>()))
}

/// The TOML parser's message on one line, with the line number.
fn syntax_message(text: &str, err: &toml::de::Error) -> String {
    let message = err
        .message()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match err.span() {
        Some(span) => {
            let line = text
                .get(..span.start)
                .map_or(0, |before| before.matches('\n').count())
                + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

// ---------------------------------------------------------------- the file

/// A number in the rules file: an integer, or a decimal written as a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RawNumber {
    Integer(i64),
    Text(String),
    /// Refused with a clear message: binary floats cannot hold 1.2 exactly.
    Float(f64),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    version: i64,
    booking: RawBooking,
    review: RawReview,
    event_attendance: RawTyped,
    contribution: RawContribution,
    coaching_milestone: RawTiered,
    referral: RawTiered,
    staking: RawStaking,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBooking {
    hnv_per_cad: RawNumber,
    multiplier: RawNumber,
    multiplier_above_nights: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReview {
    amount: RawNumber,
    min_rating: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTyped {
    default: Option<RawNumber>,
    #[serde(default)]
    types: BTreeMap<String, RawNumber>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiered {
    default: Option<RawNumber>,
    #[serde(default)]
    tiers: BTreeMap<String, RawNumber>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContribution {
    default: Option<RawNumber>,
    quality_min: RawNumber,
    quality_max: RawNumber,
    quality_default: RawNumber,
    #[serde(default)]
    types: BTreeMap<String, RawNumber>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaking {
    yearly_rate: RawNumber,
    periods_per_year: i64,
}

/// A problem with one key: (dotted key, what is wrong).
type KeyError = (String, String);

fn number(key: &str, raw: &RawNumber, max: u128) -> Result<Ratio, KeyError> {
    let fail = |problem: String| (key.to_owned(), problem);
    let value = match raw {
        RawNumber::Integer(n) => {
            let n = u128::try_from(*n).map_err(|_| fail("must not be negative".into()))?;
            Ratio::integer(n)
        }
        RawNumber::Text(text) => {
            Ratio::parse_decimal(text.trim()).map_err(|err| fail(format!("is malformed: {err}")))?
        }
        RawNumber::Float(f) => {
            return Err(fail(format!(
                "is the float {f}: write it as a string (\"{f}\") so it stays exact"
            )));
        }
    };
    if matches!(
        value.checked_cmp(Ratio::integer(max)),
        Some(std::cmp::Ordering::Greater) | None
    ) {
        return Err(fail(format!("must be at most {max}")));
    }
    Ok(value)
}

fn table(
    section: &str,
    sub: &str,
    default: Option<&RawNumber>,
    entries: &BTreeMap<String, RawNumber>,
) -> Result<AmountTable, KeyError> {
    let mut by_key = BTreeMap::new();
    for (name, raw) in entries {
        let key = format!("{section}.{sub}.{name}");
        if name.is_empty() || *name != name.to_lowercase() {
            return Err((
                key,
                "must be a lower-case name (partner types and tiers are matched in lower case)"
                    .into(),
            ));
        }
        by_key.insert(name.clone(), number(&key, raw, MAX_RULE_HNV)?);
    }
    let default = default
        .map(|raw| number(&format!("{section}.default"), raw, MAX_RULE_HNV))
        .transpose()?;
    if by_key.is_empty() && default.is_none() {
        return Err((
            format!("{section}.{sub}"),
            "is empty and there is no default: nothing could ever be paid".into(),
        ));
    }
    Ok(AmountTable { by_key, default })
}

fn range<T: TryFrom<i64>>(key: &str, value: i64, lo: i64, hi: i64) -> Result<T, KeyError> {
    if !(lo..=hi).contains(&value) {
        return Err((key.to_owned(), format!("must be between {lo} and {hi}")));
    }
    T::try_from(value).map_err(|_| (key.to_owned(), format!("must be between {lo} and {hi}")))
}

impl RawRules {
    fn check(self) -> Result<Rules, KeyError> {
        let version = range("version", self.version, 1, i64::from(i32::MAX))?;
        let booking = BookingRule {
            hnv_per_cad: number("booking.hnv_per_cad", &self.booking.hnv_per_cad, MAX_FACTOR)?,
            multiplier: number("booking.multiplier", &self.booking.multiplier, MAX_FACTOR)?,
            multiplier_above_nights: range(
                "booking.multiplier_above_nights",
                self.booking.multiplier_above_nights,
                0,
                365,
            )?,
        };
        let review = ReviewRule {
            amount: number("review.amount", &self.review.amount, MAX_RULE_HNV)?,
            min_rating: range("review.min_rating", self.review.min_rating, 1, 5)?,
        };
        let event_attendance = table(
            "event_attendance",
            "types",
            self.event_attendance.default.as_ref(),
            &self.event_attendance.types,
        )?;
        let c = &self.contribution;
        let quality_min = number("contribution.quality_min", &c.quality_min, MAX_FACTOR)?;
        let quality_max = number("contribution.quality_max", &c.quality_max, MAX_FACTOR)?;
        let quality_default = number(
            "contribution.quality_default",
            &c.quality_default,
            MAX_FACTOR,
        )?;
        let ordered = |a: Ratio, b: Ratio| a.checked_cmp(b) != Some(std::cmp::Ordering::Greater);
        if !ordered(quality_min, quality_max) {
            return Err((
                "contribution.quality_min".into(),
                "must not be above contribution.quality_max".into(),
            ));
        }
        if !ordered(quality_min, quality_default) || !ordered(quality_default, quality_max) {
            return Err((
                "contribution.quality_default".into(),
                "must be between quality_min and quality_max".into(),
            ));
        }
        let contribution = ContributionRule {
            amounts: table("contribution", "types", c.default.as_ref(), &c.types)?,
            quality_min,
            quality_max,
            quality_default,
        };
        let coaching_milestone = table(
            "coaching_milestone",
            "tiers",
            self.coaching_milestone.default.as_ref(),
            &self.coaching_milestone.tiers,
        )?;
        let referral = table(
            "referral",
            "tiers",
            self.referral.default.as_ref(),
            &self.referral.tiers,
        )?;
        let yearly_rate = number("staking.yearly_rate", &self.staking.yearly_rate, MAX_FACTOR)?;
        let periods: u32 = range(
            "staking.periods_per_year",
            self.staking.periods_per_year,
            1,
            1_000_000,
        )?;
        let per_period = yearly_rate
            .checked_div(Ratio::integer(u128::from(periods)))
            .ok_or_else(|| ("staking.yearly_rate".to_owned(), "overflows".to_owned()))?;
        Ok(Rules {
            version,
            booking,
            review,
            event_attendance,
            contribution,
            coaching_milestone,
            referral,
            staking: StakingRule { per_period },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap here is a failed test
mod tests {
    use super::*;
    use haven_messages::{
        Booking, CoachingMilestone, Contribution, EventAttendance, ReferralSuccess, Review,
    };
    use proptest::prelude::*;

    fn rules() -> Rules {
        Rules::default_rules().expect("the shipped rules are valid")
    }

    fn hnv(n: u128) -> Wei {
        Wei::from_hnv(n).unwrap()
    }

    /// HNV written as a decimal, e.g. "7.5", to wei.
    fn hnv_text(text: &str) -> Wei {
        Wei::parse(text).unwrap()
    }

    fn booking(price: &str, nights: u32) -> PartnerEvent {
        PartnerEvent::AuroraBookingCreated(Booking {
            booking_id: "b".into(),
            guest_id: "g".into(),
            guest_email: None,
            total_price: price.into(),
            nights,
            check_in: None,
            check_out: None,
        })
    }

    fn review(rating: u8) -> PartnerEvent {
        PartnerEvent::AuroraReviewSubmitted(Review {
            review_id: "r".into(),
            booking_id: None,
            guest_id: "g".into(),
            rating,
        })
    }

    fn attendance(event_type: &str, attended: bool) -> PartnerEvent {
        PartnerEvent::TribeEventAttendance(EventAttendance {
            event_id: "e".into(),
            attendee_id: "u".into(),
            event_name: None,
            event_type: event_type.into(),
            attended,
            timestamp: None,
        })
    }

    fn contribution(kind: &str, quality: Option<&str>) -> PartnerEvent {
        PartnerEvent::TribeContribution(Contribution {
            contribution_id: "c".into(),
            user_id: "u".into(),
            contribution_type: kind.into(),
            quality_score: quality.map(str::to_owned),
        })
    }

    fn coaching(tier: &str) -> PartnerEvent {
        PartnerEvent::TribeCoachingMilestone(CoachingMilestone {
            user_id: "u".into(),
            milestone_name: "m".into(),
            tier: tier.into(),
        })
    }

    fn referral(tier: &str) -> PartnerEvent {
        PartnerEvent::TribeReferralSuccess(ReferralSuccess {
            referrer_id: "a".into(),
            referred_id: "b".into(),
            tier: tier.into(),
        })
    }

    fn paid(event: &PartnerEvent) -> Option<(Rule, Wei)> {
        rules()
            .evaluate(event)
            .unwrap()
            .map(|grant| (grant.rule, grant.amount))
    }

    // ------------------------------------------------ one test per table row

    #[test]
    fn booking_pays_2_per_cad_times_1_2_above_one_night() {
        assert_eq!(paid(&booking("100.00", 2)), Some((Rule::Booking, hnv(240))));
        assert_eq!(paid(&booking("100.0", 1)), Some((Rule::Booking, hnv(200))));
        assert_eq!(
            paid(&booking("99.99", 3)),
            Some((Rule::Booking, hnv_text("239.976")))
        );
    }

    #[test]
    fn booking_completed_and_cancelled_and_staking_started_pay_nothing_themselves() {
        let r = rules();
        for event in [
            PartnerEvent::AuroraBookingCompleted(haven_messages::BookingRef {
                booking_id: "b".into(),
                guest_id: "g".into(),
            }),
            PartnerEvent::AuroraBookingCancelled(haven_messages::BookingCancellation {
                booking_id: "b".into(),
                guest_id: "g".into(),
                cancellation_reason: None,
            }),
            PartnerEvent::TribeStakingStarted(haven_messages::StakingStarted {
                stake_id: "s".into(),
                user_id: "u".into(),
                amount_wei: 1,
            }),
        ] {
            assert_eq!(r.evaluate(&event), Ok(None));
        }
    }

    #[test]
    fn review_pays_50_from_rating_4() {
        assert_eq!(paid(&review(4)), Some((Rule::Review, hnv(50))));
        assert_eq!(paid(&review(5)), Some((Rule::Review, hnv(50))));
        assert_eq!(paid(&review(3)), None);
        assert_eq!(paid(&review(1)), None);
    }

    #[test]
    fn event_attendance_pays_by_type_and_nothing_when_absent() {
        for (kind, amount) in [
            ("wisdom_circle", 100),
            ("workshop", 75),
            ("networking", 50),
            ("general", 25),
            ("karaoke", 25),
        ] {
            assert_eq!(
                paid(&attendance(kind, true)),
                Some((Rule::EventAttendance, hnv(amount))),
                "{kind}"
            );
        }
        assert_eq!(paid(&attendance("wisdom_circle", false)), None);
    }

    #[test]
    fn contribution_pays_by_type_times_clamped_quality() {
        for (kind, amount) in [
            ("post", 10),
            ("comment", 5),
            ("resource", 15),
            ("guide", 25),
            ("unknown", 5),
            ("poem", 5),
        ] {
            assert_eq!(
                paid(&contribution(kind, None)),
                Some((Rule::Contribution, hnv(amount))),
                "{kind}"
            );
        }
        let guide = |q: &str| paid(&contribution("guide", Some(q))).map(|(_, w)| w);
        assert_eq!(guide("1.5"), Some(hnv_text("37.5")));
        assert_eq!(guide("0"), Some(hnv_text("12.5")), "clamped up to 0.5");
        assert_eq!(guide("0.2"), Some(hnv_text("12.5")));
        assert_eq!(guide("9"), Some(hnv(50)), "clamped down to 2.0");
        assert_eq!(guide("1.0"), Some(hnv(25)));
    }

    #[test]
    fn coaching_milestone_pays_by_tier() {
        for (tier, amount) in [("basic", 100), ("intermediate", 175), ("advanced", 250)] {
            assert_eq!(
                paid(&coaching(tier)),
                Some((Rule::CoachingMilestone, hnv(amount)))
            );
        }
        assert!(matches!(
            rules().evaluate(&coaching("platinum")),
            Err(RuleError::NoRule { .. })
        ));
    }

    #[test]
    fn referral_pays_the_referrer_by_tier() {
        for (tier, amount) in [("basic", 100), ("silver", 250), ("gold", 500)] {
            assert_eq!(paid(&referral(tier)), Some((Rule::Referral, hnv(amount))));
        }
        assert!(rules().evaluate(&referral("bronze")).is_err());
    }

    #[test]
    fn staking_pays_a_tenth_a_year_in_52_parts() {
        // 520 HNV x 10% / 52 = 1 HNV a week.
        assert_eq!(rules().staking_interest(hnv(520)), Ok(Some(hnv(1))));
        // 1000 HNV: 1.923076923076923076... HNV, rounded down to the wei.
        assert_eq!(
            rules().staking_interest(hnv(1000)),
            Ok(Some(Wei::from_wei(1_923_076_923_076_923_076)))
        );
        assert_eq!(rules().staking_interest(Wei::from_wei(519)), Ok(None));
    }

    // ------------------------------------------------ the rules file

    #[test]
    fn rule_names_fit_the_contracts_reason() {
        for rule in Rule::ALL {
            let name = rule.as_str();
            assert!(name.is_ascii() && !name.is_empty() && name.len() <= MAX_REASON_LEN);
        }
        assert_eq!(rules().version(), 1);
    }

    fn invalid(text: &str) -> String {
        Rules::from_toml(text, "test.toml").unwrap_err().to_string()
    }

    fn shipped_with(from: &str, to: &str) -> String {
        assert!(DEFAULT_RULES.contains(from), "{from}");
        DEFAULT_RULES.replacen(from, to, 1)
    }

    #[test]
    fn mistakes_are_named_by_key() {
        let err = invalid(&shipped_with("multiplier = \"1.2\"", "multiplier = 1.2"));
        assert!(
            err.contains("`booking.multiplier`") && err.contains("float"),
            "{err}"
        );
        let err = invalid(&shipped_with(
            "multiplier = \"1.2\"",
            "multiplier = \"1,2\"",
        ));
        assert!(err.contains("`booking.multiplier` is malformed"), "{err}");
        let err = invalid(&shipped_with("workshop = 75", "workshop = -75"));
        assert!(err.contains("`event_attendance.types.workshop`"), "{err}");
        let err = invalid(&shipped_with("workshop = 75", "Workshop = 75"));
        assert!(err.contains("lower-case"), "{err}");
        let err = invalid(&shipped_with("min_rating = 4", "min_rating = 6"));
        assert!(
            err.contains("`review.min_rating` must be between 1 and 5"),
            "{err}"
        );
        let err = invalid(&shipped_with(
            "quality_min = \"0.5\"",
            "quality_min = \"3\"",
        ));
        assert!(err.contains("`contribution.quality_min`"), "{err}");
        let err = invalid(&shipped_with("version = 1", "version = 0"));
        assert!(err.contains("`version`"), "{err}");
        let err = invalid(&shipped_with(
            "periods_per_year = 52",
            "periods_per_year = 0",
        ));
        assert!(err.contains("`staking.periods_per_year`"), "{err}");
        let err = invalid(&shipped_with("[review]", "[reviews]"));
        assert!(err.starts_with("rules file test.toml: line"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = invalid(&shipped_with(
            "hnv_per_cad = 2\n",
            "hnv_per_cad = 2\nbonus = 3\n",
        ));
        assert!(err.contains("bonus"), "{err}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = Rules::load(Some(Path::new("/no/such/rules.toml"))).unwrap_err();
        assert!(err.to_string().contains("/no/such/rules.toml"));
    }

    #[test]
    fn operators_can_add_a_default_tier() {
        let text = shipped_with(
            "[referral.tiers]",
            "[referral]\ndefault = 1\n\n[referral.tiers]",
        );
        let r = Rules::from_toml(&text, "t").unwrap();
        assert_eq!(
            r.evaluate(&referral("bronze")).unwrap().map(|g| g.amount),
            Some(hnv(1))
        );
    }

    // ------------------------------------------------ properties

    /// A decimal with up to 18 decimals, as webhook-ingress writes them.
    fn price() -> impl Strategy<Value = (u128, u32, String)> {
        (0u128..100_000_000, 0u32..=18, any::<u64>()).prop_map(|(whole, scale, frac)| {
            let frac = u128::from(frac) % 10u128.pow(scale);
            let text = if scale == 0 {
                whole.to_string()
            } else {
                format!("{whole}.{frac:0w$}", w = scale as usize)
            };
            (whole * 10u128.pow(scale) + frac, scale, text)
        })
    }

    proptest! {
        /// The booking reward is exactly floor(price x 2 x (1.2 if nights > 1)) in
        /// wei, computed here independently in integers.
        #[test]
        fn booking_is_exact_and_rounded_down((mantissa, scale, text) in price(), nights in 1u32..30) {
            let got = rules().evaluate(&booking(&text, nights)).unwrap().map_or(0, |g| g.amount.as_wei());
            // wei = mantissa / 10^scale x 2 x 10^18 (x 12/10)
            let (num, den) = if nights > 1 {
                (U256::from(mantissa) * U256::from(24u8) * U256::from(WEI_PER_HNV), U256::from(10u128.pow(scale)) * U256::from(10u8))
            } else {
                (U256::from(mantissa) * U256::from(2u8) * U256::from(WEI_PER_HNV), U256::from(10u128.pow(scale)))
            };
            prop_assert_eq!(U256::from(got), num / den);
        }

        /// Quality is clamped: a post pays between 5 and 20 HNV whatever the
        /// score, more for a higher score, and exactly 10 x score inside the range.
        #[test]
        fn quality_is_clamped_and_monotonic(a in 0u64..100_000, b in 0u64..100_000) {
            let pay = |q: u64| {
                let text = format!("{}.{:03}", q / 1000, q % 1000);
                rules().evaluate(&contribution("post", Some(&text))).unwrap().unwrap().amount
            };
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(pay(lo) <= pay(hi));
            for q in [a, b] {
                let amount = pay(q);
                prop_assert!(amount >= hnv(5) && amount <= hnv(20));
                if (500..=2000).contains(&q) {
                    prop_assert_eq!(amount.as_wei(), u128::from(q) * 10 * WEI_PER_HNV / 1000);
                }
            }
        }

        /// Staking interest is exactly floor(stake / 520) wei: a tenth a year, 52 times.
        #[test]
        fn staking_interest_is_exact(stake in 0u128..=Wei::SUPPLY_CAP.as_wei()) {
            let got = rules().staking_interest(Wei::from_wei(stake)).unwrap();
            prop_assert_eq!(got.map_or(0, Wei::as_wei), stake / 520);
        }

        /// No input that parses produces a negative, fractional or oversized
        /// amount: amounts are whole wei in a u128, never above the supply cap,
        /// and zero is reported as "nothing" (the database refuses zero rewards).
        #[test]
        fn amounts_are_whole_positive_wei((_, _, text) in price(), nights in 1u32..365, kind in "[a-z_]{1,12}", q in price()) {
            let r = rules();
            for event in [booking(&text, nights), contribution(&kind, Some(&q.2)), attendance(&kind, true)] {
                if let Some(grant) = r.evaluate(&event).unwrap() {
                    prop_assert!(!grant.amount.is_zero());
                    prop_assert!(grant.amount <= Wei::SUPPLY_CAP);
                }
            }
        }
    }
}
