//! The redemption saga: [`Saga::advance`] reads a redemption and takes every
//! step it can from where it is, until it waits on someone else (the chain,
//! the provider) or ends.
//!
//! ```text
//! reserved ──▶ burn_requested ──▶ burned ──▶ payout_unknown ──▶ payout_requested ──▶ paid
//!    │               │                         │    ▲  lookup           │
//!    │ KYC           │ burn failed             │    └──┘ unresolved     │ failed
//!    │               │                         └─ clean refusal ────────┴──▶ refund_requested ──▶ refunded
//!    └───────────────┴──▶ failed (reservation released)
//! ```
//!
//! The state is the only memory: every message (a redemption request, a
//! chain event) and the recovery sweep just call [`Saga::advance`], so a
//! redelivery, a crash at any point, or a second replica resumes from the
//! recorded state and no step is done twice (each is a conditional update,
//! see [`crate::store`]). The provider call is the one step outside the
//! database: it is made from `burned` with the redemption id as the
//! idempotency key, and only its answer moves the state on, so repeating it
//! after a crash asks the provider for the same payout again, never a new one.
//!
//! `payout_unknown` is recorded before the first creation is sent: from then
//! on a payout may exist, and nothing but the provider's word leaves that
//! state. The call that recorded it may refund on a clean refusal of its
//! creation (nothing could have been created: see
//! [`crate::provider::CreateFailure`]); anyone who finds a redemption in
//! `payout_unknown` (after a crash, a timeout, a 5xx, a lost answer) first
//! asks the provider by reference: a payout found is followed; the
//! provider's word that there is none makes the creation safe to send again
//! (same key, same body), and only its clean refusal refunds; any other
//! answer (a bare 404 from a wrong URL, a timeout) resolves nothing and the
//! redemption waits, counted in `haven_redemption_payouts_unresolved`, for
//! the provider or an operator.
//!
//! Within one process a redemption is advanced by one caller at a time
//! ([`InFlight`]): a chain event that arrives while the request's handler is
//! waiting on the provider waits too, then reads the state that call left,
//! so a slow provider is asked once, not once per message that came in
//! meanwhile. Between replicas the conditional updates and the idempotency
//! key still keep every step single.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use haven_common::money::Wei as Money;
use haven_common::telemetry::ErrorChain;
use haven_entity::redemptions::{self, KycRule, PayoutTerms, RedemptionState, WithdrawalMethod};
use haven_entity::token_transactions::{self, TxStatus};
use haven_entity::{EntityError, SignedWei, users};
use haven_outbox::OutboxNotifier;
use sea_orm::{DatabaseConnection, EntityTrait};
use uuid::Uuid;

use crate::metrics::{Lookup, Metrics};
use crate::provider::{FiatTerms, Method, Payout, PayoutClient, PayoutRequest, PayoutStatus};
use crate::store::{self, Cause};
use haven_common::amqp::Failure;

/// Steps one [`Saga::advance`] takes at most (the longest path has seven);
/// a bound so a bug can never spin.
const MAX_STEPS: usize = 16;

/// Where [`Saga::advance`] left a redemption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// In a final state: `paid`, `failed` or `refunded`.
    Done(RedemptionState),
    /// Waiting on the chain (a burn or refund mint not confirmed yet) or the
    /// provider (a payout still pending); a chain event or the sweep resumes it.
    Waiting(RedemptionState),
}

/// What the steps share.
#[derive(Debug)]
pub struct Saga {
    /// The database pool.
    pub db: DatabaseConnection,
    /// Wakes the outbox relay after a commit that queued a chain request.
    pub outbox: OutboxNotifier,
    /// The payout provider.
    pub provider: PayoutClient,
    /// What a payout is worth in fiat.
    pub terms: FiatTerms,
    /// What an unverified user may redeem.
    pub kyc: KycRule,
    /// This service's instruments.
    pub metrics: Metrics,
    /// The redemptions this process is advancing right now.
    pub in_flight: InFlight,
}

/// One async lock per redemption being advanced in this process; an entry
/// lives only while someone holds or waits for it.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>);

impl InFlight {
    /// Waits until no other caller in this process is advancing `id`.
    async fn enter(&self, id: Uuid) -> InFlightGuard<'_> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(map.entry(id).or_default())
        };
        let held = Arc::clone(&lock).lock_owned().await;
        InFlightGuard {
            owner: self,
            id,
            lock,
            _held: held,
        }
    }

    /// How many redemptions have an entry (held or awaited).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Held while one caller advances a redemption.
struct InFlightGuard<'a> {
    owner: &'a InFlight,
    id: Uuid,
    lock: Arc<tokio::sync::Mutex<()>>,
    _held: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.owner.0.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's reference, this guard's and the held guard's: nobody else
        // waits, so the entry can go (a waiter would hold one more).
        if Arc::strong_count(&self.lock) <= 3 {
            map.remove(&self.id);
        }
    }
}

/// What one step did.
enum Step {
    /// The state changed (by this call or a racing one): look again.
    Again,
    /// Stop here.
    Stop(Progress),
}

impl Saga {
    /// Takes redemption `id` as far as it can go now. `cause` is the message
    /// being handled (for the correlation of the chain requests it queues).
    ///
    /// [`Failure::Transient`] when a dependency is away (the caller retries
    /// later; nothing half-done is left: every step is one transaction or an
    /// idempotent provider call), [`Failure::Permanent`] when the redemption
    /// cannot exist as recorded (unknown, no reservation, corrupt).
    #[tracing::instrument(skip_all, fields(redemption_id = %id))]
    pub async fn advance(&self, id: Uuid, cause: Option<Cause>) -> Result<Progress, Failure> {
        let _only_caller = self.in_flight.enter(id).await;
        for _ in 0..MAX_STEPS {
            let redemption = redemptions::Entity::find_by_id(id)
                .one(&self.db)
                .await
                .map_err(EntityError::from)?
                .ok_or_else(|| Failure::permanent(format!("redemption {id} does not exist")))?;
            let step = match redemption.state {
                RedemptionState::Reserved => self.reserved(&redemption, cause).await?,
                RedemptionState::BurnRequested => self.burn_requested(&redemption).await?,
                RedemptionState::Burned => self.burned(&redemption, cause).await?,
                RedemptionState::PayoutUnknown => self.payout_unknown(&redemption, cause).await?,
                RedemptionState::PayoutRequested => {
                    self.payout_requested(&redemption, cause).await?
                }
                RedemptionState::RefundRequested => self.refund_requested(&redemption).await?,
                state @ (RedemptionState::Paid
                | RedemptionState::Failed
                | RedemptionState::Refunded) => Step::Stop(Progress::Done(state)),
            };
            if let Step::Stop(progress) = step {
                return Ok(progress);
            }
        }
        Err(Failure::transient(format!(
            "redemption {id} kept changing; {MAX_STEPS} steps without settling"
        )))
    }

    /// Counts a state entered by this process and logs it.
    fn entered(&self, redemption: &redemptions::Model, from: RedemptionState, to: RedemptionState) {
        self.metrics.transition(to);
        tracing::info!(
            redemption_id = %redemption.request_id,
            from = from.as_str(),
            to = to.as_str(),
            "redemption moved"
        );
    }

    /// `reserved`: re-check KYC and the reservation, then queue the burn.
    async fn reserved(
        &self,
        redemption: &redemptions::Model,
        cause: Option<Cause>,
    ) -> Result<Step, Failure> {
        let user = self.user(redemption).await?;
        // Never burn what the ledger does not hold for this redemption.
        let reserved = store::reserved_amount(&self.db, redemption.request_id, user.id)
            .await?
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "redemption {} has no reservation in the ledger; refusing to burn",
                    redemption.request_id
                ))
            })?;
        if redemption.burn_amount > reserved || redemption.burn_amount != redemption.amount {
            return Err(Failure::permanent(format!(
                "redemption {} would burn {} wei of {} reserved (amount {}); refusing",
                redemption.request_id, redemption.burn_amount, reserved, redemption.amount
            )));
        }
        if !user.kyc_verified
            && self
                .kyc
                .exceeded(&self.db, redemption.user_id, Some(redemption))
                .await?
        {
            let reason = format!(
                "KYC verification required: redemptions within {} add up to more than {} HNV",
                self.kyc.window_in_words(),
                self.kyc.threshold
            );
            if store::release(&self.db, redemption, RedemptionState::Reserved, reason).await? {
                tracing::warn!(redemption_id = %redemption.request_id, "user is not KYC-verified any more; reservation released");
                self.entered(
                    redemption,
                    RedemptionState::Reserved,
                    RedemptionState::Failed,
                );
            }
            return Ok(Step::Again);
        }
        let terms = self.payout_terms(redemption)?;
        if store::request_burn(&self.db, redemption, &user, terms, cause).await? {
            self.outbox.notify();
            self.entered(
                redemption,
                RedemptionState::Reserved,
                RedemptionState::BurnRequested,
            );
        }
        Ok(Step::Again)
    }

    /// `burn_requested`: follow the burn chain-minter records.
    async fn burn_requested(&self, redemption: &redemptions::Model) -> Result<Step, Failure> {
        let tx_id = redemption
            .burn_tx_id
            .clone()
            .unwrap_or_else(|| store::burn_tx_id(redemption.request_id));
        let burn = token_transactions::find_by_tx_id(&self.db, &tx_id)
            .await?
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "burn `{tx_id}` of redemption {} does not exist",
                    redemption.request_id
                ))
            })?;
        match burn.status {
            TxStatus::Pending | TxStatus::Submitted => Ok(Step::Stop(Progress::Waiting(
                RedemptionState::BurnRequested,
            ))),
            // Confirmed, not final: a reorganisation may still remove it,
            // and money must not leave for a burn the chain may not keep.
            // chain-minter announces it again once it is final.
            TxStatus::Confirmed if burn.final_at.is_none() => Ok(Step::Stop(Progress::Waiting(
                RedemptionState::BurnRequested,
            ))),
            TxStatus::Confirmed => {
                if store::mark_burned(&self.db, redemption).await? {
                    self.entered(
                        redemption,
                        RedemptionState::BurnRequested,
                        RedemptionState::Burned,
                    );
                }
                Ok(Step::Again)
            }
            // Nothing was burned (chain-minter gave up, or it was withdrawn
            // before it was sent): hand the reservation back.
            TxStatus::Failed | TxStatus::Cancelled => {
                let why = burn
                    .last_error
                    .unwrap_or_else(|| format!("{:?}", burn.status));
                let reason = format!("the burn failed: {why}");
                if store::release(&self.db, redemption, RedemptionState::BurnRequested, reason)
                    .await?
                {
                    tracing::warn!(redemption_id = %redemption.request_id, reason = %why, "burn failed; reservation released");
                    self.entered(
                        redemption,
                        RedemptionState::BurnRequested,
                        RedemptionState::Failed,
                    );
                }
                Ok(Step::Again)
            }
        }
    }

    /// `burned`: record that a payout may exist from now on, then ask for
    /// it. A racing caller that recorded it first sends the creation; this
    /// one looks again and finds `payout_unknown`.
    async fn burned(
        &self,
        redemption: &redemptions::Model,
        cause: Option<Cause>,
    ) -> Result<Step, Failure> {
        if !store::payout_sending(&self.db, redemption).await? {
            return Ok(Step::Again);
        }
        self.entered(
            redemption,
            RedemptionState::Burned,
            RedemptionState::PayoutUnknown,
        );
        self.create_payout(redemption, cause).await
    }

    /// `payout_unknown` found by someone who did not just record it: ask the
    /// provider whether the payout exists before anything else.
    async fn payout_unknown(
        &self,
        redemption: &redemptions::Model,
        cause: Option<Cause>,
    ) -> Result<Step, Failure> {
        let id = redemption.request_id;
        match self.provider.lookup(&id.to_string()).await {
            Ok(Some(payout)) => {
                self.metrics.lookup(Lookup::Found);
                tracing::info!(redemption_id = %id, payout_id = %payout.id, "the provider has the payout whose creation's answer was lost");
                let user = self.user(redemption).await?;
                self.accepted(redemption, &user, payout, cause).await
            }
            Ok(None) => {
                self.metrics.lookup(Lookup::None);
                tracing::info!(redemption_id = %id, "the provider has no payout for this redemption; asking for it again");
                self.create_payout(redemption, cause).await
            }
            Err(err) => {
                self.metrics.lookup(Lookup::Unresolved);
                tracing::warn!(
                    redemption_id = %id,
                    error = %err,
                    "the provider did not say whether the payout exists; the redemption waits in payout_unknown (never refunded on a guess)"
                );
                Err(Failure::transient(format!(
                    "payout lookup: {} ({})",
                    ErrorChain(&err),
                    err.class().as_str()
                )))
            }
        }
    }

    /// Sends the payout creation of a redemption in `payout_unknown` (the
    /// idempotency key makes a repeat the same payout) and acts on the
    /// answer: follow the payout, refund on a clean refusal, or leave it in
    /// `payout_unknown` when the outcome is not known.
    async fn create_payout(
        &self,
        redemption: &redemptions::Model,
        cause: Option<Cause>,
    ) -> Result<Step, Failure> {
        let user = self.user(redemption).await?;
        // The terms fixed with the burn; a redemption recorded before they
        // were stored fixes them now, before its first attempt. Never the
        // current settings: a retry after a lost answer must send the same
        // body under the same idempotency key.
        let terms = match redemption.payout_terms() {
            Some(terms) => terms,
            None => redemptions::fix_payout_terms(
                &self.db,
                redemption.request_id,
                self.payout_terms(redemption)?,
            )
            .await?
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "redemption {} lost its payout terms",
                    redemption.request_id
                ))
            })?,
        };
        let request = PayoutRequest {
            reference: redemption.request_id.to_string(),
            user_id: user.external_id.clone(),
            method: method(redemption.method),
            destination: redemption.address.clone(),
            amount: terms.fiat_amount,
            currency: terms.currency,
            hnv_amount: amount(redemption.payout_amount)?.to_string(),
        };
        match self.provider.create(redemption.request_id, &request).await {
            Ok(payout) => self.accepted(redemption, &user, payout, cause).await,
            Err(failure) if failure.is_clean_refusal() => {
                let reason = format!("the payout provider refused the payout: {}", failure.error);
                tracing::warn!(redemption_id = %redemption.request_id, error = %failure.error, "payout refused for good; refunding");
                self.refund(
                    redemption,
                    &user,
                    RedemptionState::PayoutUnknown,
                    reason,
                    cause,
                )
                .await
            }
            Err(failure) => {
                if failure.may_exist {
                    tracing::warn!(redemption_id = %redemption.request_id, error = %failure.error, "the payout's creation may have reached the provider; its outcome is unknown until the provider is asked by reference");
                }
                Err(Failure::transient(format!(
                    "payout provider: {} ({})",
                    ErrorChain(&failure.error),
                    failure.error.class().as_str()
                )))
            }
        }
    }

    /// `payout_unknown` -> `payout_requested` with the provider's payout,
    /// then on as far as its status goes.
    async fn accepted(
        &self,
        redemption: &redemptions::Model,
        user: &users::Model,
        payout: Payout,
        cause: Option<Cause>,
    ) -> Result<Step, Failure> {
        if store::payout_accepted(&self.db, redemption, &payout.id).await? {
            tracing::info!(redemption_id = %redemption.request_id, payout_id = %payout.id, status = ?payout.status, "payout accepted by the provider");
            self.entered(
                redemption,
                RedemptionState::PayoutUnknown,
                RedemptionState::PayoutRequested,
            );
        }
        // Settled right away: take it from `payout_requested` now, without
        // asking the provider again.
        self.settled(redemption, user, payout, cause).await
    }

    /// `payout_requested`: the provider has it; follow its status.
    async fn payout_requested(
        &self,
        redemption: &redemptions::Model,
        cause: Option<Cause>,
    ) -> Result<Step, Failure> {
        let reference = redemption.payout_reference.clone().ok_or_else(|| {
            Failure::permanent(format!(
                "redemption {} is payout_requested without a payout reference",
                redemption.request_id
            ))
        })?;
        let payout: Payout = self.provider.status(&reference).await.map_err(|err| {
            Failure::transient(format!(
                "payout provider: {} ({})",
                ErrorChain(&err),
                err.class().as_str()
            ))
        })?;
        if payout.status == PayoutStatus::Pending {
            // Looked at: the sweep polls it again once it is stale.
            redemptions::touch(
                &self.db,
                redemption.request_id,
                RedemptionState::PayoutRequested,
                None,
            )
            .await?;
        }
        let user = self.user(redemption).await?;
        self.settled(redemption, &user, payout, cause).await
    }

    /// Acts on the provider's status of a payout it accepted (the
    /// redemption is `payout_requested`): wait, record it paid, or refund.
    async fn settled(
        &self,
        redemption: &redemptions::Model,
        user: &users::Model,
        payout: Payout,
        cause: Option<Cause>,
    ) -> Result<Step, Failure> {
        match payout.status {
            PayoutStatus::Pending => Ok(Step::Stop(Progress::Waiting(
                RedemptionState::PayoutRequested,
            ))),
            PayoutStatus::Paid => {
                if store::mark_paid(&self.db, redemption).await? {
                    self.entered(
                        redemption,
                        RedemptionState::PayoutRequested,
                        RedemptionState::Paid,
                    );
                    let elapsed = (Utc::now() - redemption.created_at)
                        .to_std()
                        .unwrap_or(Duration::ZERO);
                    self.metrics.paid_after(elapsed);
                }
                Ok(Step::Again)
            }
            PayoutStatus::Failed => {
                let why = payout
                    .failure_reason
                    .unwrap_or_else(|| "no reason given".to_owned());
                let reason = format!("the payout provider failed payout {}: {why}", payout.id);
                tracing::warn!(redemption_id = %redemption.request_id, payout_id = %payout.id, reason = %why, "payout failed for good; refunding");
                self.refund(
                    redemption,
                    user,
                    RedemptionState::PayoutRequested,
                    reason,
                    cause,
                )
                .await
            }
        }
    }

    async fn refund(
        &self,
        redemption: &redemptions::Model,
        user: &users::Model,
        from: RedemptionState,
        reason: String,
        cause: Option<Cause>,
    ) -> Result<Step, Failure> {
        if store::request_refund(&self.db, redemption, user, from, reason, cause).await? {
            self.outbox.notify();
            self.metrics.refund();
            self.entered(redemption, from, RedemptionState::RefundRequested);
        }
        Ok(Step::Again)
    }

    /// `refund_requested`: follow the refund mint chain-minter records.
    async fn refund_requested(&self, redemption: &redemptions::Model) -> Result<Step, Failure> {
        let tx_id = store::refund_tx_id(redemption.request_id);
        let mint = token_transactions::find_by_tx_id(&self.db, &tx_id)
            .await?
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "refund `{tx_id}` of redemption {} does not exist",
                    redemption.request_id
                ))
            })?;
        match mint.status {
            TxStatus::Pending | TxStatus::Submitted => Ok(Step::Stop(Progress::Waiting(
                RedemptionState::RefundRequested,
            ))),
            TxStatus::Confirmed => {
                if store::mark_refunded(&self.db, redemption).await? {
                    self.entered(
                        redemption,
                        RedemptionState::RefundRequested,
                        RedemptionState::Refunded,
                    );
                }
                Ok(Step::Again)
            }
            TxStatus::Failed | TxStatus::Cancelled => {
                // The user's tokens are burned and unpaid: only an operator
                // can decide (a new mint, a manual payout). Said loudly on
                // every look, and recorded on the row.
                let why = mint
                    .last_error
                    .unwrap_or_else(|| format!("{:?}", mint.status));
                tracing::error!(
                    redemption_id = %redemption.request_id,
                    tx_id = %tx_id,
                    reason = %why,
                    "the refund mint failed; the redemption needs an operator"
                );
                let recorded = redemption.failure_reason.clone().unwrap_or_default();
                let reason = (!recorded.contains("the refund mint failed"))
                    .then(|| format!("{recorded}; the refund mint failed: {why}"));
                redemptions::touch(
                    &self.db,
                    redemption.request_id,
                    RedemptionState::RefundRequested,
                    reason,
                )
                .await?;
                Ok(Step::Stop(Progress::Waiting(
                    RedemptionState::RefundRequested,
                )))
            }
        }
    }

    /// The payout terms of `redemption` at today's settings.
    fn payout_terms(&self, redemption: &redemptions::Model) -> Result<PayoutTerms, Failure> {
        Ok(PayoutTerms {
            fiat_amount: self.terms.amount_of(amount(redemption.payout_amount)?),
            currency: self.terms.currency.clone(),
        })
    }

    async fn user(&self, redemption: &redemptions::Model) -> Result<users::Model, Failure> {
        users::Entity::find_by_id(redemption.user_id)
            .one(&self.db)
            .await
            .map_err(EntityError::from)?
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "user {} of redemption {} does not exist",
                    redemption.user_id, redemption.request_id
                ))
            })
    }
}

/// A stored (signed) amount as money.
fn amount(wei: SignedWei) -> Result<Money, Failure> {
    store::chain_wei(wei).map(Money::from_wei)
}

fn method(method: WithdrawalMethod) -> Method {
    match method {
        WithdrawalMethod::BankTransfer => Method::BankTransfer,
        WithdrawalMethod::Paypal => Method::Paypal,
        WithdrawalMethod::Crypto => Method::Crypto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_redemption_is_advanced_by_one_caller_at_a_time_and_its_entry_goes_with_the_last() {
        let in_flight = InFlight::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let first = in_flight.enter(a).await;
        // Another redemption is not held up.
        drop(in_flight.enter(b).await);
        assert_eq!(in_flight.len(), 1);

        let second = in_flight.enter(a);
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut second)
                .await
                .is_err(),
            "the second caller waits while the first advances"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second caller goes on once the first is done");
        assert_eq!(in_flight.len(), 1, "still held by the second caller");
        drop(second);
        assert_eq!(in_flight.len(), 0, "no entry once nobody holds or waits");
    }
}
