//! A redemption's payout terms are fixed once: the first writer wins, and a
//! transition that carries terms sets them. What a user redeemed within a
//! window, and KYC decisions.

use chrono::{Duration, Utc};
use haven_common::testing::db::TestDb;
use haven_entity::SignedWei;
use haven_entity::kyc_decisions::{self, NewDecision};
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
