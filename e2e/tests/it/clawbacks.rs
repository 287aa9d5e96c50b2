//! A booking cancelled after its reward was spent: what can still be burned
//! is burned, the rest is owed by the guest (a clawback, shown in
//! `/analytics/user`), and it is withheld from the guest's next rewards.
//! The chain (`balanceOf`, `totalSupply`), the ledger and the clawback
//! account agree at every end.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use haven_chain::contract::HAVEN;
use haven_chain::rpc::Rpc;
use haven_e2e::Pipeline;
use haven_entity::redemptions::RedemptionState;
use haven_entity::token_transactions::{TxStatus, TxType};
use haven_entity::{clawbacks, ledger, users};
use serde_json::json;

use crate::redemptions::{guest_with, of_type, redeem};
use crate::{HNV, SETTLE, settled};

async fn cancel(p: &Pipeline, guest: &str) {
    let cancel = json!({"id": format!("booking_{guest}"), "guest_id": guest, "cancellation_reason": "guest_requested"});
    assert_eq!(
        p.webhook("/webhooks/aurora/booking-cancelled", &cancel)
            .await
            .0,
        200
    );
}

/// Waits until `user` owes exactly `hnv`.
async fn owes(p: &Pipeline, user: &users::Model, hnv: u128) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let owed = clawbacks::outstanding(p.db(), user.id).await.unwrap().get();
        if owed == i128::try_from(hnv * HNV).unwrap() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} owes {owed} wei, not {hnv} HNV",
            user.external_id
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn total_supply(p: &Pipeline) -> u128 {
    let rpc = Rpc::new(&p.anvil.rpc_config()).unwrap();
    let supply: U256 = rpc
        .view(p.contract, &HAVEN::totalSupplyCall {})
        .await
        .unwrap();
    supply.to::<u128>()
}

async fn ledger_of(p: &Pipeline, user: &users::Model) -> (i128, i128) {
    let balance = ledger::user_balance(p.db(), user.id).await.unwrap();
    (balance.available.get(), balance.reserved.get())
}

/// `/analytics/user/{guest}` shows `clawback_outstanding` as `expected`.
async fn assert_clawback_shown(
    read_api: &haven_common::testing::app::TestApp<read_api::Error>,
    guest: &str,
    expected: &str,
) {
    let analytics: serde_json::Value = read_api
        .get(&format!("/analytics/user/{guest}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        analytics["clawback_outstanding"].to_string(),
        expected,
        "{analytics}"
    );
}

fn wei(hnv: u128) -> i128 {
    i128::try_from(hnv * HNV).unwrap()
}

#[tokio::test]
async fn a_booking_cancelled_after_its_tokens_were_paid_out_is_owed_and_withheld_from_the_next_reward()
 {
    let p = Pipeline::start(&[], &[]).await;
    let read_api = p.start_read_api(&[]).await;
    let user = guest_with(&p, "guest_claw", 100).await; // 200 HNV
    let wallet: Address = user.wallet_address.parse().unwrap();
    let (status, id) = redeem(&p, "guest_claw", 200, "claw_1").await;
    assert_eq!(status, 200);
    p.wait_redemption(id.unwrap(), RedemptionState::Paid, SETTLE)
        .await;

    // Nothing left to burn: the whole reward is owed, no reversal burn.
    cancel(&p, "guest_claw").await;
    owes(&p, &user, 200).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let burns = of_type(&p, &user, TxType::Burn).await;
    assert_eq!(burns.len(), 1, "the redemption's burn only: {burns:?}");
    assert_clawback_shown(&read_api, "guest_claw", "200.0").await;

    // The next booking earns 300: 200 settle the debt, 100 are minted.
    let booking =
        json!({"id": "booking_claw_2", "guest_id": "guest_claw", "total_price": 150, "nights": 1});
    assert_eq!(
        p.webhook("/webhooks/aurora/booking-created", &booking)
            .await
            .0,
        200
    );
    settled(&p, "guest_claw", 3).await; // two mints and the burn
    owes(&p, &user, 0).await;
    let mints = of_type(&p, &user, TxType::Mint).await;
    assert_eq!(mints.len(), 2);
    assert!(mints.iter().all(|m| m.status == TxStatus::Confirmed));
    assert!(
        mints.iter().any(|m| m.amount.get() == wei(100)),
        "{mints:?}"
    );
    assert_eq!(p.balance_of(wallet).await, 100 * HNV);
    assert_eq!(ledger_of(&p, &user).await, (wei(100), 0));
    assert_eq!(
        total_supply(&p).await,
        100 * HNV,
        "200 + 100 minted, 200 burned"
    );
    assert_clawback_shown(&read_api, "guest_claw", "0.0").await;
    assert_eq!(p.provider.payouts().len(), 1);
    read_api.stop().await;
    p.stop().await;
}

/// Six guests each earn 200, redeem 150 while chain-minter cannot reach the
/// chain (the redemption's tokens stay reserved), and cancel the booking.
/// Before, the reversal queued a burn of all 200: on chain it burned the
/// reserved tokens too, then recording it looped for ever on a ledger that
/// had only 50 available, holding one of chain-minter's two in-flight slots
/// each. Now the 50 still available are reserved and burned, 150 are owed,
/// every redemption is paid, and minting goes on.
#[tokio::test]
async fn cancellations_while_redemptions_of_the_same_tokens_are_reserved_burn_what_is_left_and_never_block_minting()
 {
    let p = Pipeline::start_behind_gateway(&["--max-in-flight", "2"]).await;
    let gateway = p.gateway.as_ref().unwrap();
    let guests: Vec<String> = (0..6).map(|i| format!("guest_held_{i}")).collect();
    let mut users = Vec::new();
    for guest in &guests {
        users.push(guest_with(&p, guest, 100).await);
    }
    let supply_before = total_supply(&p).await;

    gateway.close();
    let mut redemptions = Vec::new();
    for guest in &guests {
        let (status, id) = redeem(&p, guest, 150, &format!("{guest}_r")).await;
        assert_eq!(status, 200);
        redemptions.push(id.unwrap());
    }
    for (guest, user) in guests.iter().zip(&users) {
        cancel(&p, guest).await;
        owes(&p, user, 150).await;
    }
    for id in &redemptions {
        p.wait_redemption(*id, RedemptionState::BurnRequested, SETTLE)
            .await;
    }
    gateway.open();

    for id in &redemptions {
        p.wait_redemption(*id, RedemptionState::Paid, SETTLE).await;
    }
    for (guest, user) in guests.iter().zip(&users) {
        settled(&p, guest, 3).await; // the mint, the redemption's burn, the reversal's
        let burns = of_type(&p, user, TxType::Burn).await;
        let mut amounts: Vec<i128> = burns.iter().map(|b| b.amount.get()).collect();
        amounts.sort_unstable();
        assert_eq!(amounts, [wei(50), wei(150)], "{guest}");
        assert_eq!(p.balance_of(user.wallet_address.parse().unwrap()).await, 0);
        assert_eq!(ledger_of(&p, user).await, (0, 0));
    }
    assert_eq!(total_supply(&p).await, supply_before - 6 * 200 * HNV);
    assert_eq!(p.provider.payouts().len(), 6);

    // Minting goes on: a new guest's booking is confirmed.
    let fresh = guest_with(&p, "guest_after_claws", 100).await;
    assert_eq!(
        p.balance_of(fresh.wallet_address.parse().unwrap()).await,
        200 * HNV
    );
    p.stop().await;
}
