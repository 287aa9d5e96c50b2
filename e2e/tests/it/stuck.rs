//! Nothing stays stuck after a dead letter: chain-minter loses the chain
//! (its gateway answers 404, a refusal it does not wait out) long enough for
//! a mint and a redemption's burn to be dead-lettered after their retries;
//! when the chain is back, the stuck-transaction sweep queues them again and
//! both complete by themselves, each exactly once.

use haven_chain::contract::HAVEN;
use haven_chain::rpc::Rpc;
use haven_e2e::Pipeline;
use haven_entity::ledger;
use haven_entity::redemptions::RedemptionState;
use haven_entity::token_transactions::{TxStatus, TxType};
use serde_json::json;

use crate::redemptions::{guest_with, of_type, redeem};
use crate::{HNV, SETTLE, settled};

/// One sample of `name` with every label pair in `labels`, summed; 0 when absent.
async fn metric(p: &Pipeline, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = p.minter.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_mint_and_a_burn_dead_lettered_while_the_chain_was_gone_complete_once_it_is_back() {
    let p = Pipeline::start_behind_gateway(&[
        "--request-max-attempts",
        "2",
        "--tx-stale-after",
        "5s",
        "--tx-sweep-interval",
        "1s",
    ])
    .await;
    let gateway = p.gateway.as_ref().unwrap();
    let user = guest_with(&p, "guest_stuck", 100).await; // 200 HNV, confirmed
    let wallet = user.wallet_address.parse().unwrap();

    gateway.close();
    let booking =
        json!({"id": "booking_stuck_2", "guest_id": "guest_stuck", "total_price": 50, "nights": 1});
    assert_eq!(
        p.webhook("/webhooks/aurora/booking-created", &booking)
            .await
            .0,
        200
    );
    let (status, id) = redeem(&p, "guest_stuck", 150, "stuck_1").await;
    assert_eq!(status, 200);
    let id = id.unwrap();

    // Both requests use up their attempts and are dead-lettered.
    let deadline = tokio::time::Instant::now() + SETTLE;
    while metric(
        &p,
        "haven_amqp_consumed_total",
        &[("outcome", "dead_letter")],
    )
    .await
        < 2.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the requests were not dead-lettered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(gateway.refused() > 0);
    let open = |txs: Vec<haven_entity::token_transactions::Model>| {
        txs.iter()
            .filter(|tx| matches!(tx.status, TxStatus::Pending | TxStatus::Submitted))
            .count()
    };
    assert_eq!(
        open(of_type(&p, &user, TxType::Mint).await),
        1,
        "the new mint is stuck"
    );
    assert_eq!(
        open(of_type(&p, &user, TxType::Burn).await),
        1,
        "the burn is stuck"
    );
    p.wait_redemption(id, RedemptionState::BurnRequested, SETTLE)
        .await;

    gateway.open();
    p.wait_redemption(id, RedemptionState::Paid, SETTLE).await;
    settled(&p, "guest_stuck", 3).await;
    assert!(metric(&p, "haven_chain_sweep_requeued_total", &[]).await >= 2.0);

    // Exactly once: two mints and one burn, on chain and in the ledger.
    let mints = of_type(&p, &user, TxType::Mint).await;
    let burns = of_type(&p, &user, TxType::Burn).await;
    assert_eq!(mints.len(), 2);
    assert_eq!(burns.len(), 1);
    assert!(
        mints
            .iter()
            .chain(&burns)
            .all(|tx| tx.status == TxStatus::Confirmed)
    );
    assert_eq!(p.balance_of(wallet).await, 150 * HNV, "200 + 100 - 150");
    let rpc = Rpc::new(&p.anvil.rpc_config()).unwrap();
    let supply: alloy::primitives::U256 = rpc
        .view(p.contract, &HAVEN::totalSupplyCall {})
        .await
        .unwrap();
    assert_eq!(
        supply.to::<u128>(),
        150 * HNV,
        "minted 300, burned 150, once each"
    );
    let balance = ledger::user_balance(p.db(), user.id).await.unwrap();
    assert_eq!(
        (balance.available.get(), balance.reserved.get()),
        (i128::try_from(150 * HNV).unwrap(), 0)
    );
    assert_eq!(p.provider.payouts().len(), 1, "paid once");
    assert_eq!(metric(&p, "haven_chain_transactions_stuck", &[]).await, 0.0);
    p.stop().await;
}
