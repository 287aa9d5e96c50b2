//! The rules file: its TOML schema and the checks that turn it into
//! [`Rules`], naming the dotted key of the first mistake.
//!
//! Numbers are integers or decimals written as strings; a TOML float is
//! refused, since a binary float cannot hold `1.2` exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::eval::{AmountTable, BookingRule, ContributionRule, ReviewRule, Rules, StakingRule};
use crate::exact::Ratio;

/// The shipped rules: SPEC.md's table.
pub const DEFAULT_RULES: &str = include_str!("../../rules/default.toml");

/// Largest amount any single rule may pay, in HNV: the supply cap.
const MAX_RULE_HNV: u128 = haven_common::money::SUPPLY_CAP_HNV;
/// Largest multiplier or rate accepted from the rules file.
const MAX_FACTOR: u128 = 1_000;

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
