//! Mints and burns on a real anvil: batching, exactly once, ledger, failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use haven_common::testing::amqp::get_one;
use haven_entity::ledger;
use haven_entity::token_transactions::{self, TxStatus};
use haven_messages::{ChainEvent, Envelope, names};

use crate::helpers::*;

const SETTLE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn mints_are_batched_confirmed_once_and_recorded_in_the_ledger() {
    let s = spawn_app().await;
    let mints = pending_mints(s.db(), "batch", 150, |i| 1 + i as u128 % 7).await;
    let requests: Vec<_> = mints.iter().map(|(r, _, _)| r.clone()).collect();
    s.publish(&requests).await;
    // The same requests again (a partner retry upstream, a redelivery): no effect.
    s.publish(&requests[..20]).await;
    wait_settled(s.db(), SETTLE).await;

    assert_eq!(count_status(s.db(), TxStatus::Confirmed).await, 150);
    for (request, wallet, amount) in &mints {
        assert_eq!(s.balance_of(*wallet).await, *amount, "on chain, once");
        let haven_messages::ChainRequest::Mint(m) = request else {
            panic!()
        };
        let tx = token_transactions::Entity::find_by_id_(s.db(), m.tx_id).await;
        let balance = ledger::user_balance(s.db(), tx.user_id).await.unwrap();
        assert_eq!(
            u128::try_from(balance.available.get()).unwrap(),
            *amount,
            "in the ledger"
        );
        assert!(tx.tx_hash.is_some() && tx.block_number.is_some() && tx.confirmed_at.is_some());
    }
    // Coalesced: far fewer transactions than requests.
    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    let batches: f64 = metrics
        .lines()
        .find(|l| l.starts_with("haven_chain_batch_size_count"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(batches <= 20.0, "150 mints in {batches} transactions");

    // A reward's mint is announced to no one: nothing on chain-events.
    let connection = s.deps.amqp.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = s.deps.amqp.topology().work_queue(names::CHAIN_EVENTS.name);
    let mut confirmed = 0;
    while let Some(m) = get_one(&channel, &queue, Duration::from_secs(3)).await {
        if let ChainEvent::Confirmed(_) = Envelope::<ChainEvent>::decode(&m.delivery.data)
            .unwrap()
            .payload
        {
            confirmed += 1;
        }
    }
    assert_eq!(confirmed, 0, "reward mints announced on chain-events");
    s.finish().await;
}

#[tokio::test]
async fn a_request_that_can_never_succeed_is_failed_alone_and_the_rest_of_its_batch_mints() {
    let s = spawn_app().await;
    // The middle one asks for more than the supply cap: its batch reverts,
    // is split, and only it fails.
    let mints = pending_mints(
        s.db(),
        "split",
        9,
        |i| if i == 4 { 2_000_000_000 } else { 10 },
    )
    .await;
    let requests: Vec<_> = mints.iter().map(|(r, _, _)| r.clone()).collect();
    s.publish(&requests).await;
    wait_settled(s.db(), SETTLE).await;
    assert_eq!(count_status(s.db(), TxStatus::Confirmed).await, 8);
    assert_eq!(count_status(s.db(), TxStatus::Failed).await, 1);
    for (i, (_, wallet, amount)) in mints.iter().enumerate() {
        let expected = if i == 4 { 0 } else { *amount };
        assert_eq!(s.balance_of(*wallet).await, expected);
    }
    let connection = s.deps.amqp.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    let dead = s
        .deps
        .amqp
        .topology()
        .dead_queue(names::CHAIN_REQUESTS.name);
    let parked = get_one(&channel, &dead, Duration::from_secs(10)).await;
    assert!(parked.is_some(), "the impossible request is dead-lettered");
    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("haven_chain_transactions_total")
                && l.contains("status=\"failed\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    s.finish().await;
}

#[tokio::test]
async fn cancelled_mints_are_skipped_and_burns_take_tokens_back_once() {
    let s = spawn_app().await;
    let mints = pending_mints(s.db(), "burn", 2, |_| 50).await;
    // The second is withdrawn before chain-minter sees it.
    let haven_messages::ChainRequest::Mint(second) = &mints[1].0 else {
        panic!()
    };
    {
        use sea_orm::{ActiveModelTrait, ActiveValue::Set};
        let row = token_transactions::Entity::find_by_id_(s.db(), second.tx_id).await;
        let mut row: token_transactions::ActiveModel = row.into();
        row.status = Set(TxStatus::Cancelled);
        row.update(s.db()).await.unwrap();
    }
    s.publish(&[mints[0].0.clone(), mints[1].0.clone()]).await;
    wait_settled(s.db(), SETTLE).await;
    assert_eq!(s.balance_of(mints[0].1).await, 50 * HNV);
    assert_eq!(s.balance_of(mints[1].1).await, 0, "cancelled: never sent");

    // A reversal burn of 20, delivered twice.
    let burn = pending_burn(s.db(), "burn-0", 20 * HNV, "reversal").await;
    s.publish(&[burn.clone(), burn]).await;
    wait_settled(s.db(), SETTLE).await;
    assert_eq!(s.balance_of(mints[0].1).await, 30 * HNV);
    let user = haven_entity::users::find_by_external_id(s.db(), "burn-0")
        .await
        .unwrap()
        .unwrap();
    let balance = ledger::user_balance(s.db(), user.id).await.unwrap();
    assert_eq!(u128::try_from(balance.available.get()).unwrap(), 30 * HNV);
    s.finish().await;
}

/// `find_by_id` that unwraps, for brevity.
trait FindById {
    async fn find_by_id_(
        db: &sea_orm::DatabaseConnection,
        id: uuid::Uuid,
    ) -> token_transactions::Model;
}

impl FindById for token_transactions::Entity {
    async fn find_by_id_(
        db: &sea_orm::DatabaseConnection,
        id: uuid::Uuid,
    ) -> token_transactions::Model {
        use sea_orm::EntityTrait;
        token_transactions::Entity::find_by_id(id)
            .one(db)
            .await
            .unwrap()
            .unwrap()
    }
}

/// A reversal burn the chain refuses (the wallet does not hold what the
/// ledger says) fails alone: its reservation goes back to the user and its
/// amount is owed in the user's clawback account, never dropped silently.
#[tokio::test]
async fn a_reversal_burn_that_can_never_succeed_gives_its_reservation_back_and_is_owed() {
    use haven_entity::ledger::{Account, Movement};
    use haven_entity::ledger_movements::MovementKind;
    use sea_orm::TransactionTrait;

    let s = spawn_app().await;
    // A user the ledger credits with 30 HNV that were never minted on chain.
    let _ = pending_mints(s.db(), "unbacked", 1, |_| 1).await;
    let user = haven_entity::users::find_by_external_id(s.db(), "unbacked-0")
        .await
        .unwrap()
        .unwrap();
    let txn = s.db().begin().await.unwrap();
    let credit = Movement::transfer(
        "test-credit:unbacked",
        MovementKind::Adjustment,
        Account::Supply,
        Account::UserAvailable(user.id),
        haven_entity::SignedWei::new(i128::try_from(30 * HNV).unwrap()),
    )
    .unwrap();
    ledger::post(&txn, &credit).await.unwrap();
    txn.commit().await.unwrap();

    let burn = pending_burn(s.db(), "unbacked-0", 20 * HNV, "reversal").await;
    let haven_messages::ChainRequest::Burn(request) = &burn else {
        panic!()
    };
    s.publish(std::slice::from_ref(&burn)).await;
    let db = s.db();
    let deadline = tokio::time::Instant::now() + SETTLE;
    while token_transactions::Entity::find_by_id_(db, request.tx_id)
        .await
        .status
        != TxStatus::Failed
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the burn did not fail"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let balance = ledger::user_balance(s.db(), user.id).await.unwrap();
    assert_eq!(
        (balance.available.get(), balance.reserved.get()),
        (i128::try_from(30 * HNV).unwrap(), 0),
        "the reservation is given back"
    );
    assert_eq!(
        haven_entity::clawbacks::outstanding(s.db(), user.id)
            .await
            .unwrap()
            .get(),
        i128::try_from(20 * HNV).unwrap(),
        "what it should have taken back is owed"
    );
    s.finish().await;
}

/// `haven_mint_since_acceptance_seconds` measures from the webhook's
/// acceptance (`accepted_at`), not from the token transaction's row:
/// mints whose webhooks waited 90 s upstream count the 90 s; a mint nobody
/// outside waits on (no `accepted_at`) is not observed.
#[tokio::test]
async fn mint_latency_is_measured_from_the_webhooks_acceptance() {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let s = spawn_app().await;
    let mints = pending_mints(s.db(), "accepted", 3, |_| 5).await;
    let accepted = chrono::Utc::now() - chrono::Duration::seconds(90);
    for (request, _, _) in &mints[..2] {
        let haven_messages::ChainRequest::Mint(m) = request else {
            panic!()
        };
        token_transactions::Entity::update_many()
            .col_expr(
                token_transactions::Column::AcceptedAt,
                Expr::value(Some(accepted)),
            )
            .filter(token_transactions::Column::Id.eq(m.tx_id))
            .exec(s.db())
            .await
            .unwrap();
    }
    let requests: Vec<_> = mints.iter().map(|(r, _, _)| r.clone()).collect();
    s.publish(&requests).await;
    wait_settled(s.db(), SETTLE).await;
    assert_eq!(count_status(s.db(), TxStatus::Confirmed).await, 3);

    let app = &s.app;
    assert_eq!(
        metric_value(app, "haven_mint_since_acceptance_seconds_count").await,
        2.0,
        "the two accepted"
    );
    let from_acceptance = metric_value(app, "haven_mint_since_acceptance_seconds_sum").await;
    assert!(from_acceptance >= 180.0, "{from_acceptance}");
    // The row-based histogram saw all three, without the 90 s upstream.
    assert_eq!(
        metric_value(app, "haven_mint_end_to_end_seconds_count").await,
        3.0
    );
    let from_rows = metric_value(app, "haven_mint_end_to_end_seconds_sum").await;
    assert!(
        from_acceptance - from_rows > 100.0,
        "from acceptance {from_acceptance} s, from the rows {from_rows} s"
    );
    s.finish().await;
}
