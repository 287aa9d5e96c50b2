//! Money: HNV amounts as exact integers of wei (1 HNV = 10^18 wei).
//!
//! Amounts are never floating point anywhere in HAVEN (SPEC.md "Money").
//! [`Wei`] wraps a `u128`; the whole supply cap (10^9 HNV = 10^27 wei) fits
//! with room to spare (`u128::MAX` is about 3.4 * 10^38).
//!
//! # Parsing rules ([`Wei::parse`])
//! Input amounts arrive as decimal HNV written as JSON numbers (`240.0`,
//! `1234.56`) or strings holding the same text. Accepted:
//! - `digits`, `digits.digits`, either followed by an exponent `e`/`E`, an
//!   optional `+`/`-` and digits (`1e3`, `2.4E2`, `15e-1`). Exponents are
//!   accepted because JSON allows them and common senders (Python's `json`
//!   for large or small floats) write them; the value is still computed
//!   exactly, digit by digit.
//! - Leading zeros (`007.5`); they do not change the value.
//! - Trailing zeros beyond the 18th decimal (`1.50000000000000000000`): the
//!   rule is about the *value*, which must be a whole number of wei.
//!
//! Rejected, each with its own [`MoneyError`]: the empty string; text that is
//! not a number (whitespace, a `+` sign, `.5`, `5.`, `1,5`, hex, ...); NaN and
//! infinities; negative amounts; zero; a value finer than 1 wei (a nonzero
//! 19th decimal); a value above the supply cap.
//!
//! # Formatting ([`Wei`]'s `Display`)
//! A decimal number of HNV with at least one fractional digit and no trailing
//! zeros beyond it: `240.0`, `242.4`, `0.000000000000000001`. The output is
//! always accepted back by [`Wei::parse`] (for nonzero values) and gives the
//! same amount.
//!
//! # JSON
//! `Serialize` writes a JSON *number* from the exact decimal text (through
//! `serde_json::value::RawValue`, so no float is ever involved).
//! `Deserialize` reads the raw number text, or a JSON string, and applies
//! [`Wei::parse`]. Both need `serde_json` as the data format: do not put a
//! `Wei` under `#[serde(flatten)]` or in an untagged enum, where serde buffers
//! the value and the raw text is lost.

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// Number of decimals of HNV: 1 HNV = 10^18 wei.
pub const DECIMALS: u32 = 18;

/// Wei in one HNV.
pub const WEI_PER_HNV: u128 = 10u128.pow(DECIMALS);

/// Whole HNV that will ever exist (SPEC.md "Money": fixed supply cap).
pub const SUPPLY_CAP_HNV: u128 = 1_000_000_000;

/// An exact, non-negative amount of HNV in base units (wei).
///
/// Zero is a valid `Wei` (a balance can be zero), but [`Wei::parse`] rejects
/// it because an input amount of zero is never meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Wei(u128);

/// Why a text is not an acceptable amount. The messages are safe to return to
/// clients (they name the rule, and echo nothing but a length).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Nothing was given.
    #[error("amount is empty")]
    Empty,
    /// The text is not a decimal number.
    #[error("amount is not a decimal number")]
    NotANumber,
    /// NaN or an infinity.
    #[error("amount must be a finite number")]
    NotFinite,
    /// Below zero.
    #[error("amount must not be negative")]
    Negative,
    /// Exactly zero.
    #[error("amount must be greater than zero")]
    Zero,
    /// Written with more than 18 decimals (zeros included): finer than 1 wei.
    #[error("amount has more than {DECIMALS} decimals")]
    TooManyDecimals,
    /// More than the 1,000,000,000 HNV that can ever exist.
    #[error("amount exceeds the supply cap of {SUPPLY_CAP_HNV} HNV")]
    AboveSupplyCap,
}

impl Wei {
    /// No HNV at all.
    pub const ZERO: Wei = Wei(0);
    /// The supply cap, 10^9 HNV.
    pub const SUPPLY_CAP: Wei = Wei(SUPPLY_CAP_HNV * WEI_PER_HNV);

    /// An amount given in wei (from the chain or the database).
    pub const fn from_wei(wei: u128) -> Self {
        Wei(wei)
    }

    /// Whole HNV, `None` if the result does not fit in `u128`.
    pub const fn from_hnv(hnv: u128) -> Option<Self> {
        match hnv.checked_mul(WEI_PER_HNV) {
            Some(wei) => Some(Wei(wei)),
            None => None,
        }
    }

    /// The amount in wei.
    pub const fn as_wei(self) -> u128 {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + other`, `None` on overflow.
    pub const fn checked_add(self, other: Wei) -> Option<Wei> {
        match self.0.checked_add(other.0) {
            Some(v) => Some(Wei(v)),
            None => None,
        }
    }

    /// `self - other`, `None` if it would go below zero.
    pub const fn checked_sub(self, other: Wei) -> Option<Wei> {
        match self.0.checked_sub(other.0) {
            Some(v) => Some(Wei(v)),
            None => None,
        }
    }

    /// Parses an input amount of HNV written in decimal; see the module docs
    /// for the exact rules. Never panics, whatever the input.
    pub fn parse(text: &str) -> Result<Wei, MoneyError> {
        if text.is_empty() {
            return Err(MoneyError::Empty);
        }
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let Some(number) = Decimal::split(unsigned) else {
            return Err(if is_non_finite(unsigned) {
                MoneyError::NotFinite
            } else {
                MoneyError::NotANumber
            });
        };
        if negative {
            return Err(MoneyError::Negative);
        }
        number.to_wei()
    }

    /// The amount as decimal HNV text, e.g. `"240.0"`; same as `to_string()`.
    pub fn to_decimal_string(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Wei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / WEI_PER_HNV;
        let frac = self.0 % WEI_PER_HNV;
        // Zero-pad to 18 digits, then drop trailing zeros but keep at least one
        // digit so the output always reads as a decimal (`240.0`).
        let frac = format!("{frac:018}");
        let frac = frac.trim_end_matches('0');
        let frac = if frac.is_empty() { "0" } else { frac };
        write!(f, "{whole}.{frac}")
    }
}

impl FromStr for Wei {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Wei::parse(s)
    }
}

impl Serialize for Wei {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The text is always a valid JSON number (digits '.' digits), so this
        // cannot fail; map the error anyway rather than assume.
        let raw = RawValue::from_string(self.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Wei {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get().trim();
        let parsed = if text.starts_with('"') {
            let inner: String = serde_json::from_str(text).map_err(D::Error::custom)?;
            Wei::parse(&inner)
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            Wei::parse(text)
        } else {
            Err(MoneyError::NotANumber)
        };
        parsed.map_err(D::Error::custom)
    }
}

/// `nan`, `inf`, `infinity` in any case: the non-finite spellings floats use.
fn is_non_finite(text: &str) -> bool {
    let text = text.strip_prefix('+').unwrap_or(text);
    ["nan", "inf", "infinity"]
        .iter()
        .any(|word| text.eq_ignore_ascii_case(word))
}

/// A syntactically valid unsigned decimal, split into its parts.
struct Decimal<'a> {
    int_digits: &'a str,
    frac_digits: &'a str,
    /// Exponent, saturated: anything beyond `i64` is out of range either way.
    exponent: i64,
}

impl<'a> Decimal<'a> {
    /// `digits ('.' digits)? ([eE] [+-]? digits)?`, or `None`.
    fn split(text: &'a str) -> Option<Self> {
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        };
        let (int_digits, frac_digits) = match mantissa.split_once('.') {
            Some((int, frac)) => (int, frac),
            None => (mantissa, ""),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_digits) || (mantissa.contains('.') && !all_digits(frac_digits)) {
            return None;
        }
        let exponent = match exponent {
            None => 0,
            Some(exp) => {
                let (negative, digits) = match exp.as_bytes().first() {
                    Some(b'-') => (true, &exp[1..]),
                    Some(b'+') => (false, &exp[1..]),
                    _ => (false, exp),
                };
                if !all_digits(digits) {
                    return None;
                }
                let magnitude = digits.bytes().fold(0i64, |acc, b| {
                    acc.saturating_mul(10).saturating_add(i64::from(b - b'0'))
                });
                if negative { -magnitude } else { magnitude }
            }
        };
        Some(Decimal {
            int_digits,
            frac_digits,
            exponent,
        })
    }

    /// The exact value in wei, applying the range rules.
    fn to_wei(&self) -> Result<Wei, MoneyError> {
        // All significant digits as one integer string, then a power of ten:
        // value = digits * 10^(exponent - frac_len) HNV
        //       = digits * 10^(18 + exponent - frac_len) wei.
        let digits_iter = || self.int_digits.bytes().chain(self.frac_digits.bytes());
        let digits: Vec<u8> = digits_iter().skip_while(|&b| b == b'0').collect();
        if digits.is_empty() {
            return Err(MoneyError::Zero);
        }
        let frac_len = i64::try_from(self.frac_digits.len()).unwrap_or(i64::MAX);
        let shift = i64::from(DECIMALS)
            .saturating_add(self.exponent)
            .saturating_sub(frac_len);

        // SPEC: more than 18 decimals is refused, even when they are zeros
        // (`1.0000000000000000000`): a partner whose number is finer than
        // the token is told so rather than silently rounded.
        if shift < 0 {
            return Err(MoneyError::TooManyDecimals);
        }
        // Any shift beyond 38 overflows u128 for a nonzero value.
        let shift = u32::try_from(shift).unwrap_or(u32::MAX);

        let mut wei: u128 = 0;
        for &b in &digits {
            wei = wei
                .checked_mul(10)
                .and_then(|w| w.checked_add(u128::from(b - b'0')))
                .ok_or(MoneyError::AboveSupplyCap)?;
        }
        let wei = 10u128
            .checked_pow(shift)
            .and_then(|scale| wei.checked_mul(scale))
            .ok_or(MoneyError::AboveSupplyCap)?;
        if wei > Wei::SUPPLY_CAP.0 {
            return Err(MoneyError::AboveSupplyCap);
        }
        Ok(Wei(wei))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hnv(text: &str) -> Result<u128, MoneyError> {
        Wei::parse(text).map(Wei::as_wei)
    }

    #[test]
    fn parses_spec_examples_exactly() {
        assert_eq!(hnv("240.0"), Ok(240 * WEI_PER_HNV));
        assert_eq!(hnv("240"), Ok(240 * WEI_PER_HNV));
        assert_eq!(hnv("1234.56"), Ok(1_234_560_000_000_000_000_000));
        assert_eq!(hnv("0.1"), Ok(100_000_000_000_000_000));
        assert_eq!(hnv("0.000000000000000001"), Ok(1));
        assert_eq!(hnv("007.50"), Ok(7_500_000_000_000_000_000));
        assert_eq!(hnv("1000000000"), Ok(Wei::SUPPLY_CAP.as_wei()));
    }

    #[test]
    fn exponents_are_exact() {
        assert_eq!(hnv("1e3"), Ok(1000 * WEI_PER_HNV));
        assert_eq!(hnv("2.4E2"), Ok(240 * WEI_PER_HNV));
        assert_eq!(hnv("15e-1"), Ok(1_500_000_000_000_000_000));
        assert_eq!(hnv("1e+9"), Ok(Wei::SUPPLY_CAP.as_wei()));
        assert_eq!(hnv("1e-18"), Ok(1));
        assert_eq!(hnv("10e-19"), Err(MoneyError::TooManyDecimals));
        assert_eq!(hnv("0.1e-17"), Ok(1));
        assert_eq!(hnv("1e-19"), Err(MoneyError::TooManyDecimals));
        assert_eq!(hnv("1e10"), Err(MoneyError::AboveSupplyCap));
        assert_eq!(
            hnv("1e99999999999999999999999"),
            Err(MoneyError::AboveSupplyCap)
        );
        assert_eq!(
            hnv("1e-99999999999999999999999"),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(hnv("0e99999999999"), Err(MoneyError::Zero));
    }

    #[test]
    fn decimals_rule_is_about_the_value() {
        assert_eq!(hnv("1.000000000000000001"), Ok(WEI_PER_HNV + 1));
        assert_eq!(
            hnv("1.0000000000000000001"),
            Err(MoneyError::TooManyDecimals)
        );
        // 19 decimals, even zeros, are more than 18.
        assert_eq!(
            hnv("1.0000000000000000000"),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(
            hnv("1.50000000000000000000"),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(hnv("1.500000000000000000"), Ok(1_500_000_000_000_000_000));
    }

    #[test]
    fn rejects_with_the_reason() {
        use MoneyError::*;
        let cases = [
            ("", Empty),
            ("-1", Negative),
            ("-0.5", Negative),
            ("-0", Negative),
            ("0", Zero),
            ("0.0", Zero),
            ("0.000000000000000000000", Zero),
            ("NaN", NotFinite),
            ("nan", NotFinite),
            ("inf", NotFinite),
            ("-Infinity", NotFinite),
            ("+inf", NotFinite),
            ("abc", NotANumber),
            (" 1", NotANumber),
            ("1 ", NotANumber),
            ("+1", NotANumber),
            (".5", NotANumber),
            ("5.", NotANumber),
            ("1,5", NotANumber),
            ("0x10", NotANumber),
            ("1e", NotANumber),
            ("1e+", NotANumber),
            ("1.2.3", NotANumber),
            ("--1", NotANumber),
            ("١٢", NotANumber),
            ("1000000000.000000000000000001", AboveSupplyCap),
            ("340282366920938463463374607431768211456", AboveSupplyCap),
            (
                "99999999999999999999999999999999999999999999",
                AboveSupplyCap,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(Wei::parse(text), Err(expected), "input {text:?}");
        }
    }

    #[test]
    fn formats_with_at_least_one_decimal() {
        assert_eq!(Wei::from_wei(240 * WEI_PER_HNV).to_string(), "240.0");
        assert_eq!(
            Wei::from_wei(242_400_000_000_000_000_000).to_string(),
            "242.4"
        );
        assert_eq!(Wei::from_wei(1).to_string(), "0.000000000000000001");
        assert_eq!(Wei::ZERO.to_string(), "0.0");
        assert_eq!(Wei::SUPPLY_CAP.to_string(), "1000000000.0");
    }

    #[test]
    fn json_numbers_round_trip_without_floats() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Body {
            amount: Wei,
        }
        let body: Body = serde_json::from_str(r#"{"amount": 1234.56}"#).unwrap();
        assert_eq!(body.amount.as_wei(), 1_234_560_000_000_000_000_000);
        // 0.1 + 0.2 is the classic float artefact; here it stays exact.
        let body: Body = serde_json::from_str(r#"{"amount": 0.3}"#).unwrap();
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"amount":0.3}"#);
        // More digits than an f64 holds, still exact.
        let body: Body =
            serde_json::from_str(r#"{"amount": 123456789.123456789123456789}"#).unwrap();
        assert_eq!(body.amount.as_wei(), 123_456_789_123_456_789_123_456_789);
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"amount":123456789.123456789123456789}"#
        );
        let body: Body = serde_json::from_str(r#"{"amount": "240"}"#).unwrap();
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"amount":240.0}"#);
        // Through serde_json::Value as well (axum's Json and tests use it).
        let value = serde_json::json!({"amount": "12.5"});
        let body: Body = serde_json::from_value(value).unwrap();
        assert_eq!(body.amount.as_wei(), 12_500_000_000_000_000_000);
    }

    #[test]
    fn json_rejections_name_the_rule() {
        let err = |json: &str| {
            serde_json::from_str::<Wei>(json)
                .expect_err(json)
                .to_string()
        };
        assert!(err("-5").contains("negative"));
        assert!(err("0").contains("greater than zero"));
        assert!(err("1.0000000000000000001").contains("decimals"));
        assert!(err("1e10").contains("supply cap"));
        assert!(err(r#""NaN""#).contains("finite"));
        assert!(err(r#""ten""#).contains("not a decimal number"));
        assert!(err("true").contains("not a decimal number"));
        assert!(err("null").contains("not a decimal number"));
        assert!(err("[1]").contains("not a decimal number"));
        assert!(err(r#""""#).contains("empty"));
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(wei in 1..=Wei::SUPPLY_CAP.as_wei()) {
            let text = Wei::from_wei(wei).to_string();
            prop_assert_eq!(Wei::parse(&text), Ok(Wei::from_wei(wei)));
            let json = serde_json::to_string(&Wei::from_wei(wei)).unwrap();
            prop_assert_eq!(serde_json::from_str::<Wei>(&json).unwrap(), Wei::from_wei(wei));
        }

        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = Wei::parse(&text);
            let _ = serde_json::from_str::<Wei>(&text);
        }

        #[test]
        fn parse_never_panics_on_number_like_text(text in "-?[0-9]{0,40}(\\.[0-9]{0,40})?([eE][+-]?[0-9]{0,25})?") {
            let _ = Wei::parse(&text);
        }

        /// Parsing agrees with a digit-by-digit reference built from strings only.
        #[test]
        fn parse_matches_string_reference(whole in 0u128..=SUPPLY_CAP_HNV - 1, frac in "[0-9]{1,18}") {
            let text = format!("{whole}.{frac}");
            let padded = format!("{frac:0<18}");
            let expected: u128 = format!("{whole}{padded}").parse().unwrap();
            let parsed = Wei::parse(&text);
            if expected == 0 {
                prop_assert_eq!(parsed, Err(MoneyError::Zero));
            } else {
                prop_assert_eq!(parsed, Ok(Wei::from_wei(expected)));
            }
        }
    }
}
