//! Booking cancellations: a pending mint is withdrawn, a confirmed one is
//! burned back, one in flight is waited for, and a cancellation seen first
//! makes the booking earn nothing.

use std::time::Duration;

use haven_entity::bookings::{self, BookingStatus};
use haven_entity::rewards::{self, RewardStatus};
use haven_entity::token_transactions::{self, TxStatus, TxType};
use haven_messages::{BookingRef, ChainRequest, PartnerEvent};
use sea_orm::EntityTrait;

use crate::helpers::{
    HANDLED, booking, cancellation, chain_requests, count, eventually, hnv, metric, reward_in,
    set_final, set_tx_status, spawn_app, token_tx, user,
};

#[tokio::test]
async fn a_cancellation_before_the_mint_is_sent_withdraws_it() {
    let s = spawn_app().await;
    let db = s.db();
    s.send(booking("B-c1", "guest-c1", "100", 2)).await;
    let granted = reward_in(db, "aurora:booking:B-c1", RewardStatus::Pending).await;
    let tx_id = granted.token_tx_id.clone().unwrap();

    s.send(cancellation("B-c1", "guest-c1")).await;
    let cancelled = reward_in(db, "aurora:booking:B-c1", RewardStatus::Cancelled).await;
    assert_eq!(cancelled.id, granted.id);
    let mint = token_tx(db, &tx_id).await;
    assert_eq!(mint.status, TxStatus::Cancelled);
    // No burn: nothing was minted.
    assert_eq!(count::<token_transactions::Entity>(db).await, 1);
    let requests = chain_requests(&s.deps, Duration::from_secs(2)).await;
    assert!(
        requests.iter().all(|r| matches!(r, ChainRequest::Mint(_))),
        "{requests:?}"
    );
    let row = bookings::Entity::find_by_id("B-c1".to_owned())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, BookingStatus::Cancelled);
    assert_eq!(row.cancellation_reason.as_deref(), Some("guest request"));

    // The same cancellation again changes nothing.
    s.send(cancellation("B-c1", "guest-c1")).await;
    eventually("the second cancellation handled", HANDLED, || async {
        let dup = metric(
            &s.app,
            "haven_rewards_total",
            &[("rule", "booking"), ("outcome", "duplicate")],
        )
        .await;
        (dup >= 1.0).then_some(())
    })
    .await;
    assert_eq!(count::<token_transactions::Entity>(db).await, 1);
    s.finish().await;
}

#[tokio::test]
async fn a_cancellation_after_the_mint_confirmed_burns_it_back() {
    let s = spawn_app().await;
    let db = s.db();
    let accepted = s.send(booking("B-c2", "guest-c2", "100", 2)).await;
    let granted = reward_in(db, "aurora:booking:B-c2", RewardStatus::Pending).await;
    let mint_tx_id = granted.token_tx_id.clone().unwrap();
    // Stamped with the webhook's acceptance (the envelope webhook-ingress
    // made), to the microsecond the database keeps; no operator asked.
    let mint = token_tx(db, &mint_tx_id).await;
    let micros = |at: Option<chrono::DateTime<chrono::Utc>>| at.map(|at| at.timestamp_micros());
    assert_eq!(micros(mint.accepted_at), micros(Some(accepted.occurred_at)));
    assert_eq!(mint.requested_by, None);
    // chain-minter claimed, sent and confirmed it.
    set_tx_status(db, &mint_tx_id, TxStatus::Confirmed).await;

    let cancel = s.send(cancellation("B-c2", "guest-c2")).await;
    let reversed = reward_in(db, "aurora:booking:B-c2", RewardStatus::Reversed).await;
    assert_eq!(reversed.id, granted.id);
    assert_eq!(token_tx(db, &mint_tx_id).await.status, TxStatus::Confirmed);

    let burn = token_tx(db, &format!("reversal_{}", granted.id)).await;
    assert_eq!(
        (burn.tx_type, burn.status, burn.reason.as_str()),
        (TxType::Burn, TxStatus::Pending, "reversal")
    );
    assert_eq!(burn.amount, granted.amount);
    assert_eq!(burn.user_id, granted.user_id);
    assert_eq!(micros(burn.accepted_at), micros(Some(cancel.occurred_at)));

    let guest = user(db, "guest-c2").await;
    let requests = chain_requests(&s.deps, Duration::from_secs(2)).await;
    let burns: Vec<_> = requests
        .iter()
        .filter_map(|r| match r {
            ChainRequest::Burn(b) => Some(b),
            ChainRequest::Mint(_) => None,
        })
        .collect();
    assert_eq!(burns.len(), 1, "{requests:?}");
    let b = burns[0];
    assert_eq!(b.tx_id, burn.id);
    assert_eq!(b.user_id, "guest-c2");
    assert_eq!(b.from_address, guest.wallet_address);
    assert_eq!(b.amount_wei, hnv(240));
    assert_eq!(b.reason, "reversal");
    assert_eq!(b.redemption_id, None);
    assert_eq!(requests.len(), 2, "one mint, one burn: {requests:?}");
    assert_eq!(
        metric(
            &s.app,
            "haven_rewards_total",
            &[("rule", "booking"), ("outcome", "reversed")]
        )
        .await,
        1.0
    );
    drop(cancel);
    s.finish().await;
}

#[tokio::test]
async fn a_cancellation_waits_while_the_mint_is_in_flight() {
    let s = spawn_app().await;
    let db = s.db();
    s.send(booking("B-c3", "guest-c3", "10", 1)).await;
    let granted = reward_in(db, "aurora:booking:B-c3", RewardStatus::Pending).await;
    let mint_tx_id = granted.token_tx_id.clone().unwrap();
    // chain-minter claimed it and is sending it.
    set_tx_status(db, &mint_tx_id, TxStatus::Submitted).await;

    s.send(cancellation("B-c3", "guest-c3")).await;
    eventually("the cancellation retried", HANDLED, || async {
        let retried = metric(&s.app, "haven_amqp_consumed_total", &[("outcome", "retry")]).await;
        (retried >= 1.0).then_some(())
    })
    .await;
    // Nothing was decided while the mint is in flight.
    let waiting = rewards::find_by_source_reference(db, "aurora:booking:B-c3")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waiting.status, RewardStatus::Pending);
    assert_eq!(token_tx(db, &mint_tx_id).await.status, TxStatus::Submitted);

    // It confirms; the retried cancellation then burns it back.
    set_tx_status(db, &mint_tx_id, TxStatus::Confirmed).await;
    reward_in(db, "aurora:booking:B-c3", RewardStatus::Reversed).await;
    token_tx(db, &format!("reversal_{}", granted.id)).await;
    s.finish().await;
}

/// Found by the fault matrix's reorg row: a cancellation that burned a
/// confirmed mint a reorganisation then removed failed on chain (no
/// balance), became debt, and the mint was sent again and landed.
#[tokio::test]
async fn a_cancellation_waits_until_the_confirmed_mint_is_final() {
    let s = spawn_app().await;
    let db = s.db();
    s.send(booking("B-c5", "guest-c5", "10", 1)).await;
    let granted = reward_in(db, "aurora:booking:B-c5", RewardStatus::Pending).await;
    let mint_tx_id = granted.token_tx_id.clone().unwrap();
    set_tx_status(db, &mint_tx_id, TxStatus::Confirmed).await;
    set_final(db, &mint_tx_id, false).await;

    s.send(cancellation("B-c5", "guest-c5")).await;
    eventually("the cancellation retried", HANDLED, || async {
        let retried = metric(&s.app, "haven_amqp_consumed_total", &[("outcome", "retry")]).await;
        (retried >= 1.0).then_some(())
    })
    .await;
    let reversal = format!("reversal_{}", granted.id);
    assert!(
        token_transactions::find_by_tx_id(db, &reversal)
            .await
            .unwrap()
            .is_none(),
        "no burn of tokens a reorganisation may still take away"
    );
    assert_eq!(
        rewards::find_by_source_reference(db, "aurora:booking:B-c5")
            .await
            .unwrap()
            .unwrap()
            .status,
        RewardStatus::Pending
    );

    set_final(db, &mint_tx_id, true).await;
    reward_in(db, "aurora:booking:B-c5", RewardStatus::Reversed).await;
    token_tx(db, &reversal).await;
    s.finish().await;
}

#[tokio::test]
async fn a_cancellation_seen_before_its_booking_makes_it_earn_nothing() {
    let s = spawn_app().await;
    let db = s.db();
    s.send(cancellation("B-c4", "guest-c4")).await;
    eventually("the cancellation recorded", HANDLED, || async {
        bookings::Entity::find_by_id("B-c4".to_owned())
            .one(db)
            .await
            .unwrap()
            .filter(|b| b.status == BookingStatus::Cancelled)
    })
    .await;

    s.send(booking("B-c4", "guest-c4", "100", 2)).await;
    eventually("the late booking handled", HANDLED, || async {
        let cancelled = metric(
            &s.app,
            "haven_rewards_total",
            &[("rule", "booking"), ("outcome", "cancelled")],
        )
        .await;
        (cancelled >= 1.0).then_some(())
    })
    .await;
    assert_eq!(count::<rewards::Entity>(db).await, 0);
    assert_eq!(count::<token_transactions::Entity>(db).await, 0);
    assert!(
        chain_requests(&s.deps, Duration::from_secs(2))
            .await
            .is_empty()
    );
    s.finish().await;
}

#[tokio::test]
async fn a_completed_booking_is_marked_and_earns_nothing_more() {
    let s = spawn_app().await;
    let db = s.db();
    s.send(booking("B-c5", "guest-c5", "100", 1)).await;
    reward_in(db, "aurora:booking:B-c5", RewardStatus::Pending).await;
    s.send(PartnerEvent::AuroraBookingCompleted(BookingRef {
        booking_id: "B-c5".into(),
        guest_id: "guest-c5".into(),
    }))
    .await;
    let row = eventually("the completion recorded", HANDLED, || async {
        bookings::Entity::find_by_id("B-c5".to_owned())
            .one(db)
            .await
            .unwrap()
            .filter(|b| b.status == BookingStatus::Completed)
    })
    .await;
    assert!(row.completed_at.is_some());
    assert_eq!(count::<rewards::Entity>(db).await, 1);
    assert_eq!(count::<token_transactions::Entity>(db).await, 1);
    s.finish().await;
}

/// The guest spent the whole reward (a redemption holds it) before the
/// booking was cancelled: nothing is burned, all of it is owed. A later
/// booking worth less than the debt is withheld entirely (no mint), and
/// cancelling that one owes its amount again.
#[tokio::test]
async fn a_reversal_of_spent_tokens_is_owed_and_a_withheld_reward_reverses_into_debt_again() {
    use haven_entity::clawbacks;
    use haven_entity::ledger::{self, Movement};
    use sea_orm::TransactionTrait;

    let s = spawn_app().await;
    let db = s.db();
    s.send(booking("B-s1", "guest-s", "100", 2)).await;
    let first = reward_in(db, "aurora:booking:B-s1", RewardStatus::Pending).await;
    set_tx_status(
        db,
        first.token_tx_id.as_deref().unwrap(),
        TxStatus::Confirmed,
    )
    .await;
    let guest = user(db, "guest-s").await;
    // A redemption reserves all of it.
    let txn = db.begin().await.unwrap();
    let hold = Movement::reserve("reserve:test-s1", guest.id, first.amount).unwrap();
    ledger::post(&txn, &hold).await.unwrap();
    txn.commit().await.unwrap();

    s.send(cancellation("B-s1", "guest-s")).await;
    reward_in(db, "aurora:booking:B-s1", RewardStatus::Reversed).await;
    assert_eq!(
        clawbacks::outstanding(db, guest.id).await.unwrap(),
        first.amount
    );
    assert!(
        token_transactions::find_by_tx_id(db, &format!("reversal_{}", first.id))
            .await
            .unwrap()
            .is_none(),
        "nothing left to burn"
    );
    assert_eq!(
        metric(&s.app, "haven_clawbacks_opened_total", &[]).await,
        1.0
    );

    // A smaller booking settles part of the debt and mints nothing.
    s.send(booking("B-s2", "guest-s", "10", 1)).await;
    let second = reward_in(db, "aurora:booking:B-s2", RewardStatus::Minted).await;
    assert_eq!(second.token_tx_id, None, "withheld whole: no mint");
    let owed = first.amount.checked_sub(second.amount).unwrap();
    assert_eq!(clawbacks::outstanding(db, guest.id).await.unwrap(), owed);

    // Cancelling it owes its amount again.
    s.send(cancellation("B-s2", "guest-s")).await;
    reward_in(db, "aurora:booking:B-s2", RewardStatus::Reversed).await;
    assert_eq!(
        clawbacks::outstanding(db, guest.id).await.unwrap(),
        first.amount
    );
    let balance = ledger::user_balance(db, guest.id).await.unwrap();
    assert_eq!(balance.available.get(), 0);
    s.finish().await;
}
