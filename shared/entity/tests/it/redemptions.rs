//! A redemption's payout terms are fixed once: the first writer wins, and a
//! transition that carries terms sets them. What a user redeemed within a
//! window, and KYC decisions.

use chrono::{Duration, Utc};
use haven_common::testing::db::TestDb;
use haven_entity::SignedWei;
use haven_entity::kyc_decisions::{self, NewDecision};
use haven_entity::redemption_states;
use haven_entity::redemptions::{
    self, Changes, NewRedemption, PayoutTerms, RedemptionState, WithdrawalMethod,
};

use crate::helpers::user;

fn terms(amount: &str, currency: &str) -> PayoutTerms {
    PayoutTerms {
        fiat_amount: amount.into(),
        currency: currency.into(),
    }
}

async fn payout_terms_are_fixed_once(db: TestDb) {
    let conn = db.conn();
    let alice = user(conn, "alice").await;
    let reserve = |key: &str| NewRedemption {
        user_id: alice.id,
        idempotency_key: key.into(),
        amount: SignedWei::new(200),
        payout_amount: SignedWei::new(196),
        method: WithdrawalMethod::Paypal,
        address: None,
        requested_by: None,
    };

    // Recorded without terms (as before they were stored): the first fix
    // wins, a later one with other settings changes nothing.
    let old = redemptions::insert_reserved(conn, reserve("old"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.payout_terms(), None);
    let first = redemptions::fix_payout_terms(conn, old.request_id, terms("19.60", "CAD"))
        .await
        .unwrap();
    assert_eq!(first, Some(terms("19.60", "CAD")));
    let again = redemptions::fix_payout_terms(conn, old.request_id, terms("49.00", "USD"))
        .await
        .unwrap();
    assert_eq!(again, Some(terms("19.60", "CAD")));

    // Fixed by the transition that queues the burn.
    let new = redemptions::insert_reserved(conn, reserve("new"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        redemptions::transition(
            conn,
            new.request_id,
            RedemptionState::Reserved,
            RedemptionState::BurnRequested,
            Changes {
                payout_terms: Some(terms("0.01", "EUR")),
                ..Changes::default()
            },
        )
        .await
        .unwrap()
    );
    let row = redemptions::find_by_idempotency_key(conn, "new")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.payout_terms(), Some(terms("0.01", "EUR")));
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_fixes_payout_terms_once() {
    payout_terms_are_fixed_once(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_fixes_payout_terms_once() {
    payout_terms_are_fixed_once(TestDb::sqlite().await).await;
}

async fn windows_and_kyc_decisions(db: TestDb) {
    let conn = db.conn();
    let bob = user(conn, "bob").await;
    let reserve = |key: &str, hnv: i128| NewRedemption {
        user_id: bob.id,
        idempotency_key: key.into(),
        amount: SignedWei::from_hnv(hnv).unwrap(),
        payout_amount: SignedWei::from_hnv(hnv).unwrap(),
        method: WithdrawalMethod::Paypal,
        address: None,
        requested_by: None,
    };
    let hour_ago = Utc::now() - Duration::hours(1);
    assert_eq!(
        redemptions::total_since(conn, bob.id, hour_ago)
            .await
            .unwrap(),
        SignedWei::ZERO
    );
    redemptions::insert_reserved(conn, reserve("a", 4_000))
        .await
        .unwrap();
    let failed = redemptions::insert_reserved(conn, reserve("b", 7_000))
        .await
        .unwrap()
        .unwrap();
    redemptions::insert_reserved(conn, reserve("c", 1))
        .await
        .unwrap();
    // A failed redemption paid nothing: it does not count.
    assert!(
        redemptions::transition(
            conn,
            failed.request_id,
            RedemptionState::Reserved,
            RedemptionState::Failed,
            Changes::default(),
        )
        .await
        .unwrap()
    );
    assert_eq!(
        redemptions::total_since(conn, bob.id, hour_ago)
            .await
            .unwrap(),
        SignedWei::from_hnv(4_001).unwrap()
    );
    // Nothing was recorded after a moment from now.
    let later = Utc::now() + Duration::hours(1);
    assert_eq!(
        redemptions::total_since(conn, bob.id, later).await.unwrap(),
        SignedWei::ZERO
    );

    for verified in [true, false] {
        let updated = kyc_decisions::decide(
            conn,
            NewDecision {
                user_id: bob.id,
                verified,
                reference: Some(format!("check-{verified}")),
                decided_by: "api_key:0/00000000".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(updated.kyc_verified, verified);
    }
    let history = kyc_decisions::history(conn, bob.id).await.unwrap();
    assert_eq!(
        history.iter().map(|d| d.verified).collect::<Vec<_>>(),
        [false, true]
    );
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_sums_windows_and_keeps_kyc_decisions() {
    windows_and_kyc_decisions(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_sums_windows_and_keeps_kyc_decisions() {
    windows_and_kyc_decisions(TestDb::sqlite().await).await;
}

/// Every state a redemption enters is kept with when, by the database in
/// the statement that changes it; who asked is kept on the row. A touch
/// (same state) and a refused transition add nothing.
async fn states_are_kept_with_who_asked(db: TestDb) {
    let conn = db.conn();
    let carol = user(conn, "carol").await;
    let row = redemptions::insert_reserved(
        conn,
        NewRedemption {
            user_id: carol.id,
            idempotency_key: "history".into(),
            amount: SignedWei::new(500),
            payout_amount: SignedWei::new(490),
            method: WithdrawalMethod::BankTransfer,
            address: None,
            requested_by: Some("front-desk".into()),
        },
    )
    .await
    .unwrap()
    .unwrap();
    let id = row.request_id;
    let stored = redemptions::find_by_idempotency_key(conn, "history")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.requested_by.as_deref(), Some("front-desk"));

    let step = |from, to| redemptions::transition(conn, id, from, to, Changes::default());
    assert!(
        step(RedemptionState::Reserved, RedemptionState::BurnRequested)
            .await
            .unwrap()
    );
    // Refused (not in `reserved` any more): nothing kept.
    assert!(
        !step(RedemptionState::Reserved, RedemptionState::Failed)
            .await
            .unwrap()
    );
    assert!(
        redemptions::touch(conn, id, RedemptionState::BurnRequested, None)
            .await
            .unwrap()
    );
    assert!(
        step(RedemptionState::BurnRequested, RedemptionState::Burned)
            .await
            .unwrap()
    );

    let history = redemption_states::history(conn, id).await.unwrap();
    assert_eq!(
        history.iter().map(|h| h.state).collect::<Vec<_>>(),
        [
            RedemptionState::Reserved,
            RedemptionState::BurnRequested,
            RedemptionState::Burned
        ]
    );
    assert_eq!(history[0].entered_at, stored.created_at);
    assert!(
        history
            .windows(2)
            .all(|pair| pair[0].entered_at <= pair[1].entered_at)
    );
    assert!(history.iter().all(|h| h.request_id == id));
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_keeps_every_state_entered() {
    states_are_kept_with_who_asked(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_keeps_every_state_entered() {
    states_are_kept_with_who_asked(TestDb::sqlite().await).await;
}
