//! [`Ratio`]: exact non-negative rational numbers for reward arithmetic.
//!
//! Prices, multipliers, quality scores and rates arrive as decimal text
//! (`"100.00"`, `"1.2"`, `"0.75"`). Each is read as an exact fraction
//! (`1.2` = 12/10), the fractions are multiplied exactly in 256-bit
//! integers, and only the final amount is rounded, once, down to a whole
//! wei ([`Ratio::floor`]). No float is ever involved, so `100 x 2 x 1.2` is
//! exactly 240 HNV, not 239.99999999999997.

use std::cmp::Ordering;
use std::fmt;

use alloy_primitives::U256;

/// Most digits after the decimal point accepted (a wei has 18; scores and
/// rates need far fewer).
pub const MAX_FRACTION_DIGITS: usize = 36;
/// Most digits in all accepted. 10^60 still leaves room for the products
/// of a reward in 256 bits (about 10^77).
pub const MAX_DIGITS: usize = 60;

/// A non-negative fraction `num / den`, always in lowest terms, `den > 0`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: U256,
    den: U256,
}

/// Text that is not a plain non-negative decimal number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Empty, a sign, an exponent, a separator or anything but `digits[.digits]`.
    #[error("`{0}` is not a plain decimal number such as 12 or 1.25")]
    Syntax(String),
    /// More digits than [`MAX_DIGITS`] or [`MAX_FRACTION_DIGITS`].
    #[error("`{0}` has too many digits")]
    TooLong(String),
}

impl Ratio {
    pub const ZERO: Ratio = Ratio {
        num: U256::ZERO,
        den: U256::ONE,
    };
    pub const ONE: Ratio = Ratio {
        num: U256::ONE,
        den: U256::ONE,
    };

    /// The whole number `n`.
    pub fn integer(n: u128) -> Self {
        Self {
            num: U256::from(n),
            den: U256::ONE,
        }
    }

    /// `num / den` in lowest terms, `None` when `den` is zero.
    pub fn new(num: U256, den: U256) -> Option<Self> {
        if den.is_zero() {
            return None;
        }
        let gcd = num.gcd(den);
        // gcd(0, den) = den, which reduces 0/den to 0/1.
        Some(Self {
            num: num / gcd,
            den: den / gcd,
        })
    }

    /// Reads `digits` or `digits.digits` exactly: `"1.2"` is 6/5. No sign,
    /// exponent, spaces or separators; `"5."` and `".5"` are refused.
    pub fn parse_decimal(text: &str) -> Result<Self, DecimalError> {
        let syntax = || DecimalError::Syntax(text.to_owned());
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (text, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || (text.contains('.') && fraction.is_empty())
        {
            return Err(syntax());
        }
        if fraction.len() > MAX_FRACTION_DIGITS || whole.len() + fraction.len() > MAX_DIGITS {
            return Err(DecimalError::TooLong(text.to_owned()));
        }
        let mut num = U256::ZERO;
        for digit in whole.bytes().chain(fraction.bytes()) {
            // At most MAX_DIGITS digits: below 10^60, far from 2^256.
            num = num * U256::from(10u8) + U256::from(digit - b'0');
        }
        let den = U256::from(10u8).pow(U256::from(fraction.len()));
        Self::new(num, den).ok_or_else(syntax)
    }

    /// `self * other`, `None` when a part would not fit in 256 bits.
    pub fn checked_mul(self, other: Ratio) -> Option<Ratio> {
        // Cross-reduce first so the products stay as small as possible.
        let g1 = self.num.gcd(other.den);
        let g2 = other.num.gcd(self.den);
        let (g1, g2) = (g1.max(U256::ONE), g2.max(U256::ONE));
        let num = (self.num / g1).checked_mul(other.num / g2)?;
        let den = (self.den / g2).checked_mul(other.den / g1)?;
        Self::new(num, den)
    }

    /// `self / other`, `None` when `other` is zero or a part would overflow.
    pub fn checked_div(self, other: Ratio) -> Option<Ratio> {
        if other.num.is_zero() {
            return None;
        }
        self.checked_mul(Ratio {
            num: other.den,
            den: other.num,
        })
    }

    /// The largest integer not above the value: rounding toward zero, which
    /// for a non-negative number is rounding down.
    pub fn floor(self) -> U256 {
        self.num / self.den
    }

    /// Whether the value is zero.
    pub fn is_zero(self) -> bool {
        self.num.is_zero()
    }

    /// `self` limited to `[lo, hi]` (`lo <= hi`), `None` if a comparison overflows.
    pub fn checked_clamp(self, lo: Ratio, hi: Ratio) -> Option<Ratio> {
        if self.checked_cmp(lo)? == Ordering::Less {
            Some(lo)
        } else if self.checked_cmp(hi)? == Ordering::Greater {
            Some(hi)
        } else {
            Some(self)
        }
    }

    /// Compares by cross-multiplication, `None` if a product overflows.
    pub fn checked_cmp(self, other: Ratio) -> Option<Ordering> {
        let left = self.num.checked_mul(other.den)?;
        let right = other.num.checked_mul(self.den)?;
        Some(left.cmp(&right))
    }
}

impl fmt::Debug for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == U256::ONE {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(text: &str) -> Ratio {
        Ratio::parse_decimal(text).unwrap()
    }

    #[test]
    fn decimals_are_exact_fractions_in_lowest_terms() {
        assert_eq!(r("1.2"), Ratio::new(U256::from(6), U256::from(5)).unwrap());
        assert_eq!(r("100.00"), Ratio::integer(100));
        assert_eq!(r("0"), Ratio::ZERO);
        assert_eq!(r("0.000"), Ratio::ZERO);
        assert_eq!(
            r("007.50"),
            Ratio::new(U256::from(15), U256::from(2)).unwrap()
        );
        assert_eq!(format!("{:?}", r("0.1")), "1/10");
    }

    #[test]
    fn anything_but_plain_decimals_is_refused() {
        for bad in [
            "", ".", "5.", ".5", "-1", "+1", "1e3", " 1", "1 ", "1,5", "0x10", "1.2.3", "NaN",
        ] {
            assert!(
                matches!(Ratio::parse_decimal(bad), Err(DecimalError::Syntax(_))),
                "{bad:?} parsed"
            );
        }
        let long = format!("1.{}", "0".repeat(MAX_FRACTION_DIGITS + 1));
        assert!(matches!(
            Ratio::parse_decimal(&long),
            Err(DecimalError::TooLong(_))
        ));
    }

    #[test]
    fn the_seed_booking_is_exactly_240() {
        let hnv = r("100.00")
            .checked_mul(r("2"))
            .and_then(|x| x.checked_mul(r("1.2")))
            .unwrap();
        assert_eq!(hnv, Ratio::integer(240));
        assert_eq!(hnv.floor(), U256::from(240));
    }

    #[test]
    fn floor_rounds_down_and_clamp_limits() {
        assert_eq!(r("2.999").floor(), U256::from(2));
        let (lo, hi) = (r("0.5"), r("2.0"));
        assert_eq!(r("0.1").checked_clamp(lo, hi), Some(lo));
        assert_eq!(r("7").checked_clamp(lo, hi), Some(hi));
        assert_eq!(r("1.5").checked_clamp(lo, hi), Some(r("1.5")));
        assert_eq!(r("1").checked_div(Ratio::ZERO), None);
    }

    proptest! {
        /// Parsing `whole.fraction` gives exactly (whole * 10^k + fraction) / 10^k.
        #[test]
        fn parsing_is_exact(whole in 0u64..1_000_000_000, fraction in 0u64..1_000_000_000_000_000_000, k in 0usize..=18) {
            let fraction = fraction % 10u64.pow(k as u32).max(1);
            let text = if k == 0 {
                whole.to_string()
            } else {
                format!("{whole}.{fraction:0k$}")
            };
            let expected = Ratio::new(
                U256::from(whole) * U256::from(10u64).pow(U256::from(k)) + U256::from(if k == 0 { 0 } else { fraction }),
                U256::from(10u64).pow(U256::from(k)),
            ).unwrap();
            prop_assert_eq!(Ratio::parse_decimal(&text), Ok(expected));
        }

        /// Multiplication is exact: (a/b)(c/d) = ac/bd, whatever the reduction.
        #[test]
        fn multiplication_is_exact(a in 0u64.., b in 1u64.., c in 0u64.., d in 1u64..) {
            let x = Ratio::new(U256::from(a), U256::from(b)).unwrap();
            let y = Ratio::new(U256::from(c), U256::from(d)).unwrap();
            let expected = Ratio::new(U256::from(a) * U256::from(c), U256::from(b) * U256::from(d)).unwrap();
            prop_assert_eq!(x.checked_mul(y), Some(expected));
        }

        /// The floor is the one integer q with q <= x < q + 1.
        #[test]
        fn floor_is_the_largest_integer_not_above(n in 0u128.., d in 1u128..) {
            let x = Ratio::new(U256::from(n), U256::from(d)).unwrap();
            let q = x.floor();
            prop_assert!(q * U256::from(d) <= U256::from(n));
            prop_assert!(U256::from(n) < (q + U256::ONE) * U256::from(d));
        }
    }
}
