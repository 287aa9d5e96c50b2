//! Every unique key refuses a duplicate, on both backends, and the error
//! comes out as `EntityError::UniqueViolation`.

use chrono::{Duration, Utc};
use haven_common::testing::db::TestDb;
use haven_entity::redemptions::{self, RedemptionState, WithdrawalMethod};
use haven_entity::rewards::{self, RewardStatus};
use haven_entity::token_transactions::{self, TxStatus, TxType};
use haven_entity::{
    EntityError, SignedWei, idempotency_keys, inbound_events, ledger_movements, outbox,
    signer_leases, signer_nonces, user_balances, users,
};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait};
use uuid::Uuid;

use crate::helpers::user;

/// Inserts `model`, then `duplicate`, and expects the second to be refused
/// as a unique violation.
async fn refuses<A>(conn: &DatabaseConnection, what: &str, model: A, duplicate: A)
where
    A: ActiveModelTrait + Send,
    <A::Entity as EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
{
    <A::Entity as EntityTrait>::insert(model)
        .exec_without_returning(conn)
        .await
        .unwrap_or_else(|err| panic!("{what}: first insert failed: {err}"));
    let err = <A::Entity as EntityTrait>::insert(duplicate)
        .exec_without_returning(conn)
        .await
        .map_err(EntityError::from)
        .expect_err(what);
    assert!(err.is_unique_violation(), "{what}: {err:?}");
}

fn tx(user_id: Uuid, tx_id: &str, reference: u8) -> token_transactions::ActiveModel {
    let now = Utc::now();
    token_transactions::ActiveModel {
        id: Set(Uuid::now_v7()),
        tx_id: Set(tx_id.into()),
        chain_reference: Set(vec![reference; 32]),
        user_id: Set(user_id),
        tx_type: Set(TxType::Mint),
        amount: Set(SignedWei::new(5)),
        reason: Set("test".into()),
        status: Set(TxStatus::Pending),
        tx_hash: Set(None),
        block_number: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        submitted_at: Set(None),
        confirmed_at: Set(None),
        final_at: Set(None),
        reorgs: Set(0),
        requested_by: Set(None),
        accepted_at: Set(None),
    }
}

async fn every_unique_key(db: TestDb) {
    let conn = db.conn();
    let now = Utc::now();
    let alice = user(conn, "alice").await;

    // users: external_id (whatever the partner), wallet_address, derivation_index, id.
    let mut clone = users::ActiveModel::from(alice.clone());
    clone.id = Set(Uuid::now_v7());
    clone.wallet_address = Set("0xother".into());
    clone.derivation_index = Set(1_000_000);
    let err = users::Entity::insert(clone.clone())
        .exec_without_returning(conn)
        .await
        .map_err(EntityError::from)
        .unwrap_err();
    assert!(err.is_unique_violation(), "external_id: {err:?}");
    let mut other_partner = clone.clone();
    other_partner.partner = Set(if alice.partner == "aurora" {
        "tribe"
    } else {
        "aurora"
    }
    .into());
    let err = users::Entity::insert(other_partner)
        .exec_without_returning(conn)
        .await
        .map_err(EntityError::from)
        .unwrap_err();
    assert!(
        err.is_unique_violation(),
        "the same external_id from another partner is the same user: {err:?}"
    );
    let mut by_wallet = clone.clone();
    by_wallet.external_id = Set("other".into());
    by_wallet.wallet_address = Set(alice.wallet_address.clone());
    let err = users::Entity::insert(by_wallet)
        .exec_without_returning(conn)
        .await
        .map_err(EntityError::from)
        .unwrap_err();
    assert!(err.is_unique_violation(), "wallet_address: {err:?}");
    let mut by_index = clone.clone();
    by_index.external_id = Set("other".into());
    by_index.derivation_index = Set(alice.derivation_index);
    let err = users::Entity::insert(by_index)
        .exec_without_returning(conn)
        .await
        .map_err(EntityError::from)
        .unwrap_err();
    assert!(err.is_unique_violation(), "derivation_index: {err:?}");

    // user_balances: one row per user (find_or_create made it already).
    let err = user_balances::Entity::insert(user_balances::ActiveModel {
        user_id: Set(alice.id),
        available: Set(SignedWei::ZERO),
        reserved: Set(SignedWei::ZERO),
        version: Set(0),
        updated_at: Set(now),
    })
    .exec_without_returning(conn)
    .await
    .map_err(EntityError::from)
    .unwrap_err();
    assert!(err.is_unique_violation(), "user_balances: {err:?}");

    // token_transactions: tx_id, chain_reference.
    refuses(conn, "tx_id", tx(alice.id, "t1", 1), tx(alice.id, "t1", 2)).await;
    refuses(
        conn,
        "chain_reference",
        tx(alice.id, "t2", 3),
        tx(alice.id, "t3", 3),
    )
    .await;

    // rewards: source_reference.
    let reward = |id| rewards::ActiveModel {
        id: Set(id),
        source_reference: Set("aurora:booking:1".into()),
        user_id: Set(alice.id),
        rule: Set("booking".into()),
        rule_version: Set(1),
        amount: Set(SignedWei::new(240)),
        status: Set(RewardStatus::Pending),
        token_tx_id: Set(Some("t1".into())),
        created_at: Set(now),
        updated_at: Set(now),
    };
    refuses(
        conn,
        "source_reference",
        reward(Uuid::now_v7()),
        reward(Uuid::now_v7()),
    )
    .await;

    // redemptions: idempotency_key.
    let redemption = |id| redemptions::ActiveModel {
        request_id: Set(id),
        user_id: Set(alice.id),
        idempotency_key: Set("redeem-1".into()),
        amount: Set(SignedWei::new(500)),
        burn_amount: Set(SignedWei::new(500)),
        payout_amount: Set(SignedWei::new(490)),
        method: Set(WithdrawalMethod::Paypal),
        address: Set(None),
        state: Set(RedemptionState::Reserved),
        burn_tx_id: Set(None),
        payout_reference: Set(None),
        payout_fiat_amount: Set(None),
        payout_currency: Set(None),
        failure_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        completed_at: Set(None),
        requested_by: Set(None),
    };
    refuses(
        conn,
        "idempotency_key",
        redemption(Uuid::now_v7()),
        redemption(Uuid::now_v7()),
    )
    .await;

    // inbound_events: (partner, kind, event_key).
    let event = |id| inbound_events::ActiveModel {
        id: Set(id),
        partner: Set("aurora".into()),
        kind: Set("booking-created".into()),
        event_key: Set("b-1".into()),
        delivery_id: Set(None),
        message_id: Set(Uuid::now_v7()),
        payload: Set(serde_json::json!({"id": "b-1"})),
        received_at: Set(now),
    };
    refuses(
        conn,
        "inbound event",
        event(Uuid::now_v7()),
        event(Uuid::now_v7()),
    )
    .await;
    // ... and (partner, delivery_id), whatever the kind and key.
    let delivery = |id, kind: &str, key: &str| inbound_events::ActiveModel {
        id: Set(id),
        partner: Set("tribe".into()),
        kind: Set(kind.into()),
        event_key: Set(key.into()),
        delivery_id: Set(Some("msg_1".into())),
        message_id: Set(Uuid::now_v7()),
        payload: Set(serde_json::json!({})),
        received_at: Set(now),
    };
    refuses(
        conn,
        "inbound delivery id",
        delivery(Uuid::now_v7(), "contribution", "c-1"),
        delivery(Uuid::now_v7(), "event-attendance", "e-1"),
    )
    .await;

    // outbox: message_id.
    let message_id = Uuid::now_v7();
    let message = || outbox::ActiveModel {
        message_id: Set(message_id),
        exchange: Set("haven.events".into()),
        routing_key: Set("x".into()),
        payload: Set(b"{}".to_vec()),
        created_at: Set(now),
        published_at: Set(None),
        attempts: Set(0),
        last_error: Set(None),
        ..Default::default()
    };
    refuses(conn, "outbox message_id", message(), message()).await;

    // idempotency_keys: (scope, key).
    let key = || idempotency_keys::ActiveModel {
        scope: Set("token.mint".into()),
        key: Set("k".into()),
        request_hash: Set("h".into()),
        status_code: Set(None),
        response: Set(None),
        created_at: Set(now),
        expires_at: Set(now + Duration::hours(1)),
    };
    refuses(conn, "idempotency key", key(), key()).await;

    // ledger_movements: reference.
    let movement = |id| ledger_movements::ActiveModel {
        id: Set(id),
        reference: Set("mint:t1".into()),
        kind: Set(ledger_movements::MovementKind::Mint),
        created_at: Set(now),
    };
    refuses(
        conn,
        "movement reference",
        movement(Uuid::now_v7()),
        movement(Uuid::now_v7()),
    )
    .await;

    // signer_leases: signer_address; signer_nonces: (chain_id, signer_address).
    let lease = || signer_leases::ActiveModel {
        signer_address: Set("0xsigner".into()),
        holder: Set("minter-1".into()),
        expires_at: Set(now),
        acquired_at: Set(now),
        updated_at: Set(now),
    };
    refuses(conn, "signer lease", lease(), lease()).await;
    let nonce = || signer_nonces::ActiveModel {
        chain_id: Set(31337),
        signer_address: Set("0xsigner".into()),
        next_nonce: Set(0),
        updated_at: Set(now),
    };
    refuses(conn, "signer nonce", nonce(), nonce()).await;

    // A foreign key names its own variant: an unknown user.
    let err = token_transactions::Entity::insert(tx(Uuid::now_v7(), "t9", 9))
        .exec_without_returning(conn)
        .await
        .map_err(EntityError::from)
        .unwrap_err();
    assert!(
        matches!(err, EntityError::ForeignKeyViolation(_)),
        "{err:?}"
    );

    // A chain reference that is not 32 bytes is refused by a CHECK.
    let mut short = tx(alice.id, "t10", 10);
    short.chain_reference = Set(vec![1; 31]);
    assert!(
        token_transactions::Entity::insert(short)
            .exec_without_returning(conn)
            .await
            .is_err()
    );
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_unique_keys_refuse_duplicates() {
    every_unique_key(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_unique_keys_refuse_duplicates() {
    every_unique_key(TestDb::sqlite().await).await;
}
