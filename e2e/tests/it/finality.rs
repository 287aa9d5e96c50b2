//! A redemption's burn is confirmed, then a reorganisation removes it
//! before it is final: the payout waits for the burn to be final, the burn
//! is sent again with the same reference, and the guest is burned once and
//! paid once.

use std::time::Duration;

use alloy::primitives::U256;
use alloy::providers::ext::AnvilApi as _;
use haven_chain::contract::HAVEN;
use haven_chain::rpc::Rpc;
use haven_e2e::Pipeline;
use haven_entity::ledger;
use haven_entity::redemptions::RedemptionState;
use haven_entity::token_transactions::{TxStatus, TxType};

use crate::redemptions::{guest_with, of_type, redeem};
use crate::{HNV, SETTLE};

#[tokio::test]
async fn a_burn_removed_by_a_reorganisation_before_its_payout_delays_the_payout_and_never_doubles_it()
 {
    let p = Pipeline::start(
        &[],
        &[
            "--finality-depth",
            "2",
            "--finality-check-interval",
            "100ms",
        ],
    )
    .await;
    let rpc = Rpc::new(&p.anvil.rpc_config()).unwrap();
    let user = guest_with(&p, "guest_reorg", 100).await; // 200 HNV
    let wallet = user.wallet_address.parse().unwrap();
    let before_burn = rpc.provider().anvil_snapshot().await.unwrap();

    let (status, id) = redeem(&p, "guest_reorg", 150, "reorg_1").await;
    assert_eq!(status, 200);
    let id = id.unwrap();
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let burns = of_type(&p, &user, TxType::Burn).await;
        if burns.iter().any(|b| b.status == TxStatus::Confirmed) {
            assert!(burns[0].final_at.is_none());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no burn confirmed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(p.balance_of(wallet).await, 50 * HNV);
    // Confirmed but not final: no payout yet.
    tokio::time::sleep(Duration::from_secs(2)).await;
    p.wait_redemption(id, RedemptionState::BurnRequested, SETTLE)
        .await;
    assert!(
        p.provider.payouts().is_empty(),
        "no payout before the burn is final"
    );

    // The burn's block is reorganised away; the chain grows on without it.
    assert!(rpc.provider().anvil_revert(before_burn).await.unwrap());
    assert_eq!(p.balance_of(wallet).await, 200 * HNV, "the burn is gone");
    rpc.provider().anvil_mine(Some(3), None).await.unwrap();

    // Sent again, confirmed, then buried: paid once.
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let burns = of_type(&p, &user, TxType::Burn).await;
        if burns[0].reorgs == 1 && burns[0].status == TxStatus::Confirmed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the burn was not sent again: {burns:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rpc.provider().anvil_mine(Some(3), None).await.unwrap();
    p.wait_redemption(id, RedemptionState::Paid, SETTLE).await;

    let burns = of_type(&p, &user, TxType::Burn).await;
    assert_eq!(burns.len(), 1);
    assert!(burns[0].final_at.is_some());
    assert_eq!(p.balance_of(wallet).await, 50 * HNV, "burned once");
    let supply: U256 = rpc
        .view(p.contract, &HAVEN::totalSupplyCall {})
        .await
        .unwrap();
    assert_eq!(supply.to::<u128>(), 50 * HNV);
    let balance = ledger::user_balance(p.db(), user.id).await.unwrap();
    assert_eq!(
        (balance.available.get(), balance.reserved.get()),
        (i128::try_from(50 * HNV).unwrap(), 0)
    );
    assert_eq!(p.provider.payouts().len(), 1, "paid once");
    p.stop().await;
}
