//! End-to-end: signed webhooks become confirmed HNV in the guest's wallet,
//! through webhook-ingress, reward-calculator and chain-minter, and
//! redemptions are burned and paid out by redemption-payout, on a real
//! chain, database and broker with a stand-in payout provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod clawbacks;
mod finality;
mod redemptions;
mod stuck;
mod traces;

use std::time::Duration;

use haven_e2e::Pipeline;
use haven_entity::redemptions::RedemptionState;
use haven_entity::token_transactions::{self, TxStatus, TxType};
use haven_entity::{ledger, users};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

const HNV: u128 = 1_000_000_000_000_000_000;
const SETTLE: Duration = Duration::from_secs(60);

/// Waits until `user` has `n` confirmed mints and nothing open.
async fn settled(p: &Pipeline, external_id: &str, confirmed: u64) -> users::Model {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        if let Some(user) = users::find_by_external_id(p.db(), external_id)
            .await
            .unwrap()
        {
            let done = token_transactions::Entity::find()
                .filter(token_transactions::Column::UserId.eq(user.id))
                .filter(token_transactions::Column::Status.eq(TxStatus::Confirmed))
                .count(p.db())
                .await
                .unwrap();
            let open = token_transactions::Entity::find()
                .filter(token_transactions::Column::UserId.eq(user.id))
                .filter(
                    token_transactions::Column::Status
                        .is_in([TxStatus::Pending, TxStatus::Submitted]),
                )
                .count(p.db())
                .await
                .unwrap();
            if done >= confirmed && open == 0 {
                return user;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{external_id}: not settled"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn available(p: &Pipeline, user: &users::Model) -> u128 {
    let balance = ledger::user_balance(p.db(), user.id).await.unwrap();
    u128::try_from(balance.available.get()).unwrap()
}

#[tokio::test]
async fn the_seed_guest_journey_earns_340_on_chain_and_redeems_200() {
    let p = Pipeline::start(&[], &[]).await;
    let booking = json!({
        "id": "booking_journey_1",
        "guest_id": "journey_guest_1",
        "guest_email": "journey@example.com",
        "total_price": 100.0,
        "nights": 2
    });
    assert_eq!(
        p.webhook("/webhooks/aurora/booking-created", &booking)
            .await,
        (200, json!({"status": "accepted"}))
    );
    let event = json!({"id": "event_123", "attendee_id": "journey_guest_1", "name": "Wisdom Circle", "type": "wisdom_circle"});
    assert_eq!(
        p.webhook("/webhooks/tribe/event-attendance", &event).await,
        (200, json!({"status": "accepted"}))
    );

    let user = settled(&p, "journey_guest_1", 2).await;
    let wallet = user.wallet_address.parse().unwrap();
    assert_eq!(p.balance_of(wallet).await, 340 * HNV, "on chain");
    assert_eq!(available(&p, &user).await, 340 * HNV, "in the ledger");

    let redeem = json!({
        "user_id": "journey_guest_1",
        "amount": 200.0,
        "withdrawal_method": "bank_transfer",
        "idempotency_key": "redeem_journey_1"
    });
    let (status, body) = p.command("/token/redeem", &redeem).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["status"].clone(),
            body["burn_amount"].clone(),
            body["payout_amount"].clone()
        ),
        (json!("queued"), json!(200.0), json!(196.0))
    );
    assert_eq!(available(&p, &user).await, 140 * HNV, "200 reserved");

    // The tail: the whole 200 burned on chain (the 2 % fee with it), 196 paid out.
    let request_id: uuid::Uuid = body["request_id"].as_str().unwrap().parse().unwrap();
    let redemption = p
        .wait_redemption(request_id, RedemptionState::Paid, SETTLE)
        .await;
    assert_eq!(p.balance_of(wallet).await, 140 * HNV, "on chain");
    let balance = ledger::user_balance(p.db(), user.id).await.unwrap();
    assert_eq!(
        (balance.available.get(), balance.reserved.get()),
        (i128::try_from(140 * HNV).unwrap(), 0),
        "in the ledger"
    );
    let burns = token_transactions::Entity::find()
        .filter(token_transactions::Column::UserId.eq(user.id))
        .filter(token_transactions::Column::TxType.eq(TxType::Burn))
        .all(p.db())
        .await
        .unwrap();
    assert_eq!(burns.len(), 1);
    assert_eq!(
        (burns[0].status, burns[0].amount.get()),
        (TxStatus::Confirmed, i128::try_from(200 * HNV).unwrap())
    );
    let system = |account| ledger::system_balance(p.db(), account);
    assert_eq!(
        system(ledger::Account::Burned).await.unwrap().get(),
        i128::try_from(4 * HNV).unwrap(),
        "the fee stays burned"
    );
    assert_eq!(
        system(ledger::Account::Payout).await.unwrap().get(),
        i128::try_from(196 * HNV).unwrap(),
        "196 paid out"
    );
    let payouts = p.provider.payouts();
    assert_eq!(payouts.len(), 1);
    assert_eq!(payouts[0].idempotency_key, request_id.to_string());
    assert_eq!(payouts[0].request.hnv_amount, "196.0");
    assert_eq!(payouts[0].request.amount, "19.60");
    assert_eq!(
        redemption.payout_reference.as_deref(),
        Some(payouts[0].id.as_str())
    );
    p.stop().await;
}

#[tokio::test]
async fn the_same_webhook_delivered_100_times_mints_once() {
    let p = Pipeline::start(&[], &[]).await;
    let booking =
        json!({"id": "booking_retry", "guest_id": "guest_retry", "total_price": 50, "nights": 1});
    let answers = deliver_times(&p, &booking, 100).await;
    assert_eq!(
        answers
            .iter()
            .filter(|(_, b)| b["status"] == "accepted")
            .count(),
        1
    );
    assert!(answers.iter().all(|(s, _)| *s == 200));
    let user = settled(&p, "guest_retry", 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mints = token_transactions::Entity::find()
        .filter(token_transactions::Column::UserId.eq(user.id))
        .count(p.db())
        .await
        .unwrap();
    assert_eq!(mints, 1);
    assert_eq!(
        p.balance_of(user.wallet_address.parse().unwrap()).await,
        100 * HNV
    );
    p.stop().await;
}

async fn deliver_times(
    p: &Pipeline,
    payload: &serde_json::Value,
    n: usize,
) -> Vec<(u16, serde_json::Value)> {
    let mut set = Vec::with_capacity(n);
    for _ in 0..n {
        set.push(p.webhook("/webhooks/aurora/booking-created", payload));
    }
    let mut out = Vec::with_capacity(n);
    for f in set {
        out.push(f.await);
    }
    out
}

#[tokio::test]
async fn a_booking_cancelled_after_its_mint_is_burned_back_and_before_it_is_never_minted() {
    let p = Pipeline::start(&[], &[]).await;
    // After: minted, then cancelled -> a reversal burn.
    let booking =
        json!({"id": "booking_after", "guest_id": "guest_cancel", "total_price": 100, "nights": 1});
    p.webhook("/webhooks/aurora/booking-created", &booking)
        .await;
    let user = settled(&p, "guest_cancel", 1).await;
    let wallet = user.wallet_address.parse().unwrap();
    assert_eq!(p.balance_of(wallet).await, 200 * HNV);
    let cancel = json!({"id": "booking_after", "guest_id": "guest_cancel", "cancellation_reason": "guest_requested"});
    assert_eq!(
        p.webhook("/webhooks/aurora/booking-cancelled", &cancel)
            .await
            .0,
        200
    );
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let burned = token_transactions::Entity::find()
            .filter(token_transactions::Column::UserId.eq(user.id))
            .filter(token_transactions::Column::TxType.eq(TxType::Burn))
            .filter(token_transactions::Column::Status.eq(TxStatus::Confirmed))
            .count(p.db())
            .await
            .unwrap();
        if burned == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no reversal burn");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(p.balance_of(wallet).await, 0);
    assert_eq!(available(&p, &user).await, 0);

    // Before: the cancellation arrives first; the booking then earns nothing.
    let cancel = json!({"id": "booking_before", "guest_id": "guest_cancel", "cancellation_reason": "guest_requested"});
    assert_eq!(
        p.webhook("/webhooks/aurora/booking-cancelled", &cancel)
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let booking = json!({"id": "booking_before", "guest_id": "guest_cancel", "total_price": 100, "nights": 1});
    assert_eq!(
        p.webhook("/webhooks/aurora/booking-created", &booking)
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mints = token_transactions::Entity::find()
        .filter(token_transactions::Column::UserId.eq(user.id))
        .filter(token_transactions::Column::TxType.eq(TxType::Mint))
        .count(p.db())
        .await
        .unwrap();
    assert_eq!(mints, 1, "only the first booking was ever minted");
    assert_eq!(p.balance_of(wallet).await, 0);
    p.stop().await;
}
