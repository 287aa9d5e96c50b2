//! The monthly mint target changes only after the timelock delay.

use alloy::primitives::U256;
use alloy::providers::ext::AnvilApi;
use haven_chain::contract::{HAVEN, HAVEN::HAVENErrors};

use crate::helpers::{Chain, hnv, mined, reverted};

#[tokio::test]
async fn a_proposed_target_takes_effect_only_after_the_delay() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let g = chain.governor;
    let delay: u64 = t.MONTHLY_TARGET_DELAY().call().await.unwrap().to();
    assert_eq!(delay, 2 * 24 * 3600);

    let error = reverted(t.executeMonthlyMintTarget().from(g)).await;
    assert!(
        matches!(error, HAVENErrors::NoPendingTarget(_)),
        "{error:?}"
    );

    let receipt = mined(t.proposeMonthlyMintTarget(hnv(5_000_000)).from(g)).await;
    let proposed = receipt
        .decoded_log::<HAVEN::MonthlyMintTargetProposed>()
        .expect("proposal event")
        .data;
    let eta = proposed.eta;
    assert_eq!(proposed.target, hnv(5_000_000));
    assert_eq!(
        t.pendingMonthlyMintTarget().call().await.unwrap(),
        hnv(5_000_000)
    );
    assert_eq!(t.pendingMonthlyMintTargetEta().call().await.unwrap(), eta);

    let too_early = |error: HAVENErrors| match error {
        HAVENErrors::TimelockNotElapsed(e) => assert_eq!(e.eta, eta),
        other => panic!("expected TimelockNotElapsed, got {other:?}"),
    };
    too_early(reverted(t.executeMonthlyMintTarget().from(g)).await);

    // An hour short of the delay (a margin no slow test run can eat): still locked.
    chain
        .provider
        .anvil_increase_time(delay - 3600)
        .await
        .unwrap();
    chain.provider.anvil_mine(Some(1), None).await.unwrap();
    too_early(reverted(t.executeMonthlyMintTarget().from(g)).await);
    assert_eq!(t.monthlyMintTarget().call().await.unwrap(), U256::ZERO);

    chain.provider.anvil_increase_time(3600).await.unwrap();
    let receipt = mined(t.executeMonthlyMintTarget().from(g)).await;
    let changed = receipt
        .decoded_log::<HAVEN::MonthlyMintTargetChanged>()
        .expect("change event")
        .data;
    assert_eq!(
        (changed.previousTarget, changed.newTarget),
        (U256::ZERO, hnv(5_000_000))
    );
    assert_eq!(t.monthlyMintTarget().call().await.unwrap(), hnv(5_000_000));
    let stats = t.getEmissionStats().call().await.unwrap();
    assert_eq!(stats.monthlyTarget, hnv(5_000_000));
    assert_eq!(
        t.pendingMonthlyMintTargetEta().call().await.unwrap(),
        U256::ZERO
    );

    // Executed once: nothing left to execute.
    let error = reverted(t.executeMonthlyMintTarget().from(g)).await;
    assert!(
        matches!(error, HAVENErrors::NoPendingTarget(_)),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_cancelled_proposal_cannot_be_executed() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let g = chain.governor;
    mined(t.proposeMonthlyMintTarget(hnv(1)).from(g)).await;
    mined(t.cancelMonthlyMintTarget().from(g)).await;
    chain
        .provider
        .anvil_increase_time(3 * 24 * 3600)
        .await
        .unwrap();
    let error = reverted(t.executeMonthlyMintTarget().from(g)).await;
    assert!(
        matches!(error, HAVENErrors::NoPendingTarget(_)),
        "{error:?}"
    );
    assert_eq!(t.monthlyMintTarget().call().await.unwrap(), U256::ZERO);
}

#[tokio::test]
async fn a_new_proposal_restarts_the_delay() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let g = chain.governor;
    mined(t.proposeMonthlyMintTarget(hnv(1)).from(g)).await;
    chain
        .provider
        .anvil_increase_time(2 * 24 * 3600)
        .await
        .unwrap();
    // Replacing the proposal just before it matures must not let the new
    // value skip the notice period.
    mined(t.proposeMonthlyMintTarget(hnv(2)).from(g)).await;
    let error = reverted(t.executeMonthlyMintTarget().from(g)).await;
    assert!(
        matches!(error, HAVENErrors::TimelockNotElapsed(_)),
        "{error:?}"
    );
}
