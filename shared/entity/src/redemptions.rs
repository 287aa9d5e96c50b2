//! `redemptions`: a user turning tokens into money: reserve, burn, pay out.

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;

use crate::error::EntityError;
use crate::wei::Wei;

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
/// `burned` -> `payout_requested` -> `paid`, or `failed` / `refunded`).
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
    /// Payout sent to the provider.
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
    pub amount: Wei,
    /// Amount burned on chain.
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub burn_amount: Wei,
    /// Value paid out (98% of the amount).
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub payout_amount: Wei,
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
    /// Why it failed.
    pub failure_reason: Option<String>,
    /// When requested.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
    /// When paid or failed for good.
    pub completed_at: Option<DateTimeUtc>,
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
    pub amount: Wei,
    /// Value paid out.
    pub payout_amount: Wei,
    /// How it is paid.
    pub method: WithdrawalMethod,
    /// Where it is paid.
    pub address: Option<String>,
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
        failure_reason: None,
        created_at: now,
        updated_at: now,
        completed_at: None,
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
        failure_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        completed_at: Set(None),
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
