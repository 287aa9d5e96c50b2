//! One token transaction or one redemption with everything stored about it
//! (`GET /token/transactions/{tx_id}`, `GET /token/redemptions/{request_id}`):
//! the row, its user, the redemption it belongs to or the burn and refund
//! it led to, its states and its ledger movements.
//!
//! Read through the entities: a handful of look-ups by unique or indexed
//! key, asked about one event at a time (support, a partner's question),
//! not the hot path the hand-written statements of `queries` serve.

use chrono::{DateTime, Utc};
use haven_entity::ledger_entries::{self, AccountKind};
use haven_entity::ledger_movements::{self, MovementKind};
use haven_entity::redemptions::{self, RedemptionState};
use haven_entity::token_transactions::{self, TxType};
use haven_entity::{EntityError, SignedWei, redemption_states, users};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

/// Start of the `tx_id` of a redemption's refund mint, followed by the
/// redemption's id (redemption-payout's `refund_tx_id`).
pub const REFUND_TX_PREFIX: &str = "refund_";

/// A token transaction and what it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord {
    /// The row.
    pub tx: token_transactions::Model,
    /// The partners' id of its user.
    pub user_id: String,
    /// The redemption it is the burn or the refund of.
    pub redemption_id: Option<Uuid>,
    /// The ledger movement its confirmation posted (none before).
    pub movements: Vec<MovementRecord>,
}

/// A redemption and everything it led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedemptionRecord {
    /// The row.
    pub redemption: redemptions::Model,
    /// The partners' id of its user.
    pub user_id: String,
    /// Every state it entered, oldest first.
    pub states: Vec<redemption_states::Model>,
    /// Its burn, once requested.
    pub burn: Option<token_transactions::Model>,
    /// The mint refunding it, when its payout was refused after the burn.
    pub refund: Option<token_transactions::Model>,
    /// Its ledger movements, oldest first: the reservation, the burn, then
    /// the payout, the release or the refund.
    pub movements: Vec<MovementRecord>,
}

/// A ledger movement with its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementRecord {
    /// Its unique reference, e.g. `reserve:<request_id>`.
    pub reference: String,
    /// What it records.
    pub kind: MovementKind,
    /// When it was posted.
    pub posted_at: DateTime<Utc>,
    /// Its entries: the account and the signed change (they sum to zero).
    pub entries: Vec<(AccountKind, SignedWei)>,
}

/// The ledger reference chain-minter posts when it confirms `tx`.
fn confirmation_reference(tx: &token_transactions::Model) -> String {
    match tx.tx_type {
        TxType::Mint => format!("mint:{}", tx.id),
        TxType::Burn => format!("burn:{}", tx.id),
    }
}

/// The token transaction whose API id is `tx_id`.
pub async fn transaction<C: ConnectionTrait>(
    db: &C,
    tx_id: &str,
) -> Result<Option<TransactionRecord>, EntityError> {
    let Some(tx) = token_transactions::find_by_tx_id(db, tx_id).await? else {
        return Ok(None);
    };
    let user_id = external_id(db, tx.user_id).await?;
    let redemption_id = match tx.tx_type {
        // A redemption's burn: the redemption points at it (one of the
        // user's, through the user's index).
        TxType::Burn => redemptions::Entity::find()
            .filter(redemptions::Column::UserId.eq(tx.user_id))
            .filter(redemptions::Column::BurnTxId.eq(tx.tx_id.as_str()))
            .one(db)
            .await?
            .map(|r| r.request_id),
        // A refund's `tx_id` names its redemption; checked, not trusted.
        TxType::Mint => match refunded(&tx.tx_id) {
            Some(id) => redemptions::Entity::find_by_id(id)
                .one(db)
                .await?
                .filter(|r| r.user_id == tx.user_id)
                .map(|r| r.request_id),
            None => None,
        },
    };
    let movements = movements(db, &[confirmation_reference(&tx)]).await?;
    Ok(Some(TransactionRecord {
        tx,
        user_id,
        redemption_id,
        movements,
    }))
}

/// The redemption `request_id`.
pub async fn redemption<C: ConnectionTrait>(
    db: &C,
    request_id: Uuid,
) -> Result<Option<RedemptionRecord>, EntityError> {
    let Some(redemption) = redemptions::Entity::find_by_id(request_id).one(db).await? else {
        return Ok(None);
    };
    let user_id = external_id(db, redemption.user_id).await?;
    let states = redemption_states::history(db, request_id).await?;
    let burn = match &redemption.burn_tx_id {
        Some(tx_id) => token_transactions::find_by_tx_id(db, tx_id).await?,
        None => None,
    };
    // Only a redemption refused after its burn has a refund.
    let refund = if matches!(
        redemption.state,
        RedemptionState::RefundRequested | RedemptionState::Refunded
    ) {
        token_transactions::find_by_tx_id(db, &format!("{REFUND_TX_PREFIX}{request_id}"))
            .await?
            .filter(|tx| tx.user_id == redemption.user_id)
    } else {
        None
    };
    let mut references = vec![
        format!("reserve:{request_id}"),
        format!("release:{request_id}"),
        format!("payout:{request_id}"),
    ];
    references.extend(burn.iter().chain(&refund).map(confirmation_reference));
    let movements = movements(db, &references).await?;
    Ok(Some(RedemptionRecord {
        redemption,
        user_id,
        states,
        burn,
        refund,
        movements,
    }))
}

/// The redemption a refund mint's `tx_id` names.
fn refunded(tx_id: &str) -> Option<Uuid> {
    tx_id.strip_prefix(REFUND_TX_PREFIX)?.parse().ok()
}

async fn external_id<C: ConnectionTrait>(db: &C, user: Uuid) -> Result<String, EntityError> {
    users::Entity::find_by_id(user)
        .one(db)
        .await?
        .map(|u| u.external_id)
        .ok_or_else(|| EntityError::Corrupt(format!("user {user} of a stored row is missing")))
}

/// The movements posted under `references` (unique), oldest first, with
/// their entries.
async fn movements<C: ConnectionTrait>(
    db: &C,
    references: &[String],
) -> Result<Vec<MovementRecord>, EntityError> {
    let found = ledger_movements::Entity::find()
        .filter(ledger_movements::Column::Reference.is_in(references.iter().map(String::as_str)))
        .order_by_asc(ledger_movements::Column::CreatedAt)
        .order_by_asc(ledger_movements::Column::Id)
        .all(db)
        .await?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let entries = ledger_entries::Entity::find()
        .filter(ledger_entries::Column::MovementId.is_in(found.iter().map(|m| m.id)))
        .order_by_asc(ledger_entries::Column::Id)
        .all(db)
        .await?;
    Ok(found
        .into_iter()
        .map(|movement| MovementRecord {
            entries: entries
                .iter()
                .filter(|e| e.movement_id == movement.id)
                .map(|e| (e.account, e.amount))
                .collect(),
            reference: movement.reference,
            kind: movement.kind,
            posted_at: movement.created_at,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refund_tx_id_names_a_redemption() {
        let id = Uuid::now_v7();
        assert_eq!(refunded(&format!("refund_{id}")), Some(id));
        assert_eq!(refunded(&format!("redemption_{id}")), None);
        assert_eq!(refunded("refund_nope"), None);
        assert_eq!(refunded("mint_key_1"), None);
    }
}
