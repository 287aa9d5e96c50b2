//! EIP-1559 fees: an estimate from `eth_feeHistory` capped by the configured
//! maximum, and the raise a stuck transaction's replacement gets.
//!
//! All arithmetic is on integer wei; nothing here is floating point.

use alloy::rpc::types::FeeHistory;

use crate::config::TxConfig;
use crate::error::ChainError;

/// Replacement fees are at least the old ones times 9/8 (+12.5%), rounded
/// up. Nodes refuse a replacement that raises either field by less than
/// 10% (geth's default price bump), so 12.5% leaves a margin.
const BUMP_NUMERATOR: u128 = 9;
const BUMP_DENOMINATOR: u128 = 8;

/// The two EIP-1559 fee fields of a transaction, in wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// `maxFeePerGas`.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas` (the tip), never above `max_fee_per_gas`.
    pub max_priority_fee_per_gas: u128,
}

/// The configured bounds fees are chosen within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeePolicy {
    /// Highest `maxFeePerGas` ever offered.
    pub max_fee_per_gas: u128,
    /// Highest tip ever offered.
    pub max_priority_fee_per_gas: u128,
    /// Lowest tip offered.
    pub min_priority_fee_per_gas: u128,
}

impl FeePolicy {
    /// The policy of a [`TxConfig`], checked for consistency.
    pub fn from_config(config: &TxConfig) -> Result<Self, ChainError> {
        let policy = Self {
            max_fee_per_gas: config.max_fee_per_gas,
            max_priority_fee_per_gas: config.max_priority_fee_per_gas,
            min_priority_fee_per_gas: config.min_priority_fee_per_gas,
        };
        if policy.min_priority_fee_per_gas > policy.max_priority_fee_per_gas {
            return Err(ChainError::Config(
                "MIN_PRIORITY_FEE_PER_GAS is above MAX_PRIORITY_FEE_PER_GAS".into(),
            ));
        }
        if policy.max_priority_fee_per_gas > policy.max_fee_per_gas {
            return Err(ChainError::Config(
                "MAX_PRIORITY_FEE_PER_GAS is above MAX_FEE_PER_GAS".into(),
            ));
        }
        Ok(policy)
    }

    /// Fees for a new transaction: the next block's base fee (the last entry
    /// of the history) doubled, so the transaction survives six full blocks
    /// of base-fee growth, plus the median tip of recent blocks clamped to
    /// the configured tip range. The fee cap is never above the maximum;
    /// when even base fee + minimum tip is above it, nothing should be sent.
    pub fn estimate(&self, history: &FeeHistory) -> Result<Fees, ChainError> {
        let base_fee = history.base_fee_per_gas.last().copied().unwrap_or(0);
        let tip = median_tip(history)
            .unwrap_or(0)
            .clamp(self.min_priority_fee_per_gas, self.max_priority_fee_per_gas);
        let needed = base_fee.saturating_add(self.min_priority_fee_per_gas);
        if needed > self.max_fee_per_gas {
            return Err(ChainError::FeeAboveMaximum {
                needed,
                max: self.max_fee_per_gas,
            });
        }
        let max_fee = base_fee
            .saturating_mul(2)
            .saturating_add(tip)
            .min(self.max_fee_per_gas);
        Ok(Fees {
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip.min(max_fee),
        })
    }

    /// Fees for the replacement of a stuck transaction sent with `previous`,
    /// given a fresh estimate `current`: each field is the larger of the
    /// current estimate and the previous value raised by 12.5% (rounded up).
    /// `None` when that would exceed the configured maximum: the
    /// transaction then stays as it is (a smaller raise would be refused by
    /// the node anyway).
    pub fn bump(&self, previous: Fees, current: Option<Fees>) -> Option<Fees> {
        let min_fee = raise(previous.max_fee_per_gas);
        let min_tip = raise(previous.max_priority_fee_per_gas);
        let (cur_fee, cur_tip) =
            current.map_or((0, 0), |c| (c.max_fee_per_gas, c.max_priority_fee_per_gas));
        let fee = min_fee.max(cur_fee);
        let tip = min_tip.max(cur_tip).min(fee);
        if fee > self.max_fee_per_gas || min_tip > self.max_priority_fee_per_gas || tip < min_tip {
            return None;
        }
        Some(Fees {
            max_fee_per_gas: fee,
            max_priority_fee_per_gas: tip.min(self.max_priority_fee_per_gas),
        })
    }
}

/// `value` times 9/8, rounded up (saturating).
fn raise(value: u128) -> u128 {
    let scaled = value.saturating_mul(BUMP_NUMERATOR);
    scaled / BUMP_DENOMINATOR + u128::from(!scaled.is_multiple_of(BUMP_DENOMINATOR))
}

/// Median over blocks of the requested tip percentile (blocks with no
/// transactions report 0 and count as such).
fn median_tip(history: &FeeHistory) -> Option<u128> {
    let mut tips: Vec<u128> = history
        .reward
        .as_ref()?
        .iter()
        .filter_map(|block| block.first().copied())
        .collect();
    if tips.is_empty() {
        return None;
    }
    tips.sort_unstable();
    Some(tips[tips.len() / 2])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GWEI: u128 = 1_000_000_000;

    fn policy() -> FeePolicy {
        FeePolicy {
            max_fee_per_gas: 100 * GWEI,
            max_priority_fee_per_gas: 5 * GWEI,
            min_priority_fee_per_gas: GWEI,
        }
    }

    fn history(base_fees: &[u128], tips: &[u128]) -> FeeHistory {
        FeeHistory {
            base_fee_per_gas: base_fees.to_vec(),
            reward: Some(tips.iter().map(|t| vec![*t]).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn estimate_doubles_the_next_base_fee_and_adds_the_median_tip() {
        let fees = policy()
            .estimate(&history(
                &[8 * GWEI, 9 * GWEI, 10 * GWEI],
                &[GWEI, 3 * GWEI, 2 * GWEI],
            ))
            .unwrap();
        assert_eq!(
            fees,
            Fees {
                max_fee_per_gas: 22 * GWEI,
                max_priority_fee_per_gas: 2 * GWEI
            }
        );
    }

    #[test]
    fn tips_are_clamped_and_fees_capped() {
        // Empty blocks: no tips at all -> the minimum tip.
        let fees = policy().estimate(&history(&[GWEI], &[0, 0])).unwrap();
        assert_eq!(fees.max_priority_fee_per_gas, GWEI);
        assert_eq!(fees.max_fee_per_gas, 3 * GWEI);
        // A tip war -> the maximum tip.
        let fees = policy().estimate(&history(&[GWEI], &[50 * GWEI])).unwrap();
        assert_eq!(fees.max_priority_fee_per_gas, 5 * GWEI);
        // A base fee near the cap -> the cap.
        let fees = policy().estimate(&history(&[60 * GWEI], &[GWEI])).unwrap();
        assert_eq!(fees.max_fee_per_gas, 100 * GWEI);
        // Above the cap -> refuse to send.
        let err = policy()
            .estimate(&history(&[100 * GWEI], &[GWEI]))
            .unwrap_err();
        assert!(matches!(err, ChainError::FeeAboveMaximum { needed, .. } if needed == 101 * GWEI));
    }

    #[test]
    fn bump_raises_both_fields_by_at_least_an_eighth() {
        let previous = Fees {
            max_fee_per_gas: 8 * GWEI,
            max_priority_fee_per_gas: 2 * GWEI,
        };
        let bumped = policy().bump(previous, None).unwrap();
        assert_eq!(bumped.max_fee_per_gas, 9 * GWEI);
        assert_eq!(bumped.max_priority_fee_per_gas, 2_250_000_000);
        // A higher fresh estimate wins.
        let fresh = Fees {
            max_fee_per_gas: 30 * GWEI,
            max_priority_fee_per_gas: 3 * GWEI,
        };
        assert_eq!(policy().bump(previous, Some(fresh)), Some(fresh));
        // Rounding is up: 7 wei * 9/8 = 7.875 -> 8.
        assert_eq!(raise(7), 8);
        assert_eq!(raise(8), 9);
    }

    #[test]
    fn bump_never_passes_the_maximum() {
        let at_cap = Fees {
            max_fee_per_gas: 95 * GWEI,
            max_priority_fee_per_gas: 2 * GWEI,
        };
        assert_eq!(policy().bump(at_cap, None), None);
        let tip_at_cap = Fees {
            max_fee_per_gas: 10 * GWEI,
            max_priority_fee_per_gas: 5 * GWEI,
        };
        assert_eq!(policy().bump(tip_at_cap, None), None);
    }

    #[test]
    fn inconsistent_bounds_are_a_config_error() {
        let mut cfg = TxConfig {
            confirmations: 1,
            max_fee_per_gas: GWEI,
            max_priority_fee_per_gas: 2 * GWEI,
            min_priority_fee_per_gas: GWEI,
            stuck_after_blocks: 3,
            lease_ttl: std::time::Duration::from_secs(30),
        };
        assert!(FeePolicy::from_config(&cfg).is_err());
        cfg.max_fee_per_gas = 10 * GWEI;
        cfg.min_priority_fee_per_gas = 3 * GWEI;
        assert!(FeePolicy::from_config(&cfg).is_err());
        cfg.min_priority_fee_per_gas = GWEI;
        assert!(FeePolicy::from_config(&cfg).is_ok());
    }

    fn any_policy() -> impl Strategy<Value = FeePolicy> {
        (1u128..1_000, 0u128..1_000, 0u128..1_000).prop_map(|(max, tip_max, tip_min)| {
            let max = max * GWEI;
            let tip_max = (tip_max * GWEI / 10).min(max);
            FeePolicy {
                max_fee_per_gas: max,
                max_priority_fee_per_gas: tip_max,
                min_priority_fee_per_gas: (tip_min * GWEI / 100).min(tip_max),
            }
        })
    }

    proptest! {
        #[test]
        fn estimates_respect_every_bound(
            p in any_policy(),
            base in 0u128..2_000 * GWEI,
            tips in proptest::collection::vec(0u128..100 * GWEI, 0..10),
        ) {
            if let Ok(f) = p.estimate(&history(&[base], &tips)) {
                prop_assert!(f.max_fee_per_gas <= p.max_fee_per_gas);
                prop_assert!(f.max_priority_fee_per_gas <= f.max_fee_per_gas);
                prop_assert!(f.max_priority_fee_per_gas <= p.max_priority_fee_per_gas);
                prop_assert!(f.max_fee_per_gas >= base);
            } else {
                prop_assert!(base + p.min_priority_fee_per_gas > p.max_fee_per_gas);
            }
        }

        #[test]
        fn bumps_raise_enough_and_stay_capped(
            p in any_policy(),
            fee in 0u128..2_000 * GWEI,
            tip_share in 0u128..=100,
            fresh in proptest::option::of((0u128..2_000 * GWEI, 0u128..100 * GWEI)),
        ) {
            let previous = Fees { max_fee_per_gas: fee, max_priority_fee_per_gas: fee * tip_share / 100 };
            let current = fresh.map(|(f, t)| Fees { max_fee_per_gas: f, max_priority_fee_per_gas: t.min(f) });
            if let Some(b) = p.bump(previous, current) {
                prop_assert!(b.max_fee_per_gas <= p.max_fee_per_gas);
                prop_assert!(b.max_priority_fee_per_gas <= b.max_fee_per_gas);
                prop_assert!(b.max_priority_fee_per_gas <= p.max_priority_fee_per_gas);
                // At least +12.5% on both fields, as integers: 8 * new >= 9 * old.
                prop_assert!(8 * b.max_fee_per_gas >= 9 * previous.max_fee_per_gas);
                prop_assert!(8 * b.max_priority_fee_per_gas >= 9 * previous.max_priority_fee_per_gas);
            }
        }
    }
}
