//! A redemption's payout terms are fixed once: the first writer wins, and a
//! transition that carries terms sets them.

use haven_common::testing::db::TestDb;
use haven_entity::SignedWei;
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
