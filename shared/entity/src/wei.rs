//! [`SignedWei`]: an exact amount of HNV base units, as stored in the database.

use std::fmt;
use std::str::FromStr;

use sea_orm::DeriveValueType;

/// A signed amount in wei (1 HNV = 10^18 wei).
///
/// Signed because ledger entries are signed changes; balances and token
/// transaction amounts are never negative (the queries check it). `i128`
/// holds ±1.7·10^38, far above the 10^27 wei supply cap, so sums of any
/// realistic number of amounts cannot overflow, and the checked operations
/// turn the impossible case into an error instead of a wrap.
///
/// In the database it is a decimal string written through
/// `CAST(? AS wei_text)` and read through `CAST(col AS text)`: exact on
/// PostgreSQL (`NUMERIC(78,0)`) and on SQLite (TEXT). See the
/// `haven-migrations` crate docs for why that cast name works on both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, DeriveValueType)]
#[sea_orm(value_type = "String")]
pub struct SignedWei(i128);

impl SignedWei {
    /// Zero wei.
    pub const ZERO: SignedWei = SignedWei(0);
    /// SignedWei in one HNV.
    pub const PER_HNV: i128 = 1_000_000_000_000_000_000;

    /// An amount of `wei` base units.
    pub const fn new(wei: i128) -> Self {
        Self(wei)
    }

    /// A whole number of HNV, `None` on overflow.
    pub fn from_hnv(hnv: i128) -> Option<Self> {
        hnv.checked_mul(Self::PER_HNV).map(Self)
    }

    /// The number of wei.
    pub const fn get(self) -> i128 {
        self.0
    }

    /// Whether the amount is below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Whether the amount is above zero.
    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Whether the amount is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(self, other: SignedWei) -> Option<SignedWei> {
        self.0.checked_add(other.0).map(Self)
    }

    /// `self - other`, `None` on overflow.
    pub fn checked_sub(self, other: SignedWei) -> Option<SignedWei> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// `-self`, `None` on overflow.
    pub fn checked_neg(self) -> Option<SignedWei> {
        self.0.checked_neg().map(Self)
    }
}

impl fmt::Display for SignedWei {
    /// The plain decimal integer, e.g. `-1500000000000000000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A string that is not a decimal integer of wei.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an integer amount of wei")]
pub struct ParseWeiError(String);

impl FromStr for SignedWei {
    type Err = ParseWeiError;

    /// Parses an optionally negative run of ASCII digits, nothing else: no
    /// `+`, no spaces, no decimal point, no exponent. That is exactly what
    /// PostgreSQL prints for `NUMERIC(78,0)` and what [`SignedWei`]'s `Display`
    /// writes, so anything else in the column is corruption, not input.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix('-').unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseWeiError(s.to_owned()));
        }
        s.parse::<i128>()
            .map(Self)
            .map_err(|_| ParseWeiError(s.to_owned()))
    }
}

impl From<i128> for SignedWei {
    fn from(wei: i128) -> Self {
        Self(wei)
    }
}

impl From<SignedWei> for i128 {
    fn from(wei: SignedWei) -> Self {
        wei.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_what_postgres_prints() {
        assert_eq!("0".parse::<SignedWei>(), Ok(SignedWei::ZERO));
        assert_eq!("-42".parse::<SignedWei>(), Ok(SignedWei::new(-42)));
        assert_eq!(
            "1000000000000000000000000001".parse::<SignedWei>(),
            Ok(SignedWei::new(10i128.pow(27) + 1))
        );
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "", "-", "+1", " 1", "1 ", "1.0", "1e3", "0x10", "--1", "1_000",
        ] {
            assert!(bad.parse::<SignedWei>().is_err(), "{bad:?} parsed");
        }
        // Beyond i128: an error, not a wrap.
        assert!("1".repeat(40).parse::<SignedWei>().is_err());
    }

    #[test]
    fn checked_arithmetic_never_wraps() {
        assert_eq!(
            SignedWei::new(i128::MAX).checked_add(SignedWei::new(1)),
            None
        );
        assert_eq!(SignedWei::new(i128::MIN).checked_neg(), None);
        assert_eq!(
            SignedWei::from_hnv(2),
            Some(SignedWei::new(2 * SignedWei::PER_HNV))
        );
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(n in any::<i128>()) {
            prop_assert_eq!(SignedWei::new(n).to_string().parse::<SignedWei>(), Ok(SignedWei::new(n)));
        }
    }
}
