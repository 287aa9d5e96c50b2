//! Redemptions end to end: earned through webhooks, redeemed through the
//! API, burned on chain and paid out through the stand-in provider, with
//! the provider failing on demand. The chain (`balanceOf`), the ledger and
//! the provider agree at the end.

use haven_e2e::Pipeline;
use haven_entity::ledger::{self, Account};
use haven_entity::redemptions::RedemptionState;
use haven_entity::token_transactions::{self, TxStatus, TxType};
use haven_entity::users;
use redemption_payout::provider::stand_in::Reply;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::{HNV, SETTLE, available, settled};

/// A guest who earned `2 x price` HNV for one booking, confirmed on chain.
pub(crate) async fn guest_with(p: &Pipeline, guest: &str, price: u32) -> users::Model {
    let booking = json!({"id": format!("booking_{guest}"), "guest_id": guest, "total_price": price, "nights": 1});
    assert_eq!(
        p.webhook("/webhooks/aurora/booking-created", &booking)
            .await
            .0,
        200
    );
    let user = settled(p, guest, 1).await;
    assert_eq!(available(p, &user).await, 2 * u128::from(price) * HNV);
    user
}

/// POSTs a redemption; returns the status and, when queued, the request id.
pub(crate) async fn redeem(
    p: &Pipeline,
    guest: &str,
    amount: u32,
    key: &str,
) -> (u16, Option<Uuid>) {
    let body = json!({
        "user_id": guest,
        "amount": amount,
        "withdrawal_method": "paypal",
        "idempotency_key": key
    });
    let (status, answer) = p.command("/token/redeem", &body).await;
    let id = answer["request_id"].as_str().map(|id| id.parse().unwrap());
    (status, id)
}

pub(crate) async fn of_type(
    p: &Pipeline,
    user: &users::Model,
    tx_type: TxType,
) -> Vec<token_transactions::Model> {
    token_transactions::Entity::find()
        .filter(token_transactions::Column::UserId.eq(user.id))
        .filter(token_transactions::Column::TxType.eq(tx_type))
        .all(p.db())
        .await
        .unwrap()
}

async fn system(p: &Pipeline, account: Account) -> i128 {
    ledger::system_balance(p.db(), account).await.unwrap().get()
}

fn wei(hnv: u128) -> i128 {
    i128::try_from(hnv * HNV).unwrap()
}

/// 50 concurrent redemptions of a tenth of a balance: exactly 10 queued and
/// paid, 40 refused with 400, never a 503.
async fn fifty_concurrent_redemptions_of_a_tenth(p: Pipeline) {
    let user = guest_with(&p, "guest_fifty", 500).await; // 1,000 HNV
    let wallet = user.wallet_address.parse().unwrap();

    let keys: Vec<String> = (0..50).map(|i| format!("fifty_{i}")).collect();
    let answers =
        futures::future::join_all(keys.iter().map(|key| redeem(&p, "guest_fifty", 100, key))).await;
    let queued: Vec<Uuid> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, id)| id.expect("a queued redemption has a request_id"))
        .collect();
    let refused = answers.iter().filter(|(s, _)| *s == 400).count();
    assert_eq!((queued.len(), refused), (10, 40), "{answers:?}");

    for id in &queued {
        p.wait_redemption(*id, RedemptionState::Paid, SETTLE).await;
    }
    assert_eq!(p.balance_of(wallet).await, 0, "on chain");
    let balance = ledger::user_balance(p.db(), user.id).await.unwrap();
    assert_eq!((balance.available.get(), balance.reserved.get()), (0, 0));
    let burns = of_type(&p, &user, TxType::Burn).await;
    assert_eq!(burns.len(), 10);
    assert!(
        burns
            .iter()
            .all(|b| b.status == TxStatus::Confirmed && b.amount.get() == wei(100))
    );
    let payouts = p.provider.payouts();
    assert_eq!(payouts.len(), 10);
    assert!(
        payouts
            .iter()
            .all(|po| po.request.hnv_amount == "98.0" && po.request.amount == "9.80")
    );
    let keys: std::collections::BTreeSet<String> = payouts
        .iter()
        .map(|po| po.idempotency_key.clone())
        .collect();
    let expected: std::collections::BTreeSet<String> = queued.iter().map(Uuid::to_string).collect();
    assert_eq!(keys, expected, "one payout per redemption");
    assert_eq!(system(&p, Account::Payout).await, wei(980));
    assert_eq!(system(&p, Account::Burned).await, wei(20));
    p.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_redemptions_of_a_tenth_pay_ten_and_refuse_forty() {
    fifty_concurrent_redemptions_of_a_tenth(Pipeline::start(&[], &[]).await).await;
}

/// On the embedded default (one SQLite file, five pools as five processes):
/// deferred write transactions failed their lock upgrade at once with
/// SQLITE_BUSY, and some redemptions were answered 503.
#[tokio::test]
async fn on_sqlite_fifty_concurrent_redemptions_of_a_tenth_pay_ten_and_refuse_forty() {
    fifty_concurrent_redemptions_of_a_tenth(Pipeline::start_sqlite().await).await;
}

#[tokio::test]
async fn the_provider_answering_500_twice_then_200_pays_exactly_once() {
    let p = Pipeline::start(&[], &[]).await;
    p.provider
        .script([Reply::Fail(500), Reply::Fail(500)], Reply::Accept);
    let user = guest_with(&p, "guest_flaky", 100).await; // 200 HNV
    let (status, id) = redeem(&p, "guest_flaky", 150, "flaky_1").await;
    assert_eq!(status, 200);
    let id = id.unwrap();
    p.wait_redemption(id, RedemptionState::Paid, SETTLE).await;

    assert_eq!(p.provider.attempts(&id.to_string()), 3);
    assert_eq!(p.provider.payouts().len(), 1);
    assert_eq!(
        p.balance_of(user.wallet_address.parse().unwrap()).await,
        50 * HNV
    );
    assert_eq!(available(&p, &user).await, 50 * HNV);
    assert_eq!(of_type(&p, &user, TxType::Burn).await.len(), 1);
    p.stop().await;
}

#[tokio::test]
async fn the_provider_refusing_for_good_refunds_the_burn_with_a_mint() {
    let p = Pipeline::start(&[], &[]).await;
    p.provider.script([], Reply::Fail(422));
    let user = guest_with(&p, "guest_refused", 100).await; // 200 HNV
    let wallet = user.wallet_address.parse().unwrap();
    let (status, id) = redeem(&p, "guest_refused", 150, "refused_1").await;
    assert_eq!(status, 200);
    let id = id.unwrap();
    p.wait_redemption(id, RedemptionState::Refunded, SETTLE)
        .await;

    let burns = of_type(&p, &user, TxType::Burn).await;
    assert_eq!(burns.len(), 1, "one burn");
    assert_eq!(burns[0].status, TxStatus::Confirmed);
    let refunds: Vec<_> = of_type(&p, &user, TxType::Mint)
        .await
        .into_iter()
        .filter(|tx| tx.reason == "refund")
        .collect();
    assert_eq!(refunds.len(), 1, "one refund mint");
    assert_eq!(refunds[0].status, TxStatus::Confirmed);
    assert_eq!(refunds[0].amount.get(), wei(150));
    assert_eq!(
        p.balance_of(wallet).await,
        200 * HNV,
        "balance restored on chain"
    );
    let balance = ledger::user_balance(p.db(), user.id).await.unwrap();
    assert_eq!(
        (balance.available.get(), balance.reserved.get()),
        (wei(200), 0),
        "and in the ledger"
    );
    assert!(p.provider.payouts().is_empty());
    assert_eq!(system(&p, Account::Payout).await, 0);
    p.stop().await;
}
