//! What chain-minter writes to the database, each step one statement or one
//! transaction, each safe to repeat.
//!
//! The status contract with the services that queue work:
//! - `pending` -> `submitted`: chain-minter claims a row right before sending
//!   it (a conditional update, so a row cancelled meanwhile is never sent).
//! - `pending` -> `cancelled`: reward-calculator withdraws a mint not yet claimed.
//! - `submitted` -> `confirmed`: mined under the configured confirmations,
//!   recorded with its ledger movement and a `confirmed` event in one transaction.
//! - `pending`/`submitted` -> `failed`: can never succeed (dead-lettered).

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use haven_common::db::begin_write;
use haven_common::telemetry::TraceHeaders;
use haven_entity::ledger::{self, Account, Movement};
use haven_entity::ledger_movements::MovementKind;
use haven_entity::rewards::{self, RewardStatus};
use haven_entity::token_transactions::{self, TxStatus};
use haven_entity::{EntityError, SignedWei, clawbacks};
use haven_messages::{ChainEvent, ChainRequest, Envelope, REFUND_REASON, TxConfirmed, TxFailed};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveEnum, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryTrait,
};
use uuid::Uuid;

use super::Request;

/// Ids per `IN` list: far below the bind-parameter limits of PostgreSQL
/// and SQLite.
const ROWS_PER_STATEMENT: usize = 500;

/// Claims the rows among `ids` that are `pending` (marks them `submitted`)
/// and returns every row asked for, so the caller sees which were cancelled,
/// failed or confirmed meanwhile. Rows already `submitted` (a redelivery
/// after a crash) are returned as they are and sent again: their on-chain
/// reference makes the resend a no-op if the first send landed.
pub async fn claim(
    db: &DatabaseConnection,
    ids: &[Uuid],
) -> Result<Vec<token_transactions::Model>, EntityError> {
    token_transactions::Entity::update_many()
        .col_expr(
            token_transactions::Column::Status,
            Expr::value(TxStatus::Submitted.to_value()),
        )
        .col_expr(
            token_transactions::Column::UpdatedAt,
            Expr::value(Utc::now()),
        )
        .filter(token_transactions::Column::Id.is_in(ids.iter().copied()))
        .filter(token_transactions::Column::Status.eq(TxStatus::Pending))
        .exec(db)
        .await?;
    Ok(token_transactions::Entity::find()
        .filter(token_transactions::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// Records the hash a claimed batch was broadcast with.
pub async fn sent(db: &DatabaseConnection, ids: &[Uuid], tx_hash: &str) -> Result<(), EntityError> {
    let now = Utc::now();
    token_transactions::Entity::update_many()
        .col_expr(token_transactions::Column::TxHash, Expr::value(tx_hash))
        .col_expr(token_transactions::Column::SubmittedAt, Expr::value(now))
        .col_expr(token_transactions::Column::UpdatedAt, Expr::value(now))
        .filter(token_transactions::Column::Id.is_in(ids.iter().copied()))
        .filter(token_transactions::Column::Status.eq(TxStatus::Submitted))
        .exec(db)
        .await?;
    Ok(())
}

/// Where a confirmed request landed.
#[derive(Debug, Clone)]
pub struct Landed {
    /// Hash of the mined transaction.
    pub tx_hash: String,
    /// Its block.
    pub block_number: u64,
}

/// What [`confirmed`] recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Requests this call marked confirmed (not those found so already).
    pub confirmed: usize,
    /// `confirmed` events it queued, for the caller to wake the relay.
    pub announced: usize,
}

/// Whether another service waits on this confirmation: redemption-payout
/// on a redemption's burn and on a refund's mint. Every other one (a
/// reward's mint, nearly all of them) is in the ledger and announced to no
/// one: a message per mint that nobody acts on would be queued, published,
/// stored and delivered for nothing.
fn awaited(request: &Request, row: &token_transactions::Model) -> bool {
    request.redemption_id().is_some()
        || (matches!(request, Request::Mint { .. }) && row.reason == REFUND_REASON)
}

/// In one transaction: marks `requests` confirmed where each landed, posts their ledger
/// movements (moving the balances), marks paid rewards `minted`, and queues
/// a `confirmed` event for each one someone waits on ([`awaited`]).
/// Repeating it changes nothing: the status update is conditional and
/// ledger movements are posted once per reference.
///
/// A batch is recorded in a number of statements that does not grow with
/// its size: one conditional update marks the rows of each chain
/// transaction the batch landed in (its own; an earlier run's for
/// references that one had used), and the ledger posts all movements at
/// once, moving every user's balances in one write and the shared
/// supply/burned accounts last (see `ledger::post_many`), so concurrent
/// batches wait on each other only for their commits.
pub async fn confirmed(
    db: &DatabaseConnection,
    requests: &[(&Request, Landed, TraceHeaders)],
    final_now: bool,
) -> Result<Recorded, EntityError> {
    let txn = begin_write(db).await?;
    let now = Utc::now();
    let ids: Vec<Uuid> = requests
        .iter()
        .map(|(request, _, _)| request.tx_id())
        .collect();
    let rows: HashMap<Uuid, token_transactions::Model> = token_transactions::Entity::find()
        .filter(token_transactions::Column::Id.is_in(ids.iter().copied()))
        .all(&txn)
        .await?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();

    // The rows to mark, grouped by where they landed (a batch's own
    // transaction, or an earlier run's for references it had used), each
    // row once: a redelivered copy of a request in the same batch is
    // recorded at its first occurrence, as it is announced.
    let mut landings: Vec<(&Landed, i64, Vec<Uuid>)> = Vec::new();
    let mut grouped = HashSet::new();
    for (request, landed, _) in requests {
        let block = i64::try_from(landed.block_number)
            .map_err(|_| EntityError::Corrupt(format!("block number {}", landed.block_number)))?;
        let Some(row) = rows.get(&request.tx_id()) else {
            return Err(EntityError::Corrupt(format!(
                "token transaction {} vanished",
                request.tx_id()
            )));
        };
        if row.status == TxStatus::Confirmed || !grouped.insert(row.id) {
            continue;
        }
        match landings
            .iter_mut()
            .find(|(at, at_block, _)| at.tx_hash == landed.tx_hash && *at_block == block)
        {
            Some((_, _, ids)) => ids.push(row.id),
            None => landings.push((landed, block, vec![row.id])),
        }
    }
    let mut marked = HashSet::new();
    for (landed, block, ids) in &landings {
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut update = token_transactions::Entity::update_many()
                .col_expr(
                    token_transactions::Column::Status,
                    Expr::value(TxStatus::Confirmed.to_value()),
                )
                .col_expr(
                    token_transactions::Column::TxHash,
                    Expr::value(landed.tx_hash.clone()),
                )
                .col_expr(token_transactions::Column::BlockNumber, Expr::value(*block))
                .col_expr(token_transactions::Column::ConfirmedAt, Expr::value(now))
                .col_expr(
                    token_transactions::Column::FinalAt,
                    Expr::value(final_now.then_some(now)),
                )
                .col_expr(token_transactions::Column::UpdatedAt, Expr::value(now))
                .filter(token_transactions::Column::Id.is_in(chunk.iter().copied()))
                // Re-checked under the row lock: a racing confirmation of the
                // same request (a redelivered copy in another batch, the
                // start-up reconciliation) that committed first wins, and this
                // one must not announce it again. RETURNING tells which rows
                // this one marked.
                .filter(token_transactions::Column::Status.ne(TxStatus::Confirmed))
                .into_query();
            update.returning_col(token_transactions::Column::Id);
            for row in txn.query_all(&update).await? {
                marked.insert(row.try_get::<Uuid>("", "id")?);
            }
        }
    }

    let mut movements = Vec::with_capacity(marked.len());
    let mut minted_tx_ids = Vec::new();
    let mut events = Vec::with_capacity(marked.len());
    for (request, landed, trace) in requests {
        // `remove`: a copy of the request later in the batch is not
        // announced again.
        if !marked.remove(&request.tx_id()) {
            continue;
        }
        let Some(row) = rows.get(&request.tx_id()) else {
            continue;
        };
        movements.push(movement(request, row.user_id, row.amount)?);
        if matches!(request, Request::Mint { .. }) {
            minted_tx_ids.push(row.tx_id.clone());
        }
        if !awaited(request, row) {
            continue;
        }
        let event = Envelope::new(ChainEvent::Confirmed(TxConfirmed {
            tx_id: row.id,
            tx_type: request.tx_type(),
            user_id: request.user_id().to_owned(),
            amount_wei: request.amount_wei(),
            tx_hash: landed.tx_hash.clone(),
            block_number: landed.block_number,
            redemption_id: request.redemption_id(),
        }));
        // Each request's own trace: a batch answers several.
        events.push((event, trace.clone()));
    }
    if movements.is_empty() {
        txn.commit().await?;
        return Ok(Recorded::default());
    }
    for chunk in minted_tx_ids.chunks(ROWS_PER_STATEMENT) {
        rewards::Entity::update_many()
            .col_expr(
                rewards::Column::Status,
                Expr::value(RewardStatus::Minted.to_value()),
            )
            .col_expr(rewards::Column::UpdatedAt, Expr::value(now))
            .filter(rewards::Column::TokenTxId.is_in(chunk.iter().cloned()))
            .filter(rewards::Column::Status.eq(RewardStatus::Pending))
            .exec(&txn)
            .await?;
    }
    let announced = if events.is_empty() {
        0
    } else {
        haven_outbox::enqueue_many_traced(&txn, &events)
            .await
            .map_err(outbox_error)?
    };
    // Last: it takes the supply and burned rows every batch needs.
    ledger::post_many(&txn, &movements).await?;
    txn.commit().await?;
    Ok(Recorded {
        confirmed: movements.len(),
        announced,
    })
}

/// Marks confirmed `row` final (it landed in `block`, as `landed_as` when
/// another transaction carried its reference; buried deep enough),
/// and queues `event` (a burn's confirmation announced again, now final)
/// in the same transaction; `false` when the row changed meanwhile.
pub async fn finalized(
    db: &DatabaseConnection,
    row: &token_transactions::Model,
    block: u64,
    landed_as: Option<String>,
    event: Option<Envelope<ChainEvent>>,
) -> Result<bool, EntityError> {
    let block =
        i64::try_from(block).map_err(|_| EntityError::Corrupt(format!("block number {block}")))?;
    let txn = begin_write(db).await?;
    let now = Utc::now();
    let mut update = token_transactions::Entity::update_many()
        .col_expr(token_transactions::Column::FinalAt, Expr::value(now))
        .col_expr(token_transactions::Column::BlockNumber, Expr::value(block));
    if let Some(hash) = landed_as {
        update = update.col_expr(token_transactions::Column::TxHash, Expr::value(hash));
    }
    let updated = update
        .col_expr(token_transactions::Column::UpdatedAt, Expr::value(now))
        .filter(token_transactions::Column::Id.eq(row.id))
        .filter(token_transactions::Column::Status.eq(TxStatus::Confirmed))
        .filter(token_transactions::Column::FinalAt.is_null())
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(false);
    }
    if let Some(event) = event {
        haven_outbox::enqueue(&txn, &event)
            .await
            .map_err(outbox_error)?;
    }
    txn.commit().await?;
    Ok(true)
}

/// Confirmed `row` is no longer on chain (a reorganisation removed its
/// block and its reference is unused): back to `pending`, its request
/// queued again, in one transaction. The ledger keeps the movement posted
/// at its first confirmation: the resend carries the same reference, so
/// the chain ends with it once, and its confirmation posts nothing twice.
pub async fn reorged(
    db: &DatabaseConnection,
    row: &token_transactions::Model,
    request: Envelope<ChainRequest>,
) -> Result<bool, EntityError> {
    let txn = begin_write(db).await?;
    let now = Utc::now();
    let updated = token_transactions::Entity::update_many()
        .col_expr(
            token_transactions::Column::Status,
            Expr::value(TxStatus::Pending.to_value()),
        )
        .col_expr(
            token_transactions::Column::TxHash,
            Expr::value(None::<String>),
        )
        .col_expr(
            token_transactions::Column::BlockNumber,
            Expr::value(None::<i64>),
        )
        .col_expr(
            token_transactions::Column::ConfirmedAt,
            Expr::value(None::<chrono::DateTime<Utc>>),
        )
        .col_expr(
            token_transactions::Column::Reorgs,
            Expr::value(row.reorgs + 1),
        )
        .col_expr(
            token_transactions::Column::LastError,
            Expr::value(format!(
                "removed by a reorganisation from block {}; sent again",
                row.block_number.unwrap_or_default()
            )),
        )
        .col_expr(token_transactions::Column::UpdatedAt, Expr::value(now))
        .filter(token_transactions::Column::Id.eq(row.id))
        .filter(token_transactions::Column::Status.eq(TxStatus::Confirmed))
        .filter(token_transactions::Column::FinalAt.is_null())
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        return Ok(false);
    }
    haven_outbox::enqueue(&txn, &request)
        .await
        .map_err(outbox_error)?;
    txn.commit().await?;
    Ok(true)
}

/// Marks a request that can never succeed `failed` with `reason`, and
/// queues a `failed` event, in one transaction.
pub async fn failed(
    db: &DatabaseConnection,
    request: &Request,
    reason: &str,
) -> Result<(), EntityError> {
    let txn = begin_write(db).await?;
    let updated = token_transactions::Entity::update_many()
        .col_expr(
            token_transactions::Column::Status,
            Expr::value(TxStatus::Failed.to_value()),
        )
        .col_expr(token_transactions::Column::LastError, Expr::value(reason))
        .col_expr(
            token_transactions::Column::UpdatedAt,
            Expr::value(Utc::now()),
        )
        .filter(token_transactions::Column::Id.eq(request.tx_id()))
        .filter(token_transactions::Column::Status.is_in([TxStatus::Pending, TxStatus::Submitted]))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 1 {
        if let Request::Burn {
            redemption_id: None,
            ..
        } = request
        {
            reversal_failed(&txn, request.tx_id()).await?;
        }
        let event = Envelope::new(ChainEvent::Failed(TxFailed {
            tx_id: request.tx_id(),
            tx_type: request.tx_type(),
            user_id: request.user_id().to_owned(),
            reason: reason.to_owned(),
            redemption_id: request.redemption_id(),
        }));
        haven_outbox::enqueue(&txn, &event)
            .await
            .map_err(outbox_error)?;
    }
    txn.commit().await?;
    Ok(())
}

/// A reversal burn that can never succeed: the tokens reward-calculator
/// reserved for it go back to the user, and what they should have taken
/// back becomes debt in the user's clawback account (settled from the
/// user's next rewards), so a reversal never ends silently.
async fn reversal_failed(
    txn: &sea_orm::DatabaseTransaction,
    tx_id: Uuid,
) -> Result<(), EntityError> {
    let Some(row) = token_transactions::Entity::find_by_id(tx_id)
        .one(txn)
        .await?
    else {
        return Ok(());
    };
    let amount = row.amount;
    let release = Movement::release(format!("reversal-release:{tx_id}"), row.user_id, amount)?;
    ledger::post(txn, &release).await?;
    clawbacks::lock_user(txn, row.user_id).await?;
    clawbacks::record(
        txn,
        row.user_id,
        clawbacks::opened_reference(tx_id),
        amount,
        "reversal burn failed",
    )
    .await?;
    tracing::warn!(%tx_id, user_id = %row.user_id, "reversal burn failed; its amount is owed by the user (clawback)");
    Ok(())
}

/// Rows sent before this process started and not confirmed since: the
/// reconciliation looks each up on chain.
pub async fn unfinished<C: ConnectionTrait>(
    db: &C,
) -> Result<Vec<token_transactions::Model>, EntityError> {
    Ok(token_transactions::Entity::find()
        .filter(token_transactions::Column::Status.eq(TxStatus::Submitted))
        .all(db)
        .await?)
}

/// The ledger movement of a confirmed request: a mint moves supply to the
/// user; a burn takes the tokens reserved for it (by the redemption, or by
/// reward-calculator when it queued a reversal).
fn movement(request: &Request, user_id: Uuid, amount: SignedWei) -> Result<Movement, EntityError> {
    let id = request.tx_id();
    match request {
        Request::Mint { .. } => Movement::transfer(
            format!("mint:{id}"),
            MovementKind::Mint,
            Account::Supply,
            Account::UserAvailable(user_id),
            amount,
        ),
        Request::Burn {
            redemption_id: Some(_),
            ..
        } => Movement::transfer(
            format!("burn:{id}"),
            MovementKind::Burn,
            Account::UserReserved(user_id),
            Account::Burned,
            amount,
        ),
        Request::Burn { .. } => Movement::transfer(
            format!("burn:{id}"),
            MovementKind::Reversal,
            Account::UserReserved(user_id),
            Account::Burned,
            amount,
        ),
    }
}

fn outbox_error(err: haven_outbox::OutboxError) -> EntityError {
    match err {
        haven_outbox::OutboxError::Database(err) => err,
        other => EntityError::Corrupt(format!("outbox: {other}")),
    }
}
