//! Confirmed means final: a mint recorded confirmed and then removed by a
//! reorganisation (anvil reverted to a snapshot taken before it) is sent
//! again with the same reference and ends minted exactly once, on chain and
//! in the ledger; it is marked final only once buried under the depth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy::providers::Provider as _;
use alloy::providers::ext::AnvilApi as _;
use haven_entity::ledger;
use haven_entity::token_transactions::{self, TxStatus};
use sea_orm::EntityTrait;

use crate::helpers::*;

async fn row(db: &sea_orm::DatabaseConnection, id: uuid::Uuid) -> token_transactions::Model {
    token_transactions::Entity::find_by_id(id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
}

async fn until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_confirmed_mint_removed_by_a_reorganisation_is_sent_again_and_minted_once() {
    let s = spawn_stack(&[]).await;
    let supply = s.total_supply().await;
    let mints = pending_mints(s.db(), "reorg", 1, |_| 7).await;
    let (request, wallet, amount) = mints[0].clone();
    let haven_messages::ChainRequest::Mint(mint) = &request else {
        panic!()
    };
    let id = mint.tx_id;
    let before = s.rpc().provider().anvil_snapshot().await.unwrap();
    let app = s
        .minter(
            &s.anvil.endpoint(),
            &[
                "--finality-depth",
                "2",
                "--finality-check-interval",
                "100ms",
            ],
        )
        .await;
    s.publish(&[request]).await;
    let db = s.db();
    until("the mint confirmed", || async move {
        row(db, id).await.status == TxStatus::Confirmed
    })
    .await;
    let first = row(db, id).await;
    assert_eq!(
        first.final_at, None,
        "not final: nothing is built on it yet"
    );
    assert_eq!(s.balance_of(wallet).await, amount);

    // The block that holds it is reorganised away, and the chain grows past it.
    assert!(s.rpc().provider().anvil_revert(before).await.unwrap());
    assert_eq!(s.balance_of(wallet).await, 0, "gone from the chain");
    s.mine(3).await;

    until("sent again and confirmed", || async move {
        let now = row(db, id).await;
        now.reorgs == 1 && now.status == TxStatus::Confirmed
    })
    .await;
    s.mine(3).await;
    until(
        "final",
        || async move { row(db, id).await.final_at.is_some() },
    )
    .await;

    let last = row(db, id).await;
    assert_ne!(last.tx_hash, first.tx_hash, "a new transaction");
    assert_eq!(s.balance_of(wallet).await, amount, "minted once");
    assert_eq!(s.total_supply().await, supply + amount);
    let user = haven_entity::users::find_by_external_id(db, "reorg-0")
        .await
        .unwrap()
        .unwrap();
    let balance = ledger::user_balance(db, user.id).await.unwrap();
    assert_eq!(
        u128::try_from(balance.available.get()).unwrap(),
        amount,
        "credited once"
    );
    assert_eq!(metric_value(&app, "haven_chain_reorged_total").await, 1.0);
    assert!(metric_value(&app, "haven_chain_finalized_total").await >= 1.0);
    app.stop().await;
    s.finish().await;
}

/// Found by the fault matrix's reorg row: a batch estimated on one state and
/// mined on another ran out of gas, which reverts with no reason, and the
/// minter called its mints failed for good (dead-lettered, rewards lost).
/// A revert that names no reason is now sent again. Made here by giving the
/// contract's address code that reverts with no data, then the real code back.
#[tokio::test]
async fn a_revert_that_names_no_reason_goes_back_to_the_queue_and_mints_once() {
    let s = spawn_stack(&[]).await;
    let supply = s.total_supply().await;
    let mints = pending_mints(s.db(), "noreason", 1, |_| 9).await;
    let (request, wallet, amount) = mints[0].clone();
    let haven_messages::ChainRequest::Mint(mint) = &request else {
        panic!()
    };
    let id = mint.tx_id;
    let provider = s.rpc().provider().clone();
    let code = provider.get_code_at(s.contract).await.unwrap();
    // PUSH1 0, PUSH1 0, REVERT: every call reverts with empty data.
    provider
        .anvil_set_code(s.contract, alloy::primitives::bytes!("60006000fd"))
        .await
        .unwrap();
    let app = s.minter(&s.anvil.endpoint(), &[]).await;
    s.publish(&[request]).await;
    // Long enough for the first attempt and its retry to meet the revert.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let db = s.db();
    assert_ne!(
        row(db, id).await.status,
        TxStatus::Failed,
        "a revert without a reason is not the request's fault"
    );
    assert!(metric_value(&app, "haven_chain_retries_total").await >= 1.0);

    provider.anvil_set_code(s.contract, code).await.unwrap();
    until("minted once the contract answers again", || async move {
        row(db, id).await.status == TxStatus::Confirmed
    })
    .await;
    assert_eq!(s.balance_of(wallet).await, amount, "minted once");
    assert_eq!(s.total_supply().await, supply + amount);
    app.stop().await;
    s.finish().await;
}
