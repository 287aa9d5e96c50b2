//! Posting to the double-entry ledger.
//!
//! A [`Movement`] is a set of entries that must sum to zero. [`post`] writes
//! it and moves the running balances (system accounts in `ledger_accounts`,
//! user accounts in `user_balances`) inside the caller's transaction, so the
//! entries and the balances can never disagree.
//!
//! Amount arithmetic happens here in Rust, never in SQL: SQLite would do it
//! in floating point. Concurrent postings are serialized by an optimistic
//! check: read the row and its `version`, compute, then
//! `UPDATE ... WHERE version = <read>`; zero rows updated means someone else
//! got there first, so read again and retry. On PostgreSQL (READ COMMITTED,
//! the default) the losing UPDATE waits for the winner's commit, and the
//! next read in the same transaction sees the new committed row, so the
//! retry happens inside the transaction without rolling anything back.
//! On SQLite there is a single connection, so there is never a loser.
//! Rows are always updated in the same order (system accounts, then users by
//! id) so two postings can never deadlock each other.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, DatabaseTransaction, DbBackend, QueryOrder, QuerySelect, Statement,
};

use crate::error::EntityError;
use crate::ledger_accounts;
use crate::ledger_entries::{self, AccountKind};
use crate::ledger_movements::{self, MovementKind};
use crate::user_balances;
use crate::wei::SignedWei;

/// How many times a balance row update is retried when another
/// transaction keeps winning. Each retry follows a commit by someone else,
/// so this bounds the queue of concurrent writers to one row, not time.
const MAX_OPTIMISTIC_ATTEMPTS: u32 = 256;

/// A ledger account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// Source of every mint; its balance is minus everything ever minted.
    Supply,
    /// Sink of every burn.
    Burned,
    /// Value paid out for redemptions.
    Payout,
    /// A user's spendable tokens.
    UserAvailable(Uuid),
    /// A user's tokens held for a redemption.
    UserReserved(Uuid),
}

impl Account {
    /// The kind stored in `ledger_entries.account`.
    pub fn kind(self) -> AccountKind {
        match self {
            Self::Supply => AccountKind::Supply,
            Self::Burned => AccountKind::Burned,
            Self::Payout => AccountKind::Payout,
            Self::UserAvailable(_) => AccountKind::UserAvailable,
            Self::UserReserved(_) => AccountKind::UserReserved,
        }
    }

    /// The owner of a user account.
    pub fn user_id(self) -> Option<Uuid> {
        match self {
            Self::UserAvailable(id) | Self::UserReserved(id) => Some(id),
            Self::Supply | Self::Burned | Self::Payout => None,
        }
    }

    /// The `ledger_accounts.id` of a system account.
    fn system_id(self) -> Option<&'static str> {
        match self {
            Self::Supply => Some("supply"),
            Self::Burned => Some("burned"),
            Self::Payout => Some("payout"),
            Self::UserAvailable(_) | Self::UserReserved(_) => None,
        }
    }
}

/// One signed change to one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The account changed.
    pub account: Account,
    /// The change: positive credits the account, negative debits it.
    pub amount: SignedWei,
}

/// A set of entries that sums to zero, posted atomically and at most once
/// per `reference`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Movement {
    /// Unique reference (e.g. `mint:<tx_id>`): posting the same reference
    /// twice is a no-op the second time.
    pub reference: String,
    /// What happened.
    pub kind: MovementKind,
    /// One signed change per account; they must sum to zero.
    pub entries: Vec<Entry>,
}

impl Movement {
    /// A movement with no entries yet; add them with [`Movement::entry`].
    pub fn new(reference: impl Into<String>, kind: MovementKind) -> Self {
        Self {
            reference: reference.into(),
            kind,
            entries: Vec::new(),
        }
    }

    /// Adds one entry.
    pub fn entry(mut self, account: Account, amount: SignedWei) -> Self {
        self.entries.push(Entry { account, amount });
        self
    }

    /// Moves `amount` from one account to another: the usual two-entry movement.
    pub fn transfer(
        reference: impl Into<String>,
        kind: MovementKind,
        from: Account,
        to: Account,
        amount: SignedWei,
    ) -> Result<Self, EntityError> {
        let debit = amount
            .checked_neg()
            .ok_or_else(|| EntityError::InvalidMovement("amount overflows".into()))?;
        Ok(Self::new(reference, kind)
            .entry(from, debit)
            .entry(to, amount))
    }

    /// Holds `amount` of user `user_id`'s tokens: user available -> user
    /// reserved (for a redemption, or for a reversal burn), so nothing else
    /// spends them while their burn is on its way.
    pub fn reserve(
        reference: impl Into<String>,
        user_id: Uuid,
        amount: SignedWei,
    ) -> Result<Self, EntityError> {
        Self::transfer(
            reference,
            MovementKind::Reserve,
            Account::UserAvailable(user_id),
            Account::UserReserved(user_id),
            amount,
        )
    }

    /// Gives back `amount` of user `user_id`'s held tokens whose burn will
    /// not happen: user reserved -> user available.
    pub fn release(
        reference: impl Into<String>,
        user_id: Uuid,
        amount: SignedWei,
    ) -> Result<Self, EntityError> {
        Self::transfer(
            reference,
            MovementKind::Release,
            Account::UserReserved(user_id),
            Account::UserAvailable(user_id),
            amount,
        )
    }

    /// Checks the movement is postable: a reference, at least two non-zero
    /// entries, summing to zero.
    pub fn validate(&self) -> Result<(), EntityError> {
        if self.reference.trim().is_empty() {
            return Err(EntityError::InvalidMovement("empty reference".into()));
        }
        if self.entries.len() < 2 {
            return Err(EntityError::InvalidMovement(format!(
                "`{}` needs at least two entries",
                self.reference
            )));
        }
        let mut sum = SignedWei::ZERO;
        for entry in &self.entries {
            if entry.amount.is_zero() {
                return Err(EntityError::InvalidMovement(format!(
                    "`{}` has a zero entry",
                    self.reference
                )));
            }
            sum = sum.checked_add(entry.amount).ok_or_else(|| {
                EntityError::InvalidMovement(format!("`{}` overflows", self.reference))
            })?;
        }
        if !sum.is_zero() {
            return Err(EntityError::Unbalanced {
                reference: self.reference.clone(),
                sum,
            });
        }
        Ok(())
    }
}

/// What [`post`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Posted {
    /// The movement was written; its id.
    Applied(Uuid),
    /// A movement with this reference was already posted; nothing changed.
    Duplicate,
}

/// A user's balances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balance {
    /// Spendable.
    pub available: SignedWei,
    /// Held for redemptions.
    pub reserved: SignedWei,
    /// Row version (0 when the row does not exist yet).
    pub version: i64,
}

/// Net change per user: (available, reserved).
type UserDeltas = BTreeMap<Uuid, (SignedWei, SignedWei)>;

/// Posts a movement inside `txn`: validates it, records it once per
/// reference, writes its entries and moves the balances.
///
/// On any error the caller must roll the transaction back (dropping it
/// does), since some rows may already be written. Fails with
/// [`EntityError::Unbalanced`] when the entries do not sum to zero,
/// [`EntityError::InsufficientBalance`] when a user account (or the burned
/// or payout account) would go below zero, and
/// [`EntityError::ForeignKeyViolation`] for an unknown user.
/// Requires READ COMMITTED on PostgreSQL (the default).
pub async fn post(txn: &DatabaseTransaction, movement: &Movement) -> Result<Posted, EntityError> {
    let posted = post_many(txn, std::slice::from_ref(movement)).await?;
    posted
        .into_iter()
        .next()
        .ok_or_else(|| EntityError::Corrupt("a posted movement went missing".into()))
}

/// Rows per multi-row insert or update: far below the bind-parameter limits
/// of PostgreSQL (65,535) and SQLite (32,766) at six columns.
const ROWS_PER_INSERT: usize = 500;

/// Posts `movements` inside `txn` as [`post`] posts each, in a few
/// statements: the movements and their entries are inserted many rows at
/// a time, and the balances move once per account with the changes summed,
/// the rows of several users in one read and one write (see `apply_users`).
/// Returns what happened to each movement, in order (a reference already
/// posted, or repeated within `movements`, is [`Posted::Duplicate`]).
///
/// Every transaction that posts locks the balance rows it changes in one
/// order: user rows first (by id), then the system accounts (supply,
/// burned, ...), last. Every mint and burn moves a system account, so its
/// row is the hottest in the ledger: taking it at the very end of the
/// transaction keeps it locked only until the commit, and concurrent
/// batches overlap everything else.
pub async fn post_many(
    txn: &DatabaseTransaction,
    movements: &[Movement],
) -> Result<Vec<Posted>, EntityError> {
    for movement in movements {
        movement.validate()?;
    }
    let now = Utc::now();

    // One id per movement; a reference repeated within the slice is posted
    // once, at its first occurrence.
    let mut outcome: Vec<Posted> = Vec::with_capacity(movements.len());
    let mut seen = std::collections::HashSet::new();
    let mut candidates: Vec<(usize, Uuid)> = Vec::with_capacity(movements.len());
    for (i, movement) in movements.iter().enumerate() {
        if seen.insert(movement.reference.as_str()) {
            let id = Uuid::now_v7();
            candidates.push((i, id));
            outcome.push(Posted::Applied(id));
        } else {
            outcome.push(Posted::Duplicate);
        }
    }

    let mut inserted = 0;
    for chunk in candidates.chunks(ROWS_PER_INSERT) {
        inserted += ledger_movements::Entity::insert_many(chunk.iter().map(|&(i, id)| {
            ledger_movements::ActiveModel {
                id: Set(id),
                reference: Set(movements[i].reference.clone()),
                kind: Set(movements[i].kind),
                created_at: Set(now),
            }
        }))
        .on_conflict(
            OnConflict::column(ledger_movements::Column::Reference)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    }
    if usize::try_from(inserted).ok() != Some(candidates.len()) {
        // Some references were posted before: find which of ours went in.
        let ours: Vec<Uuid> = candidates.iter().map(|&(_, id)| id).collect();
        let mut present = std::collections::HashSet::new();
        for chunk in ours.chunks(ROWS_PER_INSERT) {
            present.extend(
                ledger_movements::Entity::find()
                    .select_only()
                    .column(ledger_movements::Column::Id)
                    .filter(ledger_movements::Column::Id.is_in(chunk.iter().copied()))
                    .into_tuple::<Uuid>()
                    .all(txn)
                    .await?,
            );
        }
        candidates.retain(|&(i, id)| {
            let kept = present.contains(&id);
            if !kept {
                outcome[i] = Posted::Duplicate;
            }
            kept
        });
    }
    if candidates.is_empty() {
        return Ok(outcome);
    }

    let entries: Vec<ledger_entries::ActiveModel> = candidates
        .iter()
        .flat_map(|&(i, movement_id)| {
            movements[i]
                .entries
                .iter()
                .map(move |entry| ledger_entries::ActiveModel {
                    movement_id: Set(movement_id),
                    account: Set(entry.account.kind()),
                    user_id: Set(entry.account.user_id()),
                    amount: Set(entry.amount),
                    created_at: Set(now),
                    ..Default::default()
                })
        })
        .collect();
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        ledger_entries::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }

    let mut system: BTreeMap<Account, SignedWei> = BTreeMap::new();
    let mut users: UserDeltas = BTreeMap::new();
    for &(i, _) in &candidates {
        let (movement_system, movement_users) = net_changes(&movements[i])?;
        let overflow =
            || EntityError::InvalidMovement(format!("`{}` overflows", movements[i].reference));
        for (account, change) in movement_system {
            let slot = system.entry(account).or_default();
            *slot = slot.checked_add(change).ok_or_else(overflow)?;
        }
        for (user_id, (available, reserved)) in movement_users {
            let slot = users.entry(user_id).or_default();
            slot.0 = slot.0.checked_add(available).ok_or_else(overflow)?;
            slot.1 = slot.1.checked_add(reserved).ok_or_else(overflow)?;
        }
    }
    users.retain(|_, (available, reserved)| !(available.is_zero() && reserved.is_zero()));
    if users.len() > 1 {
        apply_users(txn, users, now).await?;
    } else if let Some((user_id, (available, reserved))) = users.pop_first() {
        apply_user(txn, user_id, available, reserved, now).await?;
    }
    for (account, change) in system {
        if !change.is_zero() {
            apply_system(txn, account, change, now).await?;
        }
    }
    Ok(outcome)
}

/// Sums the entries per account, in lock order.
fn net_changes(
    movement: &Movement,
) -> Result<(BTreeMap<Account, SignedWei>, UserDeltas), EntityError> {
    let overflow = || EntityError::InvalidMovement(format!("`{}` overflows", movement.reference));
    let mut system = BTreeMap::new();
    let mut users: UserDeltas = BTreeMap::new();
    for entry in &movement.entries {
        match entry.account {
            Account::UserAvailable(user_id) => {
                let slot = users.entry(user_id).or_default();
                slot.0 = slot.0.checked_add(entry.amount).ok_or_else(overflow)?;
            }
            Account::UserReserved(user_id) => {
                let slot = users.entry(user_id).or_default();
                slot.1 = slot.1.checked_add(entry.amount).ok_or_else(overflow)?;
            }
            account => {
                let slot: &mut SignedWei = system.entry(account).or_default();
                *slot = slot.checked_add(entry.amount).ok_or_else(overflow)?;
            }
        }
    }
    Ok((system, users))
}

/// Applies `change` to a system account with the optimistic version check.
async fn apply_system(
    txn: &DatabaseTransaction,
    account: Account,
    change: SignedWei,
    now: DateTimeUtc,
) -> Result<(), EntityError> {
    let id = account
        .system_id()
        .ok_or_else(|| EntityError::InvalidMovement("not a system account".into()))?;
    for _ in 0..MAX_OPTIMISTIC_ATTEMPTS {
        let row = ledger_accounts::Entity::find_by_id(id)
            .one(txn)
            .await?
            .ok_or_else(|| {
                EntityError::Corrupt(format!("system account `{id}` is missing; run migrations"))
            })?;
        let balance = row
            .balance
            .checked_add(change)
            .ok_or_else(|| EntityError::InvalidMovement(format!("`{id}` balance overflows")))?;
        // The supply account is the source of every token and runs negative
        // by design; the sinks never do.
        if balance.is_negative() && account != Account::Supply {
            return Err(EntityError::InsufficientBalance {
                account: account.kind().to_value_str(),
                user_id: None,
                balance: row.balance,
                change,
            });
        }
        let updated = ledger_accounts::Entity::update_many()
            .set(ledger_accounts::ActiveModel {
                balance: Set(balance),
                version: Set(row.version + 1),
                updated_at: Set(now),
                ..Default::default()
            })
            .filter(ledger_accounts::Column::Id.eq(id))
            .filter(ledger_accounts::Column::Version.eq(row.version))
            .exec(txn)
            .await?;
        if updated.rows_affected == 1 {
            return Ok(());
        }
    }
    Err(EntityError::Contention(format!("ledger account `{id}`")))
}

/// Creates zero balance rows for `users` that have none; a row a
/// concurrent creator made first is left as it is (the caller reads again).
async fn create_balances(
    txn: &DatabaseTransaction,
    users: impl IntoIterator<Item = Uuid>,
    now: DateTimeUtc,
) -> Result<(), EntityError> {
    let rows = users.into_iter().map(|user_id| user_balances::ActiveModel {
        user_id: Set(user_id),
        available: Set(SignedWei::ZERO),
        reserved: Set(SignedWei::ZERO),
        version: Set(0),
        updated_at: Set(now),
    });
    user_balances::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(user_balances::Column::UserId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Applies changes to a user's two accounts with the optimistic version check.
async fn apply_user(
    txn: &DatabaseTransaction,
    user_id: Uuid,
    available_change: SignedWei,
    reserved_change: SignedWei,
    now: DateTimeUtc,
) -> Result<(), EntityError> {
    for _ in 0..MAX_OPTIMISTIC_ATTEMPTS {
        let Some(row) = user_balances::Entity::find_by_id(user_id).one(txn).await? else {
            // Users created by `users::find_or_create` already have a row;
            // this covers rows created any other way. A concurrent creator
            // makes this a no-op, and the next read sees its row.
            create_balances(txn, [user_id], now).await?;
            continue;
        };
        let (available, reserved) = moved(&row, available_change, reserved_change)?;
        let updated = user_balances::Entity::update_many()
            .set(user_balances::ActiveModel {
                available: Set(available),
                reserved: Set(reserved),
                version: Set(row.version + 1),
                updated_at: Set(now),
                ..Default::default()
            })
            .filter(user_balances::Column::UserId.eq(user_id))
            .filter(user_balances::Column::Version.eq(row.version))
            .exec(txn)
            .await?;
        if updated.rows_affected == 1 {
            return Ok(());
        }
    }
    Err(EntityError::Contention(format!("user balance {user_id}")))
}

/// `row`'s balances after the changes; refused when either would go below zero.
fn moved(
    row: &user_balances::Model,
    available_change: SignedWei,
    reserved_change: SignedWei,
) -> Result<(SignedWei, SignedWei), EntityError> {
    let user_id = row.user_id;
    let overflow = || EntityError::InvalidMovement(format!("balance of {user_id} overflows"));
    let available = row
        .available
        .checked_add(available_change)
        .ok_or_else(overflow)?;
    let reserved = row
        .reserved
        .checked_add(reserved_change)
        .ok_or_else(overflow)?;
    for (account, balance, before, change) in [
        (
            AccountKind::UserAvailable,
            available,
            row.available,
            available_change,
        ),
        (
            AccountKind::UserReserved,
            reserved,
            row.reserved,
            reserved_change,
        ),
    ] {
        if balance.is_negative() {
            return Err(EntityError::InsufficientBalance {
                account: account.to_value_str(),
                user_id: Some(user_id),
                balance: before,
                change,
            });
        }
    }
    Ok((available, reserved))
}

/// Applies the changes of several users (a confirmed batch of mints) as
/// [`apply_user`] applies one user's, in two statements per
/// [`ROWS_PER_INSERT`] users instead of two per user: one read of all the
/// rows, one `UPDATE ... FROM` a list of values writing each row's new
/// balances, guarded by the version read. The new balances are computed
/// here in Rust, as everywhere in the ledger: SQLite has no exact
/// arithmetic on the decimal strings.
///
/// On PostgreSQL the read locks the rows (`FOR UPDATE`) in id order, the
/// order every posting takes user rows in: one UPDATE over many rows would
/// lock them in whatever order its plan visits them, and two batches
/// crediting the same users could deadlock. So the version check cannot
/// fail there; it stays for the same reason as in [`apply_user`], and a row
/// that missed it is read and written again.
async fn apply_users(
    txn: &DatabaseTransaction,
    users: UserDeltas,
    now: DateTimeUtc,
) -> Result<(), EntityError> {
    let users: Vec<(Uuid, (SignedWei, SignedWei))> = users.into_iter().collect();
    for chunk in users.chunks(ROWS_PER_INSERT) {
        let mut pending: UserDeltas = chunk.iter().copied().collect();
        let mut attempts = 0;
        while !pending.is_empty() {
            if attempts == MAX_OPTIMISTIC_ATTEMPTS {
                return Err(EntityError::Contention(format!(
                    "{} user balances",
                    pending.len()
                )));
            }
            attempts += 1;
            let rows = user_balances::Entity::find()
                .filter(user_balances::Column::UserId.is_in(pending.keys().copied()))
                .order_by_asc(user_balances::Column::UserId)
                .lock_exclusive()
                .all(txn)
                .await?;
            if rows.len() < pending.len() {
                // As in `apply_user`: rows made other than by
                // `users::find_or_create` start at zero, then are read again.
                let missing = pending
                    .keys()
                    .copied()
                    .filter(|id| !rows.iter().any(|row| row.user_id == *id));
                create_balances(txn, missing, now).await?;
                continue;
            }
            let mut moves = Vec::with_capacity(rows.len());
            for row in &rows {
                let (available_change, reserved_change) = pending[&row.user_id];
                let (available, reserved) = moved(row, available_change, reserved_change)?;
                moves.push((row.user_id, available, reserved, row.version));
            }
            for user_id in write_balances(txn, &moves, now).await? {
                pending.remove(&user_id);
            }
        }
    }
    Ok(())
}

/// Sets each user's balances to `(user, available, reserved, version read)`
/// in one statement, where the row still has the version read (and bumps
/// it); returns the users written.
async fn write_balances(
    txn: &DatabaseTransaction,
    moves: &[(Uuid, SignedWei, SignedWei, i64)],
    now: DateTimeUtc,
) -> Result<Vec<Uuid>, EntityError> {
    let backend = txn.get_database_backend();
    let mut values: Vec<Value> = Vec::with_capacity(moves.len() * 4 + 1);
    let mut bind = |value: Value| {
        values.push(value);
        match backend {
            DbBackend::Postgres => format!("${}", values.len()),
            _ => "?".to_owned(),
        }
    };
    let mut rows = Vec::with_capacity(moves.len());
    for &(user_id, available, reserved, version) in moves {
        rows.push(format!(
            "({}, CAST({} AS wei_text), CAST({} AS wei_text), {})",
            bind(user_id.into()),
            bind(available.to_string().into()),
            bind(reserved.to_string().into()),
            bind(version.into()),
        ));
    }
    // `v`'s columns are named apart from the table's, so nothing is
    // ambiguous; SQLite names a VALUES list's columns only through a CTE.
    let sql = format!(
        "WITH v (id, available, reserved, version) AS (VALUES {}) \
         UPDATE user_balances SET available = v.available, reserved = v.reserved, \
         version = v.version + 1, updated_at = {} \
         FROM v WHERE user_balances.user_id = v.id AND user_balances.version = v.version \
         RETURNING user_id",
        rows.join(", "),
        bind(now.into()),
    );
    let written = txn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    written
        .iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "user_id")?))
        .collect()
}

/// A user's balances; zero when the user has never had a posting.
pub async fn user_balance<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
) -> Result<Balance, EntityError> {
    Ok(user_balances::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .map(|row| Balance {
            available: row.available,
            reserved: row.reserved,
            version: row.version,
        })
        .unwrap_or_default())
}

/// The balance of a system account (`Supply`, `Burned` or `Payout`).
pub async fn system_balance<C: ConnectionTrait>(
    db: &C,
    account: Account,
) -> Result<SignedWei, EntityError> {
    let id = account
        .system_id()
        .ok_or_else(|| EntityError::InvalidMovement("not a system account".into()))?;
    ledger_accounts::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(|row| row.balance)
        .ok_or_else(|| EntityError::Corrupt(format!("system account `{id}` is missing")))
}

impl AccountKind {
    /// The stored name, e.g. `user_available`.
    pub fn to_value_str(self) -> &'static str {
        match self {
            Self::Supply => "supply",
            Self::Burned => "burned",
            Self::Payout => "payout",
            Self::UserAvailable => "user_available",
            Self::UserReserved => "user_reserved",
        }
    }
}
