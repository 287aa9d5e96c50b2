//! Evaluation: which rule pays a partner event and how much, exactly.
//!
//! [`Rules`] holds values the rules file was already checked into
//! (`super::file`), so nothing here can meet an out-of-range setting; the
//! only failures are the event's own (a malformed decimal, an unknown tier
//! without default, an amount above the supply cap).

use std::collections::BTreeMap;

use alloy_primitives::U256;
use haven_common::money::{WEI_PER_HNV, Wei};
use haven_messages::PartnerEvent;

use crate::exact::{DecimalError, Ratio};

/// Longest reason the contract can carry minus one, kept as a margin: the
/// chain encodes a reason in a `bytes32`.
pub const MAX_REASON_LEN: usize = 31;

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

/// The checked rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub(super) version: i32,
    pub(super) booking: BookingRule,
    pub(super) review: ReviewRule,
    pub(super) event_attendance: AmountTable,
    pub(super) contribution: ContributionRule,
    pub(super) coaching_milestone: AmountTable,
    pub(super) referral: AmountTable,
    pub(super) staking: StakingRule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BookingRule {
    pub(super) hnv_per_cad: Ratio,
    pub(super) multiplier: Ratio,
    pub(super) multiplier_above_nights: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ReviewRule {
    pub(super) amount: Ratio,
    pub(super) min_rating: u8,
}

/// HNV per type or tier, with an optional fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AmountTable {
    pub(super) by_key: BTreeMap<String, Ratio>,
    pub(super) default: Option<Ratio>,
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
pub(super) struct ContributionRule {
    pub(super) amounts: AmountTable,
    pub(super) quality_min: Ratio,
    pub(super) quality_max: Ratio,
    pub(super) quality_default: Ratio,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StakingRule {
    /// yearly_rate / periods_per_year, exact.
    pub(super) per_period: Ratio,
}

impl Rules {
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
