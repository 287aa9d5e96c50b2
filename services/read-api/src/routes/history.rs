//! `GET /token/transactions/{tx_id}` and `GET /token/redemptions/{request_id}`:
//! what happened to one mint, burn or redemption, for the partners and
//! support staff who are asked about one event.
//!
//! A transaction answers its status, chain transaction and block, reason,
//! who asked and the steps it went through; a redemption every state it
//! entered (kept by the database as the state changes), its burn, payout id
//! and refund. Both list the ledger movements they posted. Amounts are exact
//! decimals of HNV, as everywhere else. Why a step failed is left out: the
//! stored text may quote a node's or a provider's error, which is for
//! operators (`havenctl show`), not for every reader.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use haven_common::money::Wei;
use haven_common::openapi::{Detail, HnvAmount};
use haven_entity::ledger_entries::AccountKind;
use haven_entity::ledger_movements::MovementKind;
use haven_entity::redemptions::WithdrawalMethod;
use haven_entity::token_transactions::{self, TxType as StoredType};
use haven_entity::{EntityError, SignedWei};
use serde::Serialize;
use utoipa::ToSchema;

use super::analytics::{TxStatus, TxType};
use super::extract::{RequestId, TxId};
use super::state::AppState;
use crate::error::Error;
use crate::store::{MovementRecord, RedemptionRecord, TransactionRecord};

/// Tag of these routes.
pub const TAG: &str = "history";

/// A step of a token transaction or a state of a redemption, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Step {
    /// A transaction's: `accepted` (the webhook or command it carries out),
    /// `recorded`, `submitted` (sent to the chain), `confirmed`, `final`
    /// (buried under CHAIN_FINALITY_DEPTH blocks), `failed`, `cancelled`.
    /// A redemption's: `reserved`, `burn_requested`, `burned`,
    /// `payout_unknown`, `payout_requested`, `paid`, `failed`,
    /// `refund_requested`, `refunded`.
    #[schema(example = "confirmed")]
    pub state: String,
    /// When it was entered.
    #[schema(value_type = String, format = DateTime)]
    pub at: DateTime<Utc>,
}

/// A ledger movement: tokens moved between accounts, entries summing to zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LedgerMovement {
    /// Unique reference, e.g. `reserve:<request_id>` or `mint:<id>`.
    pub reference: String,
    /// `mint`, `reserve`, `release`, `burn`, `payout`, `reversal` or `adjustment`.
    #[schema(example = "reserve")]
    pub kind: String,
    /// Tokens moved.
    #[schema(value_type = HnvAmount)]
    pub amount: Wei,
    /// Accounts taken from: `supply`, `user_available`, `user_reserved`, `burned`, `payout`.
    pub from: Vec<String>,
    /// Accounts credited.
    pub to: Vec<String>,
    /// When it was posted.
    #[schema(value_type = String, format = DateTime)]
    pub posted_at: DateTime<Utc>,
}

/// A mint or burn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TokenTransaction {
    /// Its id: the operator's idempotency key, or the services' own
    /// (`reward_<id>`, `redemption_<id>`, `refund_<id>`, `reversal_<id>`).
    #[schema(example = "mint_key_1")]
    pub tx_id: String,
    /// The partners' id of the user.
    pub user_id: String,
    /// Mint or burn.
    pub tx_type: TxType,
    /// Amount.
    #[schema(value_type = HnvAmount)]
    pub amount: Wei,
    /// Why: booking, review, redemption, refund, reversal, or the operator's reason.
    pub reason: String,
    /// Where it is (`submitted` shows as `pending` with `blockchain_tx` set).
    pub status: TxStatus,
    /// The chain transaction's hash once sent.
    pub blockchain_tx: Option<String>,
    /// The block it was mined in, once confirmed.
    pub block_number: Option<u64>,
    /// Whether it is buried under CHAIN_FINALITY_DEPTH blocks (a payout
    /// follows only a final burn).
    #[serde(rename = "final")]
    pub is_final: bool,
    /// How many times a reorganisation removed it after it was confirmed
    /// (each time it was sent again with the same reference).
    pub reorgs: u32,
    /// Who asked: the name of the operator's API key, for an operator's
    /// mint and a redemption's burn and refund; `null` for what the
    /// services do on their own (a reward, a reversal).
    pub requested_by: Option<String>,
    /// The redemption it is the burn or the refund of.
    #[schema(value_type = Option<String>, format = "uuid")]
    pub redemption_id: Option<uuid::Uuid>,
    /// The steps it went through, oldest first.
    pub history: Vec<Step>,
    /// The ledger movement its confirmation posted.
    pub ledger_movements: Vec<LedgerMovement>,
}

/// A redemption's burn or refund, in short.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainStep {
    /// The token transaction (`GET /token/transactions/{tx_id}` tells more).
    pub tx_id: String,
    /// Amount.
    #[schema(value_type = HnvAmount)]
    pub amount: Wei,
    /// Where it is.
    pub status: TxStatus,
    /// The chain transaction's hash once sent.
    pub blockchain_tx: Option<String>,
    /// The block it was mined in.
    pub block_number: Option<u64>,
    /// Buried under CHAIN_FINALITY_DEPTH blocks.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// When it was confirmed.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// How a redemption is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// To the user's bank account.
    BankTransfer,
    /// To the user's PayPal account.
    Paypal,
    /// To an address on chain.
    Crypto,
}

/// A redemption and everything it led to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Redemption {
    /// Its id.
    #[schema(value_type = String, format = "uuid")]
    pub request_id: uuid::Uuid,
    /// The partners' id of the user.
    pub user_id: String,
    /// HNV redeemed.
    #[schema(value_type = HnvAmount, example = 500.0)]
    pub amount: Wei,
    /// Burned on chain: the whole amount.
    #[schema(value_type = HnvAmount, example = 500.0)]
    pub burn_amount: Wei,
    /// Paid out: 98 % of the amount.
    #[schema(value_type = HnvAmount, example = 490.0)]
    pub payout_amount: Wei,
    /// The 2 % fee: burned, not paid out.
    #[schema(value_type = HnvAmount, example = 10.0)]
    pub fee_amount: Wei,
    /// How it is paid.
    pub withdrawal_method: Method,
    /// Where it is now (the last of `history`).
    #[schema(example = "paid")]
    pub state: String,
    /// Who asked: the name of the operator's API key (`null` for
    /// redemptions recorded before names were kept).
    pub requested_by: Option<String>,
    /// Every state it entered, oldest first.
    pub history: Vec<Step>,
    /// Its burn, once requested.
    pub burn: Option<ChainStep>,
    /// The payout provider's id of the payout, once it accepted it.
    pub payout_id: Option<String>,
    /// The payout's fiat amount, an exact decimal (e.g. `"49.00"`), fixed
    /// when the burn was queued.
    pub payout_fiat_amount: Option<String>,
    /// Its ISO 4217 currency.
    pub payout_currency: Option<String>,
    /// The mint that gave the tokens back when the payout was refused after
    /// the burn.
    pub refund: Option<ChainStep>,
    /// Its ledger movements, oldest first.
    pub ledger_movements: Vec<LedgerMovement>,
    /// When it was requested.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When it ended (`paid`, `failed` or `refunded`).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<DateTime<Utc>>,
}

/// One mint or burn.
#[utoipa::path(
    get,
    path = "/token/transactions/{tx_id}",
    tag = TAG,
    summary = "What happened to one mint or burn",
    description = "Its status, chain transaction and block, reason, who asked (the operator's API key name), the steps it went through from the webhook or command it carries out, the redemption it belongs to and its ledger movement.",
    params(("tx_id" = String, Path, description = "The transaction's id (1 to 255 characters): an operator's idempotency key, or `reward_<id>`, `redemption_<id>`...", example = "mint_key_1")),
    responses(
        (status = 200, description = "The transaction", body = TokenTransaction),
        (status = 404, description = "`Transaction not found`", body = Detail),
        (status = 422, description = "A malformed tx_id", body = Detail),
        (status = 503, description = "The database is unavailable", body = Detail),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn transaction(
    State(state): State<AppState>,
    TxId(tx_id): TxId,
) -> Result<Json<TokenTransaction>, Error> {
    let record = state
        .store
        .transaction(&tx_id)
        .await?
        .ok_or(Error::TransactionNotFound)?;
    Ok(Json(transaction_body(record)?))
}

/// One redemption.
#[utoipa::path(
    get,
    path = "/token/redemptions/{request_id}",
    tag = TAG,
    summary = "What happened to one redemption",
    description = "Every state it entered and when, who asked, its burn, the payout provider's id, its refund when the payout was refused after the burn, and its ledger movements.",
    params(("request_id" = String, Path, format = "uuid", description = "The redemption's id, as `POST /token/redeem` answered it")),
    responses(
        (status = 200, description = "The redemption", body = Redemption),
        (status = 404, description = "`Redemption not found`", body = Detail),
        (status = 422, description = "A request_id that is not a UUID", body = Detail),
        (status = 503, description = "The database is unavailable", body = Detail),
    )
)]
#[tracing::instrument(skip_all, fields(%request_id))]
pub async fn redemption(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
) -> Result<Json<Redemption>, Error> {
    let record = state
        .store
        .redemption(request_id)
        .await?
        .ok_or(Error::RedemptionNotFound)?;
    Ok(Json(redemption_body(record)?))
}

fn transaction_body(record: TransactionRecord) -> Result<TokenTransaction, Error> {
    let TransactionRecord {
        tx,
        user_id,
        redemption_id,
        movements,
    } = record;
    let mut history = Vec::with_capacity(6);
    let mut step = |state: &str, at: Option<DateTime<Utc>>| {
        if let Some(at) = at {
            history.push(Step {
                state: state.to_owned(),
                at,
            });
        }
    };
    step("accepted", tx.accepted_at);
    step("recorded", Some(tx.created_at));
    step("submitted", tx.submitted_at);
    step("confirmed", tx.confirmed_at);
    step("final", tx.final_at);
    match tx.status {
        token_transactions::TxStatus::Failed => step("failed", Some(tx.updated_at)),
        token_transactions::TxStatus::Cancelled => step("cancelled", Some(tx.updated_at)),
        _ => {}
    }
    Ok(TokenTransaction {
        tx_type: match tx.tx_type {
            StoredType::Mint => TxType::Mint,
            StoredType::Burn => TxType::Burn,
        },
        amount: money(tx.amount)?,
        status: status(tx.status),
        blockchain_tx: tx.tx_hash,
        block_number: block(tx.block_number)?,
        is_final: tx.final_at.is_some(),
        reorgs: u32::try_from(tx.reorgs).unwrap_or_default(),
        requested_by: tx.requested_by,
        redemption_id,
        history,
        ledger_movements: movements
            .into_iter()
            .map(movement)
            .collect::<Result<_, _>>()?,
        tx_id: tx.tx_id,
        user_id,
        reason: tx.reason,
    })
}

fn redemption_body(record: RedemptionRecord) -> Result<Redemption, Error> {
    let RedemptionRecord {
        redemption: r,
        user_id,
        states,
        burn,
        refund,
        movements,
    } = record;
    let burn_amount = money(r.burn_amount)?;
    let payout_amount = money(r.payout_amount)?;
    Ok(Redemption {
        request_id: r.request_id,
        user_id,
        amount: money(r.amount)?,
        fee_amount: burn_amount.checked_sub(payout_amount).unwrap_or(Wei::ZERO),
        burn_amount,
        payout_amount,
        withdrawal_method: match r.method {
            WithdrawalMethod::BankTransfer => Method::BankTransfer,
            WithdrawalMethod::Paypal => Method::Paypal,
            WithdrawalMethod::Crypto => Method::Crypto,
        },
        state: r.state.as_str().to_owned(),
        requested_by: r.requested_by,
        history: states
            .into_iter()
            .map(|s| Step {
                state: s.state.as_str().to_owned(),
                at: s.entered_at,
            })
            .collect(),
        burn: burn.map(chain_step).transpose()?,
        payout_id: r.payout_reference,
        payout_fiat_amount: r.payout_fiat_amount,
        payout_currency: r.payout_currency,
        refund: refund.map(chain_step).transpose()?,
        ledger_movements: movements
            .into_iter()
            .map(movement)
            .collect::<Result<_, _>>()?,
        created_at: r.created_at,
        completed_at: r.completed_at,
    })
}

fn chain_step(tx: token_transactions::Model) -> Result<ChainStep, Error> {
    Ok(ChainStep {
        amount: money(tx.amount)?,
        status: status(tx.status),
        blockchain_tx: tx.tx_hash,
        block_number: block(tx.block_number)?,
        is_final: tx.final_at.is_some(),
        confirmed_at: tx.confirmed_at,
        tx_id: tx.tx_id,
    })
}

fn movement(record: MovementRecord) -> Result<LedgerMovement, Error> {
    let mut amount = Wei::ZERO;
    let (mut from, mut to) = (Vec::new(), Vec::new());
    for (account, change) in record.entries {
        if change.is_positive() {
            amount = amount
                .checked_add(money(change)?)
                .ok_or_else(|| corrupt("a movement's amount overflows"))?;
            to.push(account_name(account).to_owned());
        } else if !change.is_zero() {
            from.push(account_name(account).to_owned());
        }
    }
    Ok(LedgerMovement {
        reference: record.reference,
        kind: movement_kind(record.kind).to_owned(),
        amount,
        from,
        to,
        posted_at: record.posted_at,
    })
}

/// SPEC.md's status of a stored one, as the history answers it.
fn status(stored: token_transactions::TxStatus) -> TxStatus {
    use token_transactions::TxStatus as Stored;
    match stored {
        Stored::Pending | Stored::Submitted => TxStatus::Pending,
        Stored::Confirmed => TxStatus::Confirmed,
        Stored::Failed => TxStatus::Failed,
        Stored::Cancelled => TxStatus::Cancelled,
    }
}

fn account_name(account: AccountKind) -> &'static str {
    match account {
        AccountKind::Supply => "supply",
        AccountKind::Burned => "burned",
        AccountKind::Payout => "payout",
        AccountKind::UserAvailable => "user_available",
        AccountKind::UserReserved => "user_reserved",
    }
}

fn movement_kind(kind: MovementKind) -> &'static str {
    match kind {
        MovementKind::Mint => "mint",
        MovementKind::Reserve => "reserve",
        MovementKind::Release => "release",
        MovementKind::Burn => "burn",
        MovementKind::Payout => "payout",
        MovementKind::Reversal => "reversal",
        MovementKind::Adjustment => "adjustment",
    }
}

fn block(stored: Option<i64>) -> Result<Option<u64>, Error> {
    stored
        .map(|n| u64::try_from(n).map_err(|_| corrupt("a negative block number")))
        .transpose()
}

/// A stored amount (never negative) as the API's exact decimal.
fn money(wei: SignedWei) -> Result<Wei, Error> {
    u128::try_from(wei.get())
        .map(Wei::from_wei)
        .map_err(|_| corrupt("a negative amount"))
}

fn corrupt(what: &str) -> Error {
    Error::Store(EntityError::Corrupt(what.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_movement_is_its_credited_amount_from_its_debited_accounts() {
        let record = MovementRecord {
            reference: "payout:x".into(),
            kind: MovementKind::Payout,
            posted_at: Utc::now(),
            entries: vec![
                (AccountKind::Burned, SignedWei::new(-196)),
                (AccountKind::Payout, SignedWei::new(196)),
            ],
        };
        let body = movement(record).unwrap();
        assert_eq!(body.amount, Wei::from_wei(196));
        assert_eq!(
            (body.from, body.to),
            (vec!["burned".to_owned()], vec!["payout".to_owned()])
        );
        assert_eq!(body.kind, "payout");
        assert!(block(Some(-1)).is_err());
        assert!(money(SignedWei::new(-1)).is_err());
    }
}
