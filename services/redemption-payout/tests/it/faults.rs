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
    let user = s.user("guest_killed").await;
    s.fund(&user, 340).await;
    let id = s
        .redeem(&user, 200, "redeem-killed")
        .await
        .unwrap()
        .request_id;

    let (db, provider) = (s.db(), &s.provider);
    eventually("burned, and the payout asked for", SETTLE, || async move {
        let row = redemption(db, id).await;
        (row.state == RedemptionState::Burned && provider.attempts(&id.to_string()) >= 1)
            .then_some(())
    })
    .await;
    process.kill();
    // Dead after the burn, before the payout is recorded.
    assert_eq!(redemption(s.db(), id).await.state, RedemptionState::Burned);
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
    assert!(s.provider.attempts(&id.to_string()) >= 2);
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
