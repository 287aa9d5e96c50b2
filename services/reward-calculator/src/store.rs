//! The database side of a reward: every function here runs inside the
//! caller's transaction, so the reward row, its token transaction, the
//! emission budget and the outbox message announcing the mint or burn commit
//! together or not at all. The caller commits, then wakes the outbox relay.
//!
//! # The contract with chain-minter
//! Token transactions are the only rows both services write:
//! - here a mint is inserted `pending` (`tx_id` = `reward_<reward id>`) with
//!   its `ChainRequest::Mint` in the outbox; a reversal burn likewise
//!   (`tx_id` = `reversal_<reward id>`, reason `reversal`);
//! - chain-minter claims a pending transaction with
//!   `UPDATE ... SET status = 'submitted' WHERE id = ? AND status = 'pending'`
//!   before it sends it, and skips one whose status is `cancelled`;
//! - a cancellation here is the mirror image,
//!   `UPDATE ... SET status = 'cancelled' WHERE tx_id = ? AND status = 'pending'`:
//!   the row lock makes exactly one of the two win. A mint already
//!   `submitted` is waited for (the event is retried later); one `confirmed`
//!   is reversed by a burn; one `failed` minted nothing, so the reward is
//!   simply cancelled.
//!
//! # Clawbacks
//! A reversal burns only what the user still holds: the part of the reward
//! they spent (redeemed) is recorded as owed in their clawback account
//! (`haven_entity::clawbacks`), and the tokens it burns are reserved first
//! (user available -> reserved, `reversal-reserve:<reward id>`), so a
//! redemption cannot take them while the burn is on its way and the burn
//! always finds them on chain and in the ledger. A user who owes has the
//! debt withheld from their next rewards: the reward keeps its amount, its
//! mint is smaller by what it settles (`clawback-settle:<reward id>`), and a
//! reward that settles its whole amount mints nothing.

use chrono::Utc;
use haven_entity::clawbacks;
use haven_entity::emission_periods::{self, Reservation};
use haven_entity::ledger::{self, Movement};
use haven_entity::linked::{self, LinkedRow};
use haven_entity::rewards::{self, MintPointer, NewReward, RewardStatus};
use haven_entity::token_transactions::{self, NewTokenTransaction, TxStatus, TxType};
use haven_entity::{EntityError, SignedWei, users};
use haven_messages::{BurnRequest, ChainRequest, Envelope, MintRequest, PartnerEvent};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, DatabaseTransaction};

use crate::context::Context;
use crate::rules::{Grant, Rule};
use haven_common::amqp::Failure;

/// Reason of the burn that takes a cancelled booking's reward back.
pub const REVERSAL_REASON: &str = "reversal";

/// What [`grant`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Granted {
    /// Recorded with a pending mint and its request in the outbox.
    Minted(Box<token_transactions::Model>),
    /// Recorded, its whole amount withheld to settle what the user owes:
    /// no mint.
    Withheld,
    /// Recorded as held: the period's budget is spent.
    Held,
    /// A reward for this source already exists; nothing was written.
    Duplicate,
}

/// A reward about to be granted.
#[derive(Debug, Clone, Copy)]
pub struct RewardRequest<'a> {
    /// Unique per rewarded fact, e.g. `aurora:booking:<id>`.
    pub source_reference: &'a str,
    /// Who earns it.
    pub user: &'a users::Model,
    /// The rule and amount.
    pub grant: Grant,
    /// The partner event it is for (`None` for periodic rewards), so the mint
    /// request carries its correlation id.
    pub cause: Option<&'a Envelope<PartnerEvent>>,
}

/// The `tx_id` of the mint paying reward `reward_id`.
pub fn mint_tx_id(reward_id: Uuid) -> String {
    format!("reward_{reward_id}")
}

/// The `tx_id` of the burn reversing reward `reward_id`.
pub fn reversal_tx_id(reward_id: Uuid) -> String {
    format!("reversal_{reward_id}")
}

/// Records a reward once per source reference. Within the period's budget
/// it gets a pending mint and a `ChainRequest::Mint` in the outbox;
/// beyond it, it is held (no mint) until [`release_held`] finds room.
pub async fn grant(
    ctx: &Context,
    txn: &DatabaseTransaction,
    request: RewardRequest<'_>,
) -> Result<Granted, Failure> {
    if CommonGrant::applies(ctx, txn, request.user).await? {
        let CommonGrant { rows, mint } = CommonGrant::new(ctx, &request)?;
        let written = linked::insert(txn, &rows).await?;
        return CommonGrant::granted(mint, written, request.source_reference);
    }
    let reward = new_reward(ctx, &request)?;
    let (reward_id, amount) = (reward.id, reward.amount);
    if rewards::insert(txn, reward).await?.is_none() {
        return Ok(Granted::Duplicate);
    }

    // Last, so the budget row (which every grant of the period updates) is
    // locked for as short a time as possible.
    match reserve(ctx, txn, amount).await? {
        Some((period, budget, Reservation::OverBudget { emitted })) => {
            rewards::transition(
                txn,
                reward_id,
                RewardStatus::Pending,
                RewardStatus::Held,
                MintPointer::Clear,
            )
            .await?;
            tracing::warn!(
                %reward_id,
                source_reference = request.source_reference,
                rule = request.grant.rule.as_str(),
                amount_wei = %amount,
                %period,
                emitted_wei = %emitted,
                budget_wei = %budget,
                "reward held: the emission budget of this period is spent; it is released in a later period"
            );
            Ok(Granted::Held)
        }
        None | Some((_, _, Reservation::Reserved { .. })) => {
            match mint(
                txn,
                reward_id,
                request.user,
                amount,
                request.grant.rule,
                request.cause,
            )
            .await?
            {
                Some(tx) => Ok(Granted::Minted(Box::new(tx))),
                None => Ok(Granted::Withheld),
            }
        }
    }
}

/// A grant with no emission budget to count against and nothing owed to
/// withhold (see [`owes`]): its reward is minted whole, so the reward, its
/// pending mint and the mint's request can be written together, in one
/// statement on PostgreSQL ([`linked::insert`]), after any rows they
/// depend on (a new user, a new booking).
#[derive(Debug)]
pub struct CommonGrant {
    /// The reward (skipped, with what follows, when its source has one),
    /// the mint (a plain insert: its id is new) and the outbox message.
    pub rows: [LinkedRow; 3],
    /// The mint as written.
    pub mint: token_transactions::Model,
}

impl CommonGrant {
    /// How many rows a common grant writes.
    pub const ROWS: usize = 3;

    /// Whether a grant to `user` is a common one now: no emission budget,
    /// and `user` owes nothing.
    pub async fn applies<C: ConnectionTrait>(
        ctx: &Context,
        db: &C,
        user: &users::Model,
    ) -> Result<bool, Failure> {
        Ok(ctx.emission.budget().is_none() && !owes(db, user).await?)
    }

    /// What a common grant did, from how many of its rows were written
    /// (those of [`Self::rows`] only): none when a reward for
    /// `source_reference` exists, all of them when `mint` was recorded.
    pub fn granted(
        mint: token_transactions::Model,
        written: usize,
        source_reference: &str,
    ) -> Result<Granted, Failure> {
        match written {
            0 => Ok(Granted::Duplicate),
            Self::ROWS => Ok(Granted::Minted(Box::new(mint))),
            // The mint and its message are plain inserts: a clash fails
            // the statement, so the reward is never left without them.
            _ => Err(Failure::permanent(format!(
                "{written} of the {} rows of reward `{source_reference}` were written",
                Self::ROWS
            ))),
        }
    }

    /// The rows of `request`'s reward, mint and mint request.
    pub fn new(ctx: &Context, request: &RewardRequest<'_>) -> Result<Self, Failure> {
        let reward = new_reward(ctx, request)?;
        let mint = token_transactions::new_pending(new_mint(
            reward.id,
            request.user,
            reward.amount,
            request.grant.rule,
            request.cause,
        ));
        let message = haven_outbox::linked_row(&mint_envelope(
            &mint,
            request.user,
            request.grant.rule,
            request.cause,
        )?)?;
        Ok(Self {
            rows: [
                rewards::linked_row(reward),
                token_transactions::linked_row(&mint),
                message,
            ],
            mint,
        })
    }
}

/// The reward row of `request`, `pending` and inserted pointing at the mint
/// most grants end with (the foreign key is checked at commit): a grant
/// that ends without one clears it in the status change it makes anyway,
/// so a mint costs no extra UPDATE.
fn new_reward(ctx: &Context, request: &RewardRequest<'_>) -> Result<NewReward, Failure> {
    let id = Uuid::now_v7();
    Ok(NewReward {
        id,
        source_reference: request.source_reference.to_owned(),
        user_id: request.user.id,
        rule: request.grant.rule.as_str().to_owned(),
        rule_version: ctx.rules.version(),
        amount: entity_wei(request.grant.amount.as_wei())?,
        status: RewardStatus::Pending,
        token_tx_id: Some(mint_tx_id(id)),
    })
}

/// Whether `user` owes anything (a clawback): a user this transaction
/// created cannot, and is not looked up. Reads without locking, as the
/// common case of [`settle_debt`] does.
async fn owes<C: ConnectionTrait>(db: &C, user: &users::Model) -> Result<bool, Failure> {
    Ok(!user.new_in_transaction && clawbacks::outstanding(db, user.id).await?.is_positive())
}

/// Withholds what `user` owes (up to `amount`) from reward `reward_id`:
/// records the settlement and returns what is left to mint.
async fn settle_debt(
    txn: &DatabaseTransaction,
    reward_id: Uuid,
    user: &users::Model,
    amount: SignedWei,
) -> Result<SignedWei, Failure> {
    // A user this transaction created has had no reward to reverse: no
    // statement at all (every event about a new guest).
    if user.new_in_transaction {
        return Ok(amount);
    }
    // The common case reads one indexed, empty range and locks nothing.
    if !clawbacks::outstanding(txn, user.id).await?.is_positive() {
        return Ok(amount);
    }
    clawbacks::lock_user(txn, user.id).await?;
    let owed = clawbacks::outstanding(txn, user.id).await?;
    if !owed.is_positive() {
        return Ok(amount);
    }
    let settled = owed.min(amount);
    let debit = settled
        .checked_neg()
        .ok_or_else(|| Failure::permanent("clawback amount overflows"))?;
    if clawbacks::record(
        txn,
        user.id,
        clawbacks::settled_reference(reward_id),
        debit,
        "withheld from a reward",
    )
    .await?
    {
        tracing::info!(%reward_id, user_id = %user.id, settled_wei = %settled, owed_wei = %owed, "reward withheld to settle a clawback");
    }
    amount
        .checked_sub(settled)
        .ok_or_else(|| Failure::permanent("reward amount overflows"))
}

/// Counts `amount` against the current period's budget, if there is one:
/// `None` when there is no budget (nothing is tracked then, so grants that
/// can never be held do not take turns on the period's row), else the
/// period, the budget and the outcome.
///
/// The budget row stays locked until the caller commits: grants of a
/// budgeted period take turns, which is what keeps the budget exact.
async fn reserve(
    ctx: &Context,
    txn: &DatabaseTransaction,
    amount: SignedWei,
) -> Result<Option<(String, SignedWei, Reservation)>, Failure> {
    let Some(budget) = ctx.emission.budget() else {
        return Ok(None);
    };
    let period = ctx.emission.current_period();
    let reservation = emission_periods::reserve(txn, &period, amount, Some(budget)).await?;
    Ok(Some((period, budget, reservation)))
}

/// Records the pending mint of reward `reward_id` (less what it settles of
/// the user's debt) and queues its `ChainRequest::Mint`; `None` when the
/// whole reward settled debt (the reward is then `minted` with no mint).
///
/// The reward is `pending` and already points at [`mint_tx_id`] (the
/// foreign key is checked at commit), so the mint is all that is written
/// for it here.
async fn mint(
    txn: &DatabaseTransaction,
    reward_id: Uuid,
    user: &users::Model,
    amount: SignedWei,
    rule: Rule,
    cause: Option<&Envelope<PartnerEvent>>,
) -> Result<Option<token_transactions::Model>, Failure> {
    let amount = settle_debt(txn, reward_id, user, amount).await?;
    if amount.is_zero() {
        rewards::transition(
            txn,
            reward_id,
            RewardStatus::Pending,
            RewardStatus::Minted,
            MintPointer::Clear,
        )
        .await?;
        return Ok(None);
    }
    let tx_id = mint_tx_id(reward_id);
    let tx =
        token_transactions::insert_pending(txn, new_mint(reward_id, user, amount, rule, cause))
            .await?
            // Another transaction holds the same reward id: only a concurrent
            // release of the same held reward can, and it wins.
            .ok_or_else(|| Failure::Transient(format!("mint `{tx_id}` is already recorded")))?;
    haven_outbox::enqueue(txn, &mint_envelope(&tx, user, rule, cause)?).await?;
    Ok(Some(tx))
}

/// The pending mint of `amount` paying reward `reward_id` to `user`.
fn new_mint(
    reward_id: Uuid,
    user: &users::Model,
    amount: SignedWei,
    rule: Rule,
    cause: Option<&Envelope<PartnerEvent>>,
) -> NewTokenTransaction {
    NewTokenTransaction {
        tx_id: mint_tx_id(reward_id),
        user_id: user.id,
        tx_type: TxType::Mint,
        amount,
        reason: rule.as_str().to_owned(),
        // The services' own mint: no operator asked.
        requested_by: None,
        // The partner's webhook was accepted then (stamped by
        // webhook-ingress); a held reward released later has no cause:
        // its wait is the emission budget's, not latency.
        accepted_at: cause.map(|cause| cause.occurred_at),
    }
}

/// The `ChainRequest::Mint` of pending mint `tx` (caused by `cause`).
fn mint_envelope(
    tx: &token_transactions::Model,
    user: &users::Model,
    rule: Rule,
    cause: Option<&Envelope<PartnerEvent>>,
) -> Result<Envelope<ChainRequest>, Failure> {
    let request = ChainRequest::Mint(MintRequest {
        tx_id: tx.id,
        user_id: user.external_id.clone(),
        to_address: user.wallet_address.clone(),
        amount_wei: chain_wei(tx.amount)?,
        reason: rule.as_str().to_owned(),
    });
    Ok(match cause {
        Some(cause) => Envelope::caused_by(cause, request),
        None => Envelope::new(request),
    })
}

/// What [`release_held`] did with one reward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// It got its mint.
    Minted(Box<token_transactions::Model>),
    /// Its whole amount settled the user's debt: no mint.
    Withheld,
    /// The current period has no room for it: stop releasing.
    NoRoom,
    /// Another replica released it (or it is no longer held).
    Gone,
}

/// Gives held reward `reward` its mint if the current period's budget has
/// room. The status moves `held` -> `pending` first, conditionally, so of
/// two replicas releasing the same reward only one goes on; the same
/// statement points it at its mint, as [`grant`]'s insert does. The caller
/// rolls back unless it gets [`Released::Minted`] or [`Released::Withheld`].
pub async fn release_held(
    ctx: &Context,
    txn: &DatabaseTransaction,
    reward: &rewards::Model,
) -> Result<Released, Failure> {
    if !rewards::transition(
        txn,
        reward.id,
        RewardStatus::Held,
        RewardStatus::Pending,
        MintPointer::Set(mint_tx_id(reward.id)),
    )
    .await?
    {
        return Ok(Released::Gone);
    }
    if let Some((_, _, Reservation::OverBudget { .. })) = reserve(ctx, txn, reward.amount).await? {
        return Ok(Released::NoRoom);
    }
    let user = user_of(txn, reward).await?;
    let rule = Rule::ALL
        .into_iter()
        .find(|rule| rule.as_str() == reward.rule)
        .ok_or_else(|| {
            Failure::permanent(format!(
                "reward {} has unknown rule `{}`",
                reward.id, reward.rule
            ))
        })?;
    match mint(txn, reward.id, &user, reward.amount, rule, None).await? {
        Some(tx) => Ok(Released::Minted(Box::new(tx))),
        None => Ok(Released::Withheld),
    }
}

/// What [`cancel_reward`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// There is no reward for the source (yet): nothing to do.
    NoReward,
    /// Already cancelled or reversed.
    AlreadyDone,
    /// Withdrawn before its mint was sent (or it was held, or its mint failed).
    Cancelled,
    /// Its mint was confirmed: what the user still holds of it is burned
    /// (`burn`, when anything), the rest is owed (`owed`, a clawback).
    Reversed {
        /// The reversal burn queued, unless the user holds none of it.
        burn: Option<Box<token_transactions::Model>>,
        /// What the user owes for it now (zero when all of it is burned).
        owed: SignedWei,
    },
}

/// Takes back the reward granted for `source_reference`: a pending mint is
/// cancelled, a confirmed one is burned. A mint in flight (or a reward that
/// changed under us) is [`Failure::Transient`]: roll back and try again later.
///
/// Locks are taken in chain-minter's order, token transaction before reward
/// row, so the two services never deadlock. Callers serialize cancellations
/// of one booking on its `bookings` row, which they lock first.
pub async fn cancel_reward(
    txn: &DatabaseTransaction,
    source_reference: &str,
    cause: &Envelope<PartnerEvent>,
) -> Result<Cancelled, Failure> {
    let Some(reward) = rewards::find_by_source_reference(txn, source_reference).await? else {
        return Ok(Cancelled::NoReward);
    };
    let changed = || {
        Failure::Transient(format!(
            "reward {} changed while it was being cancelled",
            reward.id
        ))
    };
    match reward.status {
        RewardStatus::Cancelled | RewardStatus::Reversed => return Ok(Cancelled::AlreadyDone),
        RewardStatus::Held => {
            // No mint exists; a release racing us makes this match nothing.
            let cancelled = rewards::transition(
                txn,
                reward.id,
                RewardStatus::Held,
                RewardStatus::Cancelled,
                MintPointer::Keep,
            )
            .await?;
            return if cancelled {
                Ok(Cancelled::Cancelled)
            } else {
                Err(changed())
            };
        }
        RewardStatus::Minted if reward.token_tx_id.is_none() => {
            // Its whole amount settled debt and minted nothing: the debt
            // is owed again.
            if !rewards::transition(
                txn,
                reward.id,
                RewardStatus::Minted,
                RewardStatus::Reversed,
                MintPointer::Keep,
            )
            .await?
            {
                return Err(changed());
            }
            return reverse(txn, &reward, SignedWei::ZERO, cause).await;
        }
        RewardStatus::Pending | RewardStatus::Minted => {}
    }
    let tx_id = reward.token_tx_id.clone().ok_or_else(|| {
        Failure::permanent(format!(
            "reward {} is {:?} without a mint",
            reward.id, reward.status
        ))
    })?;

    // The mirror of chain-minter's claim: whichever UPDATE takes the row
    // first wins, the other matches nothing.
    let withdrawn = token_transactions::Entity::update_many()
        .set(token_transactions::ActiveModel {
            status: Set(TxStatus::Cancelled),
            last_error: Set(Some(
                "cancelled: the booking was cancelled before the mint was sent".into(),
            )),
            updated_at: Set(Utc::now()),
            ..Default::default()
        })
        .filter(token_transactions::Column::TxId.eq(tx_id.as_str()))
        .filter(token_transactions::Column::Status.eq(TxStatus::Pending))
        .exec(txn)
        .await
        .map_err(EntityError::from)?;
    if withdrawn.rows_affected == 1 {
        // A mint never confirmed leaves its reward pending.
        let cancelled = rewards::transition(
            txn,
            reward.id,
            RewardStatus::Pending,
            RewardStatus::Cancelled,
            MintPointer::Keep,
        )
        .await?;
        return if cancelled {
            Ok(Cancelled::Cancelled)
        } else {
            Err(changed())
        };
    }

    let tx = token_transactions::find_by_tx_id(txn, &tx_id)
        .await?
        .ok_or_else(|| {
            Failure::permanent(format!("mint `{tx_id}` of reward {} is gone", reward.id))
        })?;
    // chain-minter marks the reward `minted` in the transaction that
    // confirms the mint: read it again now that the mint's status is known.
    let current = rewards::find_by_source_reference(txn, source_reference)
        .await?
        .ok_or_else(changed)?;
    let settle = |to| rewards::transition(txn, reward.id, current.status, to, MintPointer::Keep);
    match (tx.status, current.status) {
        (TxStatus::Pending | TxStatus::Submitted, _) => Err(Failure::Transient(format!(
            "mint `{tx_id}` is in flight ({:?}); the cancellation waits until it settles",
            tx.status
        ))),
        // A confirmed mint a reorganisation may still remove: burning its
        // tokens now could find them gone (the burn would fail and the
        // reversal turn into debt while the mint is sent again and lands).
        (TxStatus::Confirmed, RewardStatus::Pending | RewardStatus::Minted)
            if tx.final_at.is_none() =>
        {
            Err(Failure::Transient(format!(
                "mint `{tx_id}` is confirmed but not final yet; the cancellation waits until it is"
            )))
        }
        (_, RewardStatus::Cancelled | RewardStatus::Reversed) => Ok(Cancelled::AlreadyDone),
        (_, RewardStatus::Held) => Err(changed()),
        // Nothing was minted: nothing to take back.
        (TxStatus::Failed | TxStatus::Cancelled, _) => {
            if settle(RewardStatus::Cancelled).await? {
                Ok(Cancelled::Cancelled)
            } else {
                Err(changed())
            }
        }
        (TxStatus::Confirmed, _) => {
            if !settle(RewardStatus::Reversed).await? {
                return Err(changed());
            }
            reverse(txn, &reward, tx.amount, cause).await
        }
    }
}

/// The user a reward belongs to (the foreign key guarantees one).
async fn user_of(
    txn: &DatabaseTransaction,
    reward: &rewards::Model,
) -> Result<users::Model, Failure> {
    users::Entity::find_by_id(reward.user_id)
        .one(txn)
        .await
        .map_err(EntityError::from)?
        .ok_or_else(|| {
            Failure::permanent(format!(
                "user {} of reward {} is gone",
                reward.user_id, reward.id
            ))
        })
}

/// Takes `reward` back from its user: of the `minted` part, what the user
/// still has available is reserved and burned (the burn recorded and its
/// `ChainRequest::Burn` queued); the rest of the reward's amount (spent
/// tokens, and anything withheld to settle earlier debt) is owed, recorded
/// in the user's clawback account.
async fn reverse(
    txn: &DatabaseTransaction,
    reward: &rewards::Model,
    minted: SignedWei,
    cause: &Envelope<PartnerEvent>,
) -> Result<Cancelled, Failure> {
    let user = user_of(txn, reward).await?;
    clawbacks::lock_user(txn, user.id).await?;
    let available = ledger::user_balance(txn, user.id).await?.available;
    let burnable = minted.min(available.max(SignedWei::ZERO));
    let owed = reward
        .amount
        .checked_sub(burnable)
        .ok_or_else(|| Failure::permanent("reward amount overflows"))?;
    let burn = if burnable.is_positive() {
        let hold = Movement::reserve(format!("reversal-reserve:{}", reward.id), user.id, burnable)?;
        match ledger::post(txn, &hold).await {
            Ok(_) => {}
            // A redemption took some of it since it was read: do it all again.
            Err(EntityError::InsufficientBalance { .. }) => {
                return Err(Failure::Transient(format!(
                    "the balance of user {} changed while reward {} was reversed",
                    user.id, reward.id
                )));
            }
            Err(err) => return Err(err.into()),
        }
        Some(Box::new(
            queue_reversal_burn(txn, reward, &user, burnable, cause).await?,
        ))
    } else {
        None
    };
    if owed.is_positive() {
        clawbacks::record(
            txn,
            user.id,
            clawbacks::opened_reference(reward.id),
            owed,
            "reversal of a spent reward",
        )
        .await?;
        tracing::warn!(reward_id = %reward.id, user_id = %user.id, owed_wei = %owed, burned_wei = %burnable, "reward reversed after its tokens were spent; the rest is owed (clawback)");
    }
    Ok(Cancelled::Reversed { burn, owed })
}

/// Records the burn of `amount` reversing `reward` and queues its
/// `ChainRequest::Burn`.
async fn queue_reversal_burn(
    txn: &DatabaseTransaction,
    reward: &rewards::Model,
    user: &users::Model,
    amount: SignedWei,
    cause: &Envelope<PartnerEvent>,
) -> Result<token_transactions::Model, Failure> {
    let tx_id = reversal_tx_id(reward.id);
    let burn = token_transactions::insert_pending(
        txn,
        NewTokenTransaction {
            tx_id: tx_id.clone(),
            user_id: user.id,
            tx_type: TxType::Burn,
            amount,
            reason: REVERSAL_REASON.to_owned(),
            requested_by: None,
            accepted_at: Some(cause.occurred_at),
        },
    )
    .await?
    .ok_or_else(|| Failure::Transient(format!("reversal `{tx_id}` is already recorded")))?;
    let request = ChainRequest::Burn(BurnRequest {
        tx_id: burn.id,
        user_id: user.external_id.clone(),
        from_address: user.wallet_address.clone(),
        amount_wei: chain_wei(amount)?,
        reason: REVERSAL_REASON.to_owned(),
        redemption_id: None,
    });
    haven_outbox::enqueue(txn, &Envelope::caused_by(cause, request)).await?;
    Ok(burn)
}

/// A rule amount as the entity's signed wei.
pub fn entity_wei(wei: u128) -> Result<SignedWei, Failure> {
    i128::try_from(wei)
        .map(SignedWei::new)
        .map_err(|_| Failure::permanent(format!("{wei} wei does not fit the database")))
}

/// A stored amount as the messages' unsigned wei.
pub fn chain_wei(wei: SignedWei) -> Result<u128, Failure> {
    u128::try_from(wei.get())
        .map_err(|_| Failure::permanent(format!("stored amount {wei} wei is negative")))
}

#[cfg(test)]
mod tests {
    use haven_common::db::begin_write;
    use haven_common::testing::db::TestDb;
    use haven_entity::token_transactions::is_internal_tx_id;
    use haven_entity::users::NewUser;

    use super::*;

    #[test]
    fn the_tx_ids_made_here_are_in_the_space_operators_cannot_use() {
        let id = uuid::Uuid::now_v7();
        assert!(is_internal_tx_id(&super::mint_tx_id(id)));
        assert!(is_internal_tx_id(&super::reversal_tx_id(id)));
    }

    /// A user the transaction created is not looked up in the clawbacks
    /// (they cannot owe yet); an existing user is, and their debt is
    /// withheld.
    async fn only_existing_users_are_checked_for_debt(db: TestDb) {
        async fn get_user(txn: &DatabaseTransaction) -> users::Model {
            users::find_or_create_in(
                txn,
                NewUser {
                    partner: "tribe".into(),
                    external_id: "debtor".into(),
                    email: None,
                },
                |index| Ok::<_, std::convert::Infallible>(format!("0x{index:040x}")),
            )
            .await
            .unwrap()
            .user
        }
        let (conn, log) = db.recording();
        let hnv = |n| SignedWei::from_hnv(n).unwrap();

        let txn = begin_write(&conn).await.unwrap();
        let user = get_user(&txn).await;
        log.take();
        let left = settle_debt(&txn, Uuid::now_v7(), &user, hnv(10)).await;
        assert_eq!(left.unwrap(), hnv(10));
        assert_eq!(log.take(), Vec::<String>::new(), "no statement");
        clawbacks::record(
            &txn,
            user.id,
            clawbacks::opened_reference(Uuid::now_v7()),
            hnv(4),
            "a reversal",
        )
        .await
        .unwrap();
        txn.commit().await.unwrap();

        let txn = begin_write(&conn).await.unwrap();
        let user = get_user(&txn).await;
        assert!(!user.new_in_transaction);
        let left = settle_debt(&txn, Uuid::now_v7(), &user, hnv(10)).await;
        assert_eq!(left.unwrap(), hnv(6), "the debt is withheld");
        txn.commit().await.unwrap();
        db.cleanup().await;
    }

    #[tokio::test]
    async fn postgres_only_existing_users_are_checked_for_debt() {
        only_existing_users_are_checked_for_debt(TestDb::new().await).await;
    }

    #[tokio::test]
    async fn sqlite_only_existing_users_are_checked_for_debt() {
        only_existing_users_are_checked_for_debt(TestDb::sqlite().await).await;
    }
}
