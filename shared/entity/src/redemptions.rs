//! `redemptions`: a user turning tokens into money: reserve, burn, pay out.

use sea_orm::entity::prelude::*;

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

/// Where a redemption is. Stored as text without a CHECK so the payout
/// issue can refine the states with a code change only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum RedemptionState {
    /// Accepted, balance reserved.
    #[sea_orm(string_value = "reserved")]
    Reserved,
    /// Burn sent to the chain.
    #[sea_orm(string_value = "burning")]
    Burning,
    /// Burn confirmed.
    #[sea_orm(string_value = "burned")]
    Burned,
    /// Payout sent to the provider.
    #[sea_orm(string_value = "paying")]
    Paying,
    /// Money paid.
    #[sea_orm(string_value = "paid")]
    Paid,
    /// Gave up; the reservation was released.
    #[sea_orm(string_value = "failed")]
    Failed,
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
