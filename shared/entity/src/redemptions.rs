//! `redemptions`: a user turning tokens into money: reserve, burn, pay out.

use std::time::Duration;

use chrono::Utc;
use haven_common::money::Wei;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{QueryOrder, QuerySelect};

use crate::error::EntityError;
use crate::wei::SignedWei;

/// How the money is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum WithdrawalMethod {
    /// Bank transfer.
    #[sea_orm(string_value = "bank_transfer")]
    BankTransfer,
    /// PayPal.
    #[sea_orm(string_value = "paypal")]
    Paypal,
    /// To a crypto address.
    #[sea_orm(string_value = "crypto")]
    Crypto,
}

/// Where a redemption is in its saga (`reserved` -> `burn_requested` ->
/// `burned` -> `payout_unknown` -> `payout_requested` -> `paid`; or `failed`
/// when the burn cannot happen, or `refund_requested` -> `refunded` when the
/// payout is refused after the burn).
/// Stored as text without a CHECK so states can be refined with a code change only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum RedemptionState {
    /// Accepted at ingress, balance reserved.
    #[sea_orm(string_value = "reserved")]
    Reserved,
    /// Burn queued to chain-minter.
    #[sea_orm(string_value = "burn_requested")]
    BurnRequested,
    /// Burn confirmed on chain.
    #[sea_orm(string_value = "burned")]
    Burned,
    /// A payout creation may have reached the provider and its answer is not
    /// recorded (about to be sent, sent and lost, timed out, 5xx): a payout
    /// may exist. Left only by the provider's word: its payout (found by
    /// reference, or the creation's answer), or a refusal after it said
    /// there is none.
    #[sea_orm(string_value = "payout_unknown")]
    PayoutUnknown,
    /// The provider accepted the payout (its id recorded).
    #[sea_orm(string_value = "payout_requested")]
    PayoutRequested,
    /// Money paid.
    #[sea_orm(string_value = "paid")]
    Paid,
    /// The burn could not be done; the reservation was released.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// The payout failed for good after the burn; the user was refunded by a mint.
    #[sea_orm(string_value = "refunded")]
    Refunded,
    /// The payout failed for good after the burn; the refund mint is queued
    /// to chain-minter and not yet confirmed.
    #[sea_orm(string_value = "refund_requested")]
    RefundRequested,
}

impl RedemptionState {
    /// Every state, in saga order.
    pub const ALL: [RedemptionState; 9] = [
        RedemptionState::Reserved,
        RedemptionState::BurnRequested,
        RedemptionState::Burned,
        RedemptionState::PayoutUnknown,
        RedemptionState::PayoutRequested,
        RedemptionState::Paid,
        RedemptionState::Failed,
        RedemptionState::RefundRequested,
        RedemptionState::Refunded,
    ];

    /// States a redemption leaves no more: `paid`, `failed`, `refunded`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RedemptionState::Paid | RedemptionState::Failed | RedemptionState::Refunded
        )
    }

    /// The stored name, e.g. `burn_requested`.
    pub fn as_str(self) -> &'static str {
        match self {
            RedemptionState::Reserved => "reserved",
            RedemptionState::BurnRequested => "burn_requested",
            RedemptionState::Burned => "burned",
            RedemptionState::PayoutUnknown => "payout_unknown",
            RedemptionState::PayoutRequested => "payout_requested",
            RedemptionState::Paid => "paid",
            RedemptionState::Failed => "failed",
            RedemptionState::RefundRequested => "refund_requested",
            RedemptionState::Refunded => "refunded",
        }
    }
}

/// A redemption.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "redemptions")]
pub struct Model {
    /// The API's `request_id` (UUIDv7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub request_id: Uuid,
    /// Who redeems.
    pub user_id: Uuid,
    /// The client's idempotency key (unique).
    pub idempotency_key: String,
    /// Amount requested.
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub amount: SignedWei,
    /// Amount burned on chain.
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub burn_amount: SignedWei,
    /// Value paid out (98% of the amount).
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub payout_amount: SignedWei,
    /// How it is paid.
    pub method: WithdrawalMethod,
    /// Where it is paid (crypto address, account reference).
    pub address: Option<String>,
    /// Where it is.
    pub state: RedemptionState,
    /// The burn (`token_transactions.tx_id`).
    pub burn_tx_id: Option<String>,
    /// The payout provider's reference.
    pub payout_reference: Option<String>,
    /// The fiat amount of the payout (exact decimal, e.g. `19.60`), fixed
    /// before the burn is queued: every payout attempt sends this, whatever
    /// the reference value is by then. NULL until fixed.
    pub payout_fiat_amount: Option<String>,
    /// The ISO 4217 currency of [`Model::payout_fiat_amount`].
    pub payout_currency: Option<String>,
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// When requested.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
    /// When paid or failed for good.
    pub completed_at: Option<DateTimeUtc>,
    /// Who asked: the name of the operator's API key (`API_KEYS`). NULL for
    /// rows older than the column.
    pub requested_by: Option<String>,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A redemption to reserve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRedemption {
    /// Who redeems.
    pub user_id: Uuid,
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// Amount requested (and burned).
    pub amount: SignedWei,
    /// Value paid out.
    pub payout_amount: SignedWei,
    /// How it is paid.
    pub method: WithdrawalMethod,
    /// Where it is paid.
    pub address: Option<String>,
    /// Who asked ([`Model::requested_by`]).
    pub requested_by: Option<String>,
}

/// Records a redemption in state `reserved` once per idempotency key:
/// `Some(row)` when this call inserted it, `None` when the key exists (load
/// it with [`find_by_idempotency_key`]). `ON CONFLICT DO NOTHING` keeps the
/// surrounding transaction usable on a duplicate.
pub async fn insert_reserved<C: ConnectionTrait>(
    db: &C,
    new: NewRedemption,
) -> Result<Option<Model>, EntityError> {
    let now = Utc::now();
    let model = Model {
        request_id: Uuid::now_v7(),
        user_id: new.user_id,
        idempotency_key: new.idempotency_key,
        burn_amount: new.amount,
        amount: new.amount,
        payout_amount: new.payout_amount,
        method: new.method,
        address: new.address,
        state: RedemptionState::Reserved,
        burn_tx_id: None,
        payout_reference: None,
        payout_fiat_amount: None,
        payout_currency: None,
        failure_reason: None,
        created_at: now,
        updated_at: now,
        completed_at: None,
        requested_by: new.requested_by,
    };
    let inserted = Entity::insert(ActiveModel {
        request_id: Set(model.request_id),
        user_id: Set(model.user_id),
        idempotency_key: Set(model.idempotency_key.clone()),
        amount: Set(model.amount),
        burn_amount: Set(model.burn_amount),
        payout_amount: Set(model.payout_amount),
        method: Set(model.method),
        address: Set(model.address.clone()),
        state: Set(model.state),
        burn_tx_id: Set(None),
        payout_reference: Set(None),
        payout_fiat_amount: Set(None),
        payout_currency: Set(None),
        failure_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        completed_at: Set(None),
        requested_by: Set(model.requested_by.clone()),
    })
    .on_conflict(
        OnConflict::column(Column::IdempotencyKey)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok((inserted == 1).then_some(model))
}

/// Finds a redemption by the client's idempotency key.
pub async fn find_by_idempotency_key<C: ConnectionTrait>(
    db: &C,
    key: &str,
) -> Result<Option<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::IdempotencyKey.eq(key))
        .one(db)
        .await?)
}

/// What a [`transition`] writes besides the state and `updated_at`; `None`
/// leaves a column as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The burn's `token_transactions.tx_id` (it must exist: foreign key).
    pub burn_tx_id: Option<String>,
    /// The payout provider's id of the payout.
    pub payout_reference: Option<String>,
    /// Why the redemption failed or was refunded.
    pub failure_reason: Option<String>,
    /// The payout's fiat amount and currency, fixed once.
    pub payout_terms: Option<PayoutTerms>,
    /// Sets `completed_at` (a terminal state).
    pub completed: bool,
}

/// What a payout is paid in: fixed once per redemption
/// ([`Model::payout_fiat_amount`], [`Model::payout_currency`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutTerms {
    /// Exact decimal amount, e.g. `19.60`.
    pub fiat_amount: String,
    /// ISO 4217 code.
    pub currency: String,
}

impl Model {
    /// The payout terms fixed for this redemption, if they are.
    pub fn payout_terms(&self) -> Option<PayoutTerms> {
        Some(PayoutTerms {
            fiat_amount: self.payout_fiat_amount.clone()?,
            currency: self.payout_currency.clone()?,
        })
    }
}

/// Fixes the payout terms of a redemption that has none yet (one recorded
/// before they were stored); a redemption that has them keeps them. Returns
/// the terms it holds afterwards, which every payout attempt sends.
pub async fn fix_payout_terms<C: ConnectionTrait>(
    db: &C,
    request_id: Uuid,
    terms: PayoutTerms,
) -> Result<Option<PayoutTerms>, EntityError> {
    Entity::update_many()
        .set(ActiveModel {
            payout_fiat_amount: Set(Some(terms.fiat_amount)),
            payout_currency: Set(Some(terms.currency)),
            ..Default::default()
        })
        .filter(Column::RequestId.eq(request_id))
        .filter(Column::PayoutFiatAmount.is_null())
        .exec(db)
        .await?;
    Ok(Entity::find_by_id(request_id)
        .one(db)
        .await?
        .and_then(|row| row.payout_terms()))
}

/// Moves redemption `request_id` from state `from` to `to` with `changes`.
/// Conditional on the current state (`UPDATE ... WHERE state = from`), so of
/// two concurrent callers (redeliveries, replicas) exactly one gets `true`;
/// the other changed nothing and should read the row again.
pub async fn transition<C: ConnectionTrait>(
    db: &C,
    request_id: Uuid,
    from: RedemptionState,
    to: RedemptionState,
    changes: Changes,
) -> Result<bool, EntityError> {
    let now = Utc::now();
    let mut change = ActiveModel {
        state: Set(to),
        updated_at: Set(now),
        ..Default::default()
    };
    if let Some(tx_id) = changes.burn_tx_id {
        change.burn_tx_id = Set(Some(tx_id));
    }
    if let Some(reference) = changes.payout_reference {
        change.payout_reference = Set(Some(reference));
    }
    if let Some(reason) = changes.failure_reason {
        change.failure_reason = Set(Some(reason));
    }
    if let Some(terms) = changes.payout_terms {
        change.payout_fiat_amount = Set(Some(terms.fiat_amount));
        change.payout_currency = Set(Some(terms.currency));
    }
    if changes.completed {
        change.completed_at = Set(Some(now));
    }
    let updated = Entity::update_many()
        .set(change)
        .filter(Column::RequestId.eq(request_id))
        .filter(Column::State.eq(from))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Sets `updated_at` to now (and `failure_reason` when given) while the
/// redemption is still in `state`: a step that is waiting on someone else
/// (a payout the provider has not settled) records that it looked.
pub async fn touch<C: ConnectionTrait>(
    db: &C,
    request_id: Uuid,
    state: RedemptionState,
    failure_reason: Option<String>,
) -> Result<bool, EntityError> {
    let mut change = ActiveModel {
        updated_at: Set(Utc::now()),
        ..Default::default()
    };
    if let Some(reason) = failure_reason {
        change.failure_reason = Set(Some(reason));
    }
    let updated = Entity::update_many()
        .set(change)
        .filter(Column::RequestId.eq(request_id))
        .filter(Column::State.eq(state))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Redemptions in one of `states` not changed since `before`, least
/// recently changed first, at most `limit` (served by
/// `redemptions_state_updated_at_idx`): what a recovery sweep resumes.
pub async fn stale<C: ConnectionTrait>(
    db: &C,
    states: &[RedemptionState],
    before: DateTimeUtc,
    limit: u64,
) -> Result<Vec<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::State.is_in(states.iter().copied()))
        .filter(Column::UpdatedAt.lt(before))
        .order_by_asc(Column::UpdatedAt)
        .order_by_asc(Column::RequestId)
        .limit(limit)
        .all(db)
        .await?)
}

/// How many redemptions in `states` have not changed since `before`.
pub async fn count_stale<C: ConnectionTrait>(
    db: &C,
    states: &[RedemptionState],
    before: DateTimeUtc,
) -> Result<u64, EntityError> {
    Ok(Entity::find()
        .filter(Column::State.is_in(states.iter().copied()))
        .filter(Column::UpdatedAt.lt(before))
        .count(db)
        .await?)
}

/// The KYC rule of redemptions: a user who is not KYC-verified may redeem at
/// most `threshold` within any `window`, however the amount is split.
/// webhook-ingress applies it when it reserves a redemption, and
/// redemption-payout again before the burn (KYC may have been revoked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KycRule {
    /// Most an unverified user redeems within the window.
    pub threshold: Wei,
    /// The rolling window.
    pub window: Duration,
}

impl KycRule {
    /// Whether the user's redemptions within the window ending now (see
    /// [`total_since`]) exceed the threshold. `also` is counted too when it
    /// was recorded before the window: a redemption being checked again
    /// long after it was accepted still counts itself.
    pub async fn exceeded<C: ConnectionTrait>(
        &self,
        db: &C,
        user_id: Uuid,
        also: Option<&Model>,
    ) -> Result<bool, EntityError> {
        let since = chrono::Duration::from_std(self.window)
            .ok()
            .and_then(|window| Utc::now().checked_sub_signed(window))
            .unwrap_or(DateTimeUtc::MIN_UTC);
        let mut total = total_since(db, user_id, since).await?;
        if let Some(redemption) = also.filter(|r| r.created_at < since) {
            total = total.checked_add(redemption.amount).ok_or_else(|| {
                EntityError::Corrupt(format!("user {user_id}'s redemptions overflow"))
            })?;
        }
        // A negative or absent total is not over any threshold.
        Ok(u128::try_from(total.get()).is_ok_and(|wei| wei > self.threshold.as_wei()))
    }

    /// The window in words, for refusals: `30 days`, `12 hours`,
    /// `90 minutes`, `45 seconds`.
    pub fn window_in_words(&self) -> String {
        match self.window.as_secs() {
            s if s >= 86_400 && s % 86_400 == 0 => format!("{} days", s / 86_400),
            s if s >= 3_600 && s % 3_600 == 0 => format!("{} hours", s / 3_600),
            s if s >= 60 && s % 60 == 0 => format!("{} minutes", s / 60),
            s => format!("{s} seconds"),
        }
    }
}

/// The sum of a user's redemptions recorded at or after `since` that have
/// paid or may still pay (every state but `failed` and `refunded`): what a
/// rolling KYC threshold is checked against. Summed exactly here, not in
/// SQL (amounts are decimal text); a user has few redemptions in a window.
pub async fn total_since<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    since: DateTimeUtc,
) -> Result<SignedWei, EntityError> {
    let amounts: Vec<SignedWei> = Entity::find()
        .select_only()
        .column(Column::Amount)
        .filter(Column::UserId.eq(user_id))
        .filter(Column::CreatedAt.gte(since))
        .filter(Column::State.is_not_in([RedemptionState::Failed, RedemptionState::Refunded]))
        .into_tuple()
        .all(db)
        .await?;
    amounts
        .into_iter()
        .try_fold(SignedWei::ZERO, SignedWei::checked_add)
        .ok_or_else(|| EntityError::Corrupt(format!("user {user_id}'s redemptions overflow")))
}

/// How many redemptions are in each state (states with none are left out).
pub async fn count_by_state<C: ConnectionTrait>(
    db: &C,
) -> Result<Vec<(RedemptionState, i64)>, EntityError> {
    Ok(Entity::find()
        .select_only()
        .column(Column::State)
        .column_as(Column::RequestId.count(), "n")
        .group_by(Column::State)
        .into_tuple::<(RedemptionState, i64)>()
        .all(db)
        .await?)
}

/// The total amount of the redemptions in `states` (summed here, exactly;
/// never in SQL) and how many there are.
pub async fn total_in<C: ConnectionTrait>(
    db: &C,
    states: &[RedemptionState],
) -> Result<(u64, SignedWei), EntityError> {
    let rows = Entity::find()
        .filter(Column::State.is_in(states.iter().copied()))
        .all(db)
        .await?;
    let mut total = SignedWei::ZERO;
    for row in &rows {
        total = total
            .checked_add(row.amount)
            .ok_or_else(|| EntityError::Corrupt("redemption amounts overflow".into()))?;
    }
    Ok((rows.len() as u64, total))
}
