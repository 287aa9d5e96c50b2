//! Fault tests with the real binary: redemption-payout SIGKILLed after the
//! burn is confirmed and before the payout is recorded, then restarted.
//! Whatever the provider saw before the kill, the user is burned once and
//! paid once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use haven_entity::redemptions::RedemptionState;
use haven_entity::token_transactions::{TxStatus, TxType};
use redemption_payout::provider::stand_in::Reply;

use crate::helpers::*;

/// The real `redemption-payout` binary on the stack; killed when dropped.
struct PayoutProcess(Child);

impl PayoutProcess {
    fn start(s: &Stack) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_redemption-payout"))
            .args(payout_args(
                &s.deps,
                &s.provider.url(),
                &[
                    "--http-host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--log-filter",
                    "warn",
                    // Long enough that the kill lands while the request hangs.
                    "--payout-provider-timeout",
                    "60s",
                    // Only the restarted process resumes the redemption: a
                    // sweep of this one could ask the provider again before
                    // the kill (it would on a slow machine).
                    "--redemption-stale-after",
                    "600s",
                ],
            ))
            .stdin(Stdio::null())
            .spawn()
            .expect("start the redemption-payout binary");
        Self(child)
    }

    /// SIGKILL: no shutdown, no drain, no ack.
    fn kill(mut self) {
        self.0.kill().expect("SIGKILL redemption-payout");
        self.0.wait().expect("reap redemption-payout");
    }
}

impl Drop for PayoutProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a redemption of 200 of 340 with the binary until it is `burned`
/// and the provider has seen `attempts` payout requests (each answered with
/// `first`), kills it, lets the provider accept, restarts redemption-payout
/// (with `restart_args`: a deploy may change settings meanwhile) and checks
/// it ends paid, burned once, paid once at the terms it was first asked at,
/// and never refunded.
async fn kill_between_burn_and_payout(first: Reply, payouts_at_kill: usize, restart_args: &[&str]) {
    let s = spawn_stack().await;
    // Every creation until the kill gets `first`: the redemption request and
    // the burn's chain event can both drive the saga to the provider, and a
    // second call must not settle what the test kills in flight.
    s.provider.script([], first);
    let process = PayoutProcess::start(&s);
    let (user, id) = redeem_200_of_340(&s, "guest_killed", "redeem-killed").await;

    let (db, provider) = (s.db(), &s.provider);
    eventually("burned, and the payout asked for", SETTLE, || async move {
        let row = redemption(db, id).await;
        (row.state == RedemptionState::PayoutUnknown && provider.attempts(&id.to_string()) >= 1)
            .then_some(())
    })
    .await;
    process.kill();
    // Dead after the burn, before the payout is recorded: a payout may exist.
    assert_eq!(
        redemption(s.db(), id).await.state,
        RedemptionState::PayoutUnknown
    );
    assert_eq!(s.provider.payouts().len(), payouts_at_kill);
    assert_eq!(s.balance_of(&user).await, hnv(140), "the burn landed");

    let asked = s.provider.payouts().first().map(|p| p.request.clone());
    s.provider.script([], Reply::Accept);
    let app = s.payout(restart_args).await;
    let row = wait_state(s.db(), id, RedemptionState::Paid).await;
    let burns = transactions(s.db(), &user, TxType::Burn).await;
    assert_eq!(burns.len(), 1, "one burn");
    assert_eq!(burns[0].status, TxStatus::Confirmed);
    let payouts = s.provider.payouts();
    assert_eq!(payouts.len(), 1, "one payout");
    assert_eq!(payouts[0].idempotency_key, id.to_string());
    assert_eq!(
        row.payout_reference.as_deref(),
        Some(payouts[0].id.as_str())
    );
    // The restarted process asks by reference first: a payout created
    // before the kill is found, never asked for again; none found, the
    // same creation is sent again.
    assert!(s.provider.lookups() >= 1, "looked up by reference");
    if payouts_at_kill == 1 {
        assert_eq!(s.provider.attempts(&id.to_string()), 1);
    } else {
        assert!(s.provider.attempts(&id.to_string()) >= 2);
    }
    // 196 HNV at the default 0.10 CAD, as fixed before the burn.
    assert_eq!(
        (
            payouts[0].request.amount.as_str(),
            payouts[0].request.currency.as_str()
        ),
        ("19.60", "CAD")
    );
    if let Some(asked) = asked {
        assert_eq!(
            payouts[0].request, asked,
            "every attempt sent the same body"
        );
    }
    assert_eq!(
        transactions(s.db(), &user, TxType::Mint)
            .await
            .iter()
            .filter(|tx| tx.tx_id.starts_with("refund_"))
            .count(),
        0,
        "no refund"
    );
    assert_eq!(s.balance_of(&user).await, hnv(140));
    assert_eq!(ledger_balance(s.db(), &user).await, (hnv(140), 0));
    assert_eq!(movements(s.db(), &format!("payout:{id}")).await, 1);
    assert_ledger_balances(s.db()).await;
    app.stop().await;
    // Let the provider's hanging request go before tearing down.
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.finish().await;
}

#[tokio::test]
async fn killed_after_the_burn_before_the_provider_created_anything_then_restarted_pays_once() {
    kill_between_burn_and_payout(Reply::Hang, 0, &[]).await;
}

#[tokio::test]
async fn killed_after_the_provider_created_the_payout_but_before_its_answer_then_restarted_pays_once()
 {
    kill_between_burn_and_payout(Reply::AcceptThenHang, 1, &[]).await;
}

/// The first payout's answer is lost, then a deploy changes the reference
/// value and the currency: the retry still sends the first body under the
/// same key (the stand-in, like a real provider, answers 422 to a different
/// body under a used key, which was read as a refusal and refunded while
/// the first payout stood).
#[tokio::test]
async fn a_lost_answer_then_changed_settings_retries_the_same_payout_and_never_refunds() {
    kill_between_burn_and_payout(
        Reply::AcceptThenHang,
        1,
        &["--hnv-reference-value", "0.25", "--payout-currency", "USD"],
    )
    .await;
}

/// Settings of the lost-answer tests: a short timeout, a quick sweep.
const QUICK: &[&str] = &[
    "--payout-provider-timeout",
    "1s",
    "--redemption-sweep-interval",
    "1s",
    "--redemption-stale-after",
    "2s",
];

/// A user funded with 340 HNV who redeems 200 (the id of the redemption).
async fn redeem_200_of_340(
    s: &Stack,
    guest: &str,
    key: &str,
) -> (haven_entity::users::Model, uuid::Uuid) {
    let user = s.user(guest).await;
    s.fund(&user, 340).await;
    let id = s.redeem(&user, 200, key).await.unwrap().request_id;
    (user, id)
}

/// Refund mints of `user`.
async fn refunds(s: &Stack, user: &haven_entity::users::Model) -> usize {
    transactions(s.db(), user, TxType::Mint)
        .await
        .iter()
        .filter(|tx| tx.tx_id.starts_with("refund_"))
        .count()
}

/// The first creation makes the payout and its answer is lost (a timeout);
/// the immediate retry is refused with a 422. Before, that refusal refunded
/// the tokens while the first payout stood; now the creation's outcome is
/// unknown, the provider is asked by reference, and its payout is followed.
#[tokio::test]
async fn a_lost_answer_then_a_422_is_looked_up_and_paid_never_refunded() {
    let s = spawn_stack().await;
    s.provider.script([Reply::AcceptThenHang], Reply::Fail(422));
    let app = s.payout(QUICK).await;
    let (user, id) = redeem_200_of_340(&s, "guest_lost_422", "redeem-lost-422").await;

    let row = wait_state(s.db(), id, RedemptionState::Paid).await;
    let payouts = s.provider.payouts();
    assert_eq!(payouts.len(), 1, "one payout");
    assert_eq!(
        row.payout_reference.as_deref(),
        Some(payouts[0].id.as_str())
    );
    assert!(
        s.provider.attempts(&id.to_string()) >= 2,
        "the 422 was seen"
    );
    assert!(s.provider.lookups() >= 1);
    assert_eq!(refunds(&s, &user).await, 0, "no refund");
    assert_eq!(s.balance_of(&user).await, hnv(140));
    assert_eq!(movements(s.db(), &format!("payout:{id}")).await, 1);
    assert_ledger_balances(s.db()).await;
    assert!(metric(&app, "haven_payout_lookups_total", &[("outcome", "found")]).await >= 1.0);
    assert_eq!(
        metric(&app, "haven_redemption_refunds_total", &[]).await,
        0.0
    );
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.finish().await;
}

/// The first creation makes the payout and its answer is lost; then the
/// provider URL is wrong (every call answers a bare 404). A 404 proves
/// nothing: the redemption waits in `payout_unknown`, counted as
/// unresolved, is never refunded, and is paid (once) as soon as the
/// provider answers again.
#[tokio::test]
async fn a_lost_answer_then_a_404_from_a_wrong_url_waits_and_is_paid_once_the_provider_answers() {
    let s = spawn_stack().await;
    s.provider.script([Reply::AcceptThenHang], Reply::Accept);
    let mut args = QUICK.to_vec();
    args.extend(["--payout-provider-retries", "0"]);
    let app = s.payout(&args).await;
    let (user, id) = redeem_200_of_340(&s, "guest_lost_404", "redeem-lost-404").await;
    let provider = &s.provider;
    eventually(
        "the payout created, its answer pending",
        SETTLE,
        || async move { (provider.payouts().len() == 1).then_some(()) },
    )
    .await;
    // Before the answer times out, the URL goes wrong.
    s.provider.misroute(true);

    let app_ref = &app;
    eventually("the payout counted unresolved", SETTLE, || async move {
        (metric(app_ref, "haven_redemption_payouts_unresolved", &[]).await == 1.0
            && metric(
                app_ref,
                "haven_payout_lookups_total",
                &[("outcome", "unresolved")],
            )
            .await
                >= 2.0)
            .then_some(())
    })
    .await;
    let row = redemption(s.db(), id).await;
    assert_eq!(row.state, RedemptionState::PayoutUnknown);
    assert_eq!(refunds(&s, &user).await, 0, "never refunded on a 404");
    assert_eq!(
        s.provider.attempts(&id.to_string()),
        1,
        "never created again"
    );

    s.provider.misroute(false);
    let row = wait_state(s.db(), id, RedemptionState::Paid).await;
    let payouts = s.provider.payouts();
    assert_eq!(payouts.len(), 1, "one payout");
    assert_eq!(
        row.payout_reference.as_deref(),
        Some(payouts[0].id.as_str())
    );
    assert_eq!(s.provider.attempts(&id.to_string()), 1);
    assert_eq!(refunds(&s, &user).await, 0);
    assert_eq!(s.balance_of(&user).await, hnv(140));
    assert_ledger_balances(s.db()).await;
    let app_ref = &app;
    eventually("nothing unresolved once paid", SETTLE, || async move {
        (metric(app_ref, "haven_redemption_payouts_unresolved", &[]).await == 0.0).then_some(())
    })
    .await;
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.finish().await;
}

/// A creation times out having created nothing; the provider then says
/// there is no payout for the reference, and refuses the creation sent
/// again: only that clean refusal, after the provider's word, refunds.
#[tokio::test]
async fn a_timeout_then_no_payout_by_reference_then_a_refusal_refunds_once() {
    let s = spawn_stack().await;
    s.provider.script([Reply::Hang], Reply::Fail(422));
    let mut args = QUICK.to_vec();
    args.extend(["--payout-provider-retries", "0"]);
    let app = s.payout(&args).await;
    let (user, id) = redeem_200_of_340(&s, "guest_none", "redeem-none").await;
    wait_state(s.db(), id, RedemptionState::Refunded).await;
    assert!(s.provider.payouts().is_empty());
    assert_eq!(s.provider.attempts(&id.to_string()), 2);
    assert_eq!(refunds(&s, &user).await, 1);
    assert_eq!(s.balance_of(&user).await, hnv(340));
    assert_ledger_balances(s.db()).await;
    assert_eq!(
        metric(&app, "haven_payout_lookups_total", &[("outcome", "none")]).await,
        1.0
    );
    app.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.finish().await;
}
