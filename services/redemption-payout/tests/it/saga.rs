//! The saga against the real neighbours: redemptions reserved by
//! webhook-ingress's code, burned by chain-minter on anvil, paid through
//! the stand-in provider; the chain, the ledger and the provider agree at
//! the end of every path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use haven_entity::ledger::{self, Account, Movement};
use haven_entity::ledger_movements::MovementKind;
use haven_entity::redemptions::{RedemptionState, WithdrawalMethod};
use haven_entity::token_transactions::{TxStatus, TxType};
use haven_messages::{
    ChainEvent, Envelope, RedemptionCommand, RedemptionRequested, TxFailed,
    WithdrawalMethod as MessageMethod,
};
use redemption_payout::provider::stand_in::{Reply, Settle};
use redemption_payout::store;
use sea_orm::TransactionTrait;

use crate::helpers::*;

#[tokio::test]
async fn a_redemption_burns_the_whole_amount_and_pays_out_98_percent() {
    let s = spawn_stack().await;
    let app = s.payout(&[]).await;
    let user = s.user("guest_paid").await;
    s.fund(&user, 340).await;
    let burned_before = system_balance(s.db(), Account::Burned).await;

    let reservation = s.redeem(&user, 200, "redeem-paid").await.unwrap();
    let id = reservation.request_id;
    let row = wait_state(s.db(), id, RedemptionState::Paid).await;
    assert!(row.completed_at.is_some());

    // On chain: the whole 200 burned, once.
    assert_eq!(s.balance_of(&user).await, hnv(140));
    let burns = transactions(s.db(), &user, TxType::Burn).await;
    assert_eq!(burns.len(), 1);
    assert_eq!(burns[0].tx_id, store::burn_tx_id(id));
    assert_eq!(burns[0].reason, "redemption");
    assert_eq!(burns[0].status, TxStatus::Confirmed);
    assert_eq!(burns[0].amount, entity_hnv(200));
    assert_eq!(row.burn_tx_id.as_deref(), Some(burns[0].tx_id.as_str()));
    // Who asked for the redemption asked for its burn.
    assert_eq!(row.requested_by.as_deref(), Some(REQUESTED_BY));
    assert_eq!(burns[0].requested_by.as_deref(), Some(REQUESTED_BY));

    // At the provider: one payout of 196 HNV at 0.10 CAD, under the redemption id.
    let payouts = s.provider.payouts();
    assert_eq!(payouts.len(), 1);
    let payout = &payouts[0];
    assert_eq!(payout.idempotency_key, id.to_string());
    assert_eq!(payout.request.amount, "19.60");
    assert_eq!(payout.request.currency, "CAD");
    assert_eq!(payout.request.hnv_amount, "196.0");
    assert_eq!(payout.request.user_id, "guest_paid");
    assert_eq!(row.payout_reference.as_deref(), Some(payout.id.as_str()));

    // In the ledger: 140 available, nothing reserved, the fee burned, 196 paid out.
    assert_eq!(ledger_balance(s.db(), &user).await, (hnv(140), 0));
    assert_eq!(
        system_balance(s.db(), Account::Burned).await - burned_before,
        i128::try_from(hnv(4)).unwrap()
    );
    assert_eq!(
        system_balance(s.db(), Account::Payout).await,
        i128::try_from(hnv(196)).unwrap()
    );
    assert_eq!(movements(s.db(), &format!("payout:{id}")).await, 1);
    assert_ledger_balances(s.db()).await;

    for state in ["burn_requested", "burned", "payout_requested", "paid"] {
        assert_eq!(
            metric(
                &app,
                "haven_redemption_transitions_total",
                &[("state", state)]
            )
            .await,
            1.0,
            "{state}"
        );
    }
    assert!(metric(&app, "haven_payout_latency_seconds_count", &[]).await >= 1.0);
    app.stop().await;
    s.finish().await;
}

#[tokio::test]
async fn the_provider_failing_twice_with_500_pays_exactly_once() {
    let s = spawn_stack().await;
    s.provider
        .script([Reply::Fail(500), Reply::Fail(500)], Reply::Accept);
    // The client's own retries only: a sweep of a redemption that a slow
    // machine left "stale" would ask the provider once more.
    let app = s.payout(&["--redemption-stale-after", "600s"]).await;
    let user = s.user("guest_500").await;
    s.fund(&user, 100).await;
    let id = s.redeem(&user, 50, "redeem-500").await.unwrap().request_id;
    wait_state(s.db(), id, RedemptionState::Paid).await;

    assert_eq!(s.provider.attempts(&id.to_string()), 3, "500, 500, 200");
    assert_eq!(s.provider.payouts().len(), 1);
    assert_eq!(s.balance_of(&user).await, hnv(50));
    assert_eq!(ledger_balance(s.db(), &user).await, (hnv(50), 0));
    assert_eq!(
        metric(
            &app,
            "haven_payout_provider_errors_total",
            &[("class", "server")]
        )
        .await,
        2.0
    );
    assert_ledger_balances(s.db()).await;
    app.stop().await;
    s.finish().await;
}

#[tokio::test]
async fn a_payout_refused_for_good_is_refunded_by_a_mint_of_its_own() {
    let s = spawn_stack().await;
    s.provider.script([], Reply::Fail(422));
    let app = s.payout(&[]).await;
    let user = s.user("guest_refused").await;
    s.fund(&user, 340).await;
    let burned_before = system_balance(s.db(), Account::Burned).await;
    let id = s
        .redeem(&user, 200, "redeem-refused")
        .await
        .unwrap()
        .request_id;
    let row = wait_state(s.db(), id, RedemptionState::Refunded).await;
    assert!(
        row.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("422"),
        "{row:?}"
    );

    // One burn, one refund mint with its own reference; the balance is back.
    let burns = transactions(s.db(), &user, TxType::Burn).await;
    assert_eq!(burns.len(), 1);
    assert_eq!(burns[0].status, TxStatus::Confirmed);
    let refunds: Vec<_> = transactions(s.db(), &user, TxType::Mint)
        .await
        .into_iter()
        .filter(|tx| tx.reason == "refund")
        .collect();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].tx_id, store::refund_tx_id(id));
    assert_eq!(refunds[0].status, TxStatus::Confirmed);
    assert_eq!(refunds[0].amount, entity_hnv(200));
    assert_ne!(refunds[0].chain_reference, burns[0].chain_reference);
    assert_eq!(refunds[0].requested_by.as_deref(), Some(REQUESTED_BY));
    assert_eq!(s.balance_of(&user).await, hnv(340));
    assert_eq!(ledger_balance(s.db(), &user).await, (hnv(340), 0));

    // Nothing paid: the burned 200 stay burned, the refund came from supply.
    assert!(s.provider.payouts().is_empty());
    assert_eq!(system_balance(s.db(), Account::Payout).await, 0);
    assert_eq!(
        system_balance(s.db(), Account::Burned).await - burned_before,
        i128::try_from(hnv(200)).unwrap()
    );
    assert_ledger_balances(s.db()).await;
    assert_eq!(
        metric(&app, "haven_redemption_refunds_total", &[]).await,
        1.0
    );
    assert_eq!(
        metric(
            &app,
            "haven_payout_provider_errors_total",
            &[("class", "rejected")]
        )
        .await,
        1.0
    );
    app.stop().await;
    s.finish().await;
}

#[tokio::test]
async fn pending_payouts_are_polled_until_paid_or_refunded_when_they_fail() {
    let s = spawn_stack().await;
    let app = s.payout(&["--redemption-stale-after", "0s"]).await;
    let user = s.user("guest_polled").await;
    s.fund(&user, 100).await;

    s.provider.settle(Settle::PaidAfterPolls(2));
    let paid = s
        .redeem(&user, 10, "redeem-polled")
        .await
        .unwrap()
        .request_id;
    wait_state(s.db(), paid, RedemptionState::Paid).await;
    assert_eq!(s.provider.payout_for(&paid.to_string()).unwrap().polls, 3);

    s.provider.settle(Settle::FailedAfterPolls(1));
    let failed = s
        .redeem(&user, 20, "redeem-fails")
        .await
        .unwrap()
        .request_id;
    let row = wait_state(s.db(), failed, RedemptionState::Refunded).await;
    assert!(row.payout_reference.is_some());
    assert!(
        row.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("the stand-in was told to fail"),
        "{row:?}"
    );
    assert_eq!(s.balance_of(&user).await, hnv(90));
    assert_eq!(ledger_balance(s.db(), &user).await, (hnv(90), 0));
    assert_eq!(s.provider.payouts().len(), 2);
    assert_ledger_balances(s.db()).await;
    app.stop().await;
    s.finish().await;
}

#[tokio::test]
async fn a_burn_that_fails_releases_the_reservation_exactly_once() {
    let s = spawn_stack().await;
    let app = s.payout(&[]).await;
    // The ledger credits 100 HNV the chain never minted, so the burn reverts.
    let user = s.user("guest_unbacked").await;
    let txn = s.db().begin().await.unwrap();
    ledger::post(
        &txn,
        &Movement::transfer(
            "adjustment:test-unbacked",
            MovementKind::Adjustment,
            Account::Supply,
            Account::UserAvailable(user.id),
            entity_hnv(100),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();

    let id = s
        .redeem(&user, 60, "redeem-unbacked")
        .await
        .unwrap()
        .request_id;
    let row = wait_state(s.db(), id, RedemptionState::Failed).await;
    assert!(
        row.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("burn failed"),
        "{row:?}"
    );
    let burns = transactions(s.db(), &user, TxType::Burn).await;
    assert_eq!(burns.len(), 1);
    assert_eq!(burns[0].status, TxStatus::Failed);
    assert_eq!(ledger_balance(s.db(), &user).await, (hnv(100), 0));
    assert_eq!(movements(s.db(), &format!("release:{id}")).await, 1);

    // The request and the failure delivered again, many times: nothing moves.
    let request = Envelope::new(RedemptionCommand::Requested(RedemptionRequested {
        redemption_id: id,
        user_id: user.external_id.clone(),
        amount_wei: hnv(60),
        payout_wei: hnv(60) / 100 * 98,
        withdrawal_method: MessageMethod::BankTransfer,
        withdrawal_address: None,
    }));
    let failed = Envelope::new(ChainEvent::Failed(TxFailed {
        tx_id: burns[0].id,
        tx_type: haven_messages::TxType::Burn,
        user_id: user.external_id.clone(),
        reason: "test".into(),
        redemption_id: Some(id),
    }));
    s.publish(&vec![request; 10]).await;
    s.publish(&vec![failed; 10]).await;
    let app_ref = &app;
    eventually("the 20 copies handled", SETTLE, || async move {
        let acked = metric(app_ref, "haven_amqp_consumed_total", &[("outcome", "ack")]).await;
        (acked >= 22.0).then_some(())
    })
    .await;
    assert_eq!(movements(s.db(), &format!("release:{id}")).await, 1);
    assert_eq!(ledger_balance(s.db(), &user).await, (hnv(100), 0));
    assert_eq!(transactions(s.db(), &user, TxType::Burn).await.len(), 1);
    assert!(s.provider.payouts().is_empty());
    assert_ledger_balances(s.db()).await;
    app.stop().await;
    s.finish().await;
}

#[tokio::test]
async fn kyc_revoked_after_the_reservation_releases_it_without_a_burn() {
    let s = spawn_stack().await;
    let user = s.user("guest_kyc").await;
    s.set_kyc(&user, true).await;
    s.fund(&user, 300).await;
    // Verified at ingress (threshold 10,000 there; 100 here), revoked before
    // redemption-payout looks.
    let id = s.redeem(&user, 200, "redeem-kyc").await.unwrap().request_id;
    s.set_kyc(&user, false).await;
    let app = s.payout(&["--kyc-threshold", "100"]).await;
    let row = wait_state(s.db(), id, RedemptionState::Failed).await;
    assert!(
        row.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("KYC"),
        "{row:?}"
    );
    assert!(transactions(s.db(), &user, TxType::Burn).await.is_empty());
    assert_eq!(s.balance_of(&user).await, hnv(300));
    assert_eq!(ledger_balance(s.db(), &user).await, (hnv(300), 0));
    assert!(s.provider.payouts().is_empty());

    // At or below the threshold an unverified user is paid.
    let small = s
        .redeem(&user, 100, "redeem-kyc-small")
        .await
        .unwrap()
        .request_id;
    wait_state(s.db(), small, RedemptionState::Paid).await;
    assert_eq!(s.balance_of(&user).await, hnv(200));
    app.stop().await;
    s.finish().await;
}

/// KYC revoked after three small redemptions were accepted: each is under
/// the threshold, together they are over it. Checked per redemption all
/// three were paid; over the window at most the threshold is.
#[tokio::test]
async fn kyc_revoked_after_split_redemptions_pays_at_most_the_threshold() {
    let s = spawn_stack().await;
    let user = s.user("guest_split").await;
    s.set_kyc(&user, true).await;
    s.fund(&user, 300).await;
    let mut ids = Vec::new();
    for key in ["split-1", "split-2", "split-3"] {
        ids.push(s.redeem(&user, 60, key).await.unwrap().request_id);
    }
    s.set_kyc(&user, false).await;
    let app = s.payout(&["--kyc-threshold", "100"]).await;
    let mut paid = 0;
    for id in &ids {
        let db = s.db();
        let id = *id;
        let row = eventually("the redemption settled", SETTLE, || async move {
            let row = redemption(db, id).await;
            row.state.is_terminal().then_some(row)
        })
        .await;
        match row.state {
            RedemptionState::Paid => paid += 60,
            RedemptionState::Failed => assert!(
                row.failure_reason
                    .as_deref()
                    .unwrap_or_default()
                    .contains("KYC verification required"),
                "{row:?}"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(paid <= 100, "{paid} HNV paid to an unverified user");
    assert_eq!(s.balance_of(&user).await, hnv(300 - paid));
    assert_eq!(ledger_balance(s.db(), &user).await, (hnv(300 - paid), 0));
    app.stop().await;
    s.finish().await;
}

#[tokio::test]
async fn one_request_delivered_30_times_to_two_replicas_burns_and_pays_once() {
    let s = spawn_stack().await;
    let one = s.payout(&[]).await;
    let two = s.payout(&[]).await;
    let user = s.user("guest_dup").await;
    s.fund(&user, 100).await;
    let reservation = s
        .redeem_with(
            &user,
            40,
            "redeem-dup",
            WithdrawalMethod::Crypto,
            Some("0x000000000000000000000000000000000000dEaD".into()),
        )
        .await
        .unwrap();
    let id = reservation.request_id;
    let copy = Envelope::new(RedemptionCommand::Requested(RedemptionRequested {
        redemption_id: id,
        user_id: user.external_id.clone(),
        amount_wei: hnv(40),
        payout_wei: reservation.payout_amount.as_wei(),
        withdrawal_method: MessageMethod::Crypto,
        withdrawal_address: Some("0x000000000000000000000000000000000000dEaD".into()),
    }));
    s.publish(&vec![copy; 30]).await;
    wait_state(s.db(), id, RedemptionState::Paid).await;

    assert_eq!(transactions(s.db(), &user, TxType::Burn).await.len(), 1);
    assert_eq!(s.provider.payouts().len(), 1);
    let payout = &s.provider.payouts()[0];
    assert_eq!(
        payout.request.destination.as_deref(),
        Some("0x000000000000000000000000000000000000dEaD")
    );
    assert_eq!(s.balance_of(&user).await, hnv(60));
    assert_eq!(ledger_balance(s.db(), &user).await, (hnv(60), 0));
    assert_eq!(movements(s.db(), &format!("payout:{id}")).await, 1);
    let entered = metric(
        &one,
        "haven_redemption_transitions_total",
        &[("state", "paid")],
    )
    .await
        + metric(
            &two,
            "haven_redemption_transitions_total",
            &[("state", "paid")],
        )
        .await;
    assert_eq!(entered, 1.0, "exactly one replica recorded the payment");
    assert_ledger_balances(s.db()).await;
    one.stop().await;
    two.stop().await;
    s.finish().await;
}
