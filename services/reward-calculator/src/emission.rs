//! The emission budget: how much may be granted per period, and which
//! period it is.
//!
//! The budget is, in order:
//! 1. the contract's `monthlyMintTarget()`, when `RPC_URL` and
//!    `CONTRACT_ADDRESS` are both set and the target is non-zero (zero means
//!    governance has set none). It is read in the background at start and
//!    every `EMISSION_TARGET_REFRESH`; until the first read succeeds, and
//!    whenever the chain cannot be reached, the last value read stays in force;
//! 2. otherwise `MONTHLY_EMISSION_TARGET_HNV`;
//! 3. otherwise none: nothing is ever held.
//!
//! What counts against it is every reward granted in the period (by the
//! time of the grant, not of the partner event), in `emission_periods`. A
//! cancelled or reversed reward does not give its amount back: the budget
//! paces emission, it is not a balance. While there is no budget nothing is
//! counted (grants then never wait on the period's row), so a budget that
//! appears mid-period counts only what is granted from then on.

use std::sync::RwLock;
use std::time::Duration;

use alloy_primitives::U256;
use chrono::{DateTime, Utc};
use haven_chain::config::RpcConfig;
use haven_chain::contract::HAVEN;
use haven_chain::rpc::Rpc;
use haven_common::config::Redacted;
use haven_common::money::Wei;
use haven_common::shutdown::CancellationToken;
use haven_common::telemetry::ErrorChain;

/// Timeout of one read of the target.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Transport retries of one read (the next refresh retries anyway).
const RPC_RETRIES: usize = 2;

/// How long an emission budget period is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmissionPeriod {
    /// Calendar months in UTC, keyed `YYYY-MM`: the contract's "monthly".
    Month,
    /// Fixed periods aligned on the Unix epoch, keyed `<ms>ms#<index>`;
    /// lets tests see a period end in seconds.
    Every(Duration),
}

impl EmissionPeriod {
    /// Parses `month` or a duration (`10s`, `500ms`, ...).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("month") {
            return Ok(Self::Month);
        }
        let duration =
            haven_common::config::parse_duration(s).map_err(|err| format!("{err}; or `month`"))?;
        if duration.as_millis() == 0 {
            return Err(format!(
                "`{s}` must be `month` or longer than a millisecond"
            ));
        }
        Ok(Self::Every(duration))
    }

    /// The key of the period `at` falls in.
    pub fn key(&self, at: DateTime<Utc>) -> String {
        match self {
            Self::Month => at.format("%Y-%m").to_string(),
            Self::Every(length) => {
                // At least 1 ms (checked by `parse`); clamped for a hand-built value.
                let ms = i64::try_from(length.as_millis()).unwrap_or(i64::MAX).max(1);
                format!("{ms}ms#{}", at.timestamp_millis().div_euclid(ms))
            }
        }
    }
}

/// The budget in force, shared by the grant path and the refresh task.
#[derive(Debug)]
pub struct Emission {
    period: EmissionPeriod,
    setting: Option<Wei>,
    contract: RwLock<Option<Wei>>,
}

impl Emission {
    /// A budget of `setting` (`MONTHLY_EMISSION_TARGET_HNV`) per `period`
    /// until the contract's target is read.
    pub fn new(period: EmissionPeriod, setting: Option<Wei>) -> Self {
        Self {
            period,
            setting,
            contract: RwLock::new(None),
        }
    }

    /// The key of the current period.
    pub fn current_period(&self) -> String {
        self.period.key(Utc::now())
    }

    /// The budget per period, in wei; `None` when there is no limit.
    pub fn budget(&self) -> Option<haven_entity::SignedWei> {
        let contract = *self.contract.read().unwrap_or_else(|e| e.into_inner());
        contract
            .or(self.setting)
            // Never above the supply cap, so it always fits the entity's i128.
            .map(|wei| {
                haven_entity::SignedWei::new(wei.as_wei().min(Wei::SUPPLY_CAP.as_wei()) as i128)
            })
    }

    /// Records the contract's target: zero means none is set.
    pub fn set_contract_target(&self, target: U256) {
        let target =
            (!target.is_zero()).then(|| Wei::from_wei(u128::try_from(target).unwrap_or(u128::MAX)));
        *self.contract.write().unwrap_or_else(|e| e.into_inner()) = target;
    }
}

/// How the contract is read: views only, so no chain id is checked.
pub fn rpc_config(rpc_url: Redacted<String>) -> RpcConfig {
    RpcConfig {
        rpc_url,
        // Not checked for a view call that only reads a number.
        chain_id: 0,
        rpc_timeout: RPC_TIMEOUT,
        rpc_retries: RPC_RETRIES,
        poll_interval: Duration::from_secs(1),
    }
}

/// Reads `monthlyMintTarget()` from `contract` now and every `every` until
/// `shutdown`. A failed read keeps the last value and logs a warning.
pub async fn refresh_contract_target(
    emission: std::sync::Arc<Emission>,
    rpc_url: Redacted<String>,
    contract: alloy_primitives::Address,
    every: Duration,
    shutdown: CancellationToken,
) {
    let config = rpc_config(rpc_url);
    let rpc = match Rpc::new(&config) {
        Ok(rpc) => rpc,
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "cannot read the monthly mint target; using MONTHLY_EMISSION_TARGET_HNV");
            return;
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match rpc.view(contract, &HAVEN::monthlyMintTargetCall {}).await {
            Ok(target) => {
                emission.set_contract_target(target);
                tracing::debug!(%target, %contract, "monthly mint target read from the contract");
            }
            Err(err) => tracing::warn!(
                error = %ErrorChain(&err),
                %contract,
                "cannot read the monthly mint target; keeping the last one"
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn periods_are_calendar_months_or_epoch_aligned_slices() {
        let at = Utc.with_ymd_and_hms(2025, 11, 30, 23, 59, 59).unwrap();
        assert_eq!(EmissionPeriod::parse("month").unwrap().key(at), "2025-11");
        assert_eq!(
            EmissionPeriod::Month.key(at + chrono::Duration::seconds(1)),
            "2025-12"
        );
        let every = EmissionPeriod::parse("10s").unwrap();
        assert_eq!(every, EmissionPeriod::Every(Duration::from_secs(10)));
        assert_eq!(every.key(Utc.timestamp_opt(25, 0).unwrap()), "10000ms#2");
        assert!(EmissionPeriod::parse("0s").is_err());
        assert!(EmissionPeriod::parse("weekly").is_err());
    }

    #[test]
    fn the_contract_target_wins_unless_it_is_zero() {
        let hnv = |n| Wei::from_hnv(n).unwrap();
        let emission = Emission::new(EmissionPeriod::Month, Some(hnv(100)));
        assert_eq!(
            emission.budget(),
            Some(haven_entity::SignedWei::from_hnv(100).unwrap())
        );
        emission.set_contract_target(U256::from(hnv(7).as_wei()));
        assert_eq!(
            emission.budget(),
            Some(haven_entity::SignedWei::from_hnv(7).unwrap())
        );
        emission.set_contract_target(U256::ZERO);
        assert_eq!(
            emission.budget(),
            Some(haven_entity::SignedWei::from_hnv(100).unwrap())
        );
        assert_eq!(Emission::new(EmissionPeriod::Month, None).budget(), None);
    }
}
