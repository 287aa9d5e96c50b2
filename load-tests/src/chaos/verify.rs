//! What the matrix holds the system to, checked from outside: the chain's
//! own `balanceOf`, `refUsed`, `totalMinted` and `totalBurned`, and the
//! payout provider's own list of payouts, against what every accepted
//! event must have done. The database is read only to find each event's
//! chain reference and wallet, never taken at its word for the outcome.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy::primitives::{Address, B256, U256};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use haven_chain::contract::HAVEN;
use haven_entity::redemptions::{self, RedemptionState};
use haven_entity::rewards::{self, RewardStatus};
use haven_entity::token_transactions::{self, TxStatus, TxType};
use haven_entity::users;
use sea_orm::{DatabaseConnection, EntityTrait};
use serde::Serialize;
use uuid::Uuid;

use super::stack::Stack;
use super::traffic::{Effect, Guest, Outcome, Sent};

/// Problems listed in the report per row, at most.
const MAX_PROBLEMS: usize = 20;

/// The database's rows of one run, read at once.
#[derive(Debug, Default)]
pub struct Snapshot {
    rewards: HashMap<String, rewards::Model>,
    txs: HashMap<String, token_transactions::Model>,
    users: HashMap<(String, String), users::Model>,
    redemptions: HashMap<Uuid, redemptions::Model>,
    redemptions_by_key: HashMap<String, Uuid>,
}

impl Snapshot {
    /// Reads the rewards, token transactions, users and redemptions.
    pub async fn load(db: &DatabaseConnection) -> anyhow::Result<Self> {
        let rewards = rewards::Entity::find().all(db).await.context("rewards")?;
        let txs = token_transactions::Entity::find()
            .all(db)
            .await
            .context("token transactions")?;
        let users = users::Entity::find().all(db).await.context("users")?;
        let redemptions = redemptions::Entity::find()
            .all(db)
            .await
            .context("redemptions")?;
        Ok(Self {
            rewards: rewards
                .into_iter()
                .map(|r| (r.source_reference.clone(), r))
                .collect(),
            txs: txs.into_iter().map(|t| (t.tx_id.clone(), t)).collect(),
            users: users
                .into_iter()
                .map(|u| ((u.partner.clone(), u.external_id.clone()), u))
                .collect(),
            redemptions_by_key: redemptions
                .iter()
                .map(|r| (r.idempotency_key.clone(), r.request_id))
                .collect(),
            redemptions: redemptions.into_iter().map(|r| (r.request_id, r)).collect(),
        })
    }

    /// The confirmed transaction of a reward, when it has one.
    fn reward_tx(&self, source_reference: &str) -> Option<&token_transactions::Model> {
        let reward = self.rewards.get(source_reference)?;
        self.txs.get(reward.token_tx_id.as_deref()?)
    }

    /// Whether a cancelled booking's reward is gone for good: never
    /// granted, its mint withdrawn before it went out, or its reversal burn
    /// (`reversal_<reward id>`) confirmed and final.
    fn reversed(&self, source_reference: &str) -> bool {
        let Some(reward) = self.rewards.get(source_reference) else {
            return true;
        };
        match reward.status {
            RewardStatus::Cancelled => true,
            RewardStatus::Reversed => self
                .txs
                .get(&format!("reversal_{}", reward.id))
                .is_none_or(|t| t.status == TxStatus::Confirmed && t.final_at.is_some()),
            _ => false,
        }
    }

    fn redemption(&self, request_id: Option<Uuid>, key: &str) -> Option<&redemptions::Model> {
        request_id
            .or_else(|| self.redemptions_by_key.get(key).copied())
            .and_then(|id| self.redemptions.get(&id))
    }

    /// Whether `sent` has reached its end in the database: its mint
    /// confirmed and final, its cancellation done, its redemption paid or
    /// refunded. Used to tell when the backlog has drained.
    pub fn settled(&self, sent: &Sent) -> bool {
        let is_final =
            |t: &token_transactions::Model| t.status == TxStatus::Confirmed && t.final_at.is_some();
        match &sent.effect {
            Effect::Reward {
                source_reference,
                cancelled: false,
                ..
            } => self.reward_tx(source_reference).is_some_and(is_final),
            Effect::Reward {
                source_reference, ..
            } => self.reversed(source_reference),
            Effect::Mint { tx_id, .. } => self.txs.get(tx_id).is_some_and(is_final),
            Effect::Redeem {
                request_id, key, ..
            } => self.redemption(*request_id, key).is_none_or(|r| {
                matches!(r.state, RedemptionState::Paid | RedemptionState::Refunded)
            }),
            Effect::Cancel { .. } | Effect::Nothing => true,
        }
    }

    /// When its mint was confirmed, for the latency of a reward or mint.
    pub fn confirmed_at(&self, sent: &Sent) -> Option<DateTime<Utc>> {
        match &sent.effect {
            Effect::Reward {
                source_reference,
                cancelled: false,
                ..
            } => self.reward_tx(source_reference)?.confirmed_at,
            Effect::Mint { tx_id, .. } => self.txs.get(tx_id)?.confirmed_at,
            _ => None,
        }
    }
}

/// Whether an event counts: answered 2xx, or unanswered but in the database
/// (its answer was lost, the partner gave up, and it is still owed exactly once).
fn counts(sent: &Sent, snapshot: &Snapshot) -> bool {
    match &sent.outcome {
        Outcome::Accepted => true,
        Outcome::Refused(_) => false,
        Outcome::Unanswered(_) => had_effect(sent, snapshot),
    }
}

/// The outcome of the checks of one row.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Verdict {
    /// Events that did what they must, seen on chain (and at the provider).
    pub confirmed: u64,
    /// Events whose effect is missing.
    pub lost: u64,
    /// Events whose effect happened more than once (or a refused one that
    /// had an effect).
    pub duplicated: u64,
    /// The first problems found, in words.
    pub problems: Vec<String>,
    /// `totalMinted` on chain and the ledger's sum of confirmed mints, wei.
    pub total_minted: (String, String),
    /// `totalBurned` on chain and the ledger's sum of confirmed burns, wei.
    pub total_burned: (String, String),
}

impl Verdict {
    fn problem(&mut self, text: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(text);
        }
    }
}

/// Checks every event of the run against the chain and the provider;
/// `snapshot` is the database read after the drain.
pub async fn check(stack: &Stack, snapshot: &Snapshot, sent: &[Sent]) -> anyhow::Result<Verdict> {
    let mut verdict = Verdict::default();
    let mut expected: BTreeMap<Guest, i128> = BTreeMap::new();
    let mut short_guests: HashSet<Guest> = HashSet::new();
    let payouts = stack.provider.payouts();
    let mut payouts_of: HashMap<String, usize> = HashMap::new();
    for payout in &payouts {
        *payouts_of
            .entry(payout.request.reference.clone())
            .or_default() += 1;
    }

    for event in sent {
        if !counts(event, snapshot) {
            if let Outcome::Refused(why) = &event.outcome
                && had_effect(event, snapshot)
            {
                verdict.duplicated += 1;
                verdict.problem(format!("{} refused ({why}) but took effect", event.kind));
            }
            continue;
        }
        match &event.effect {
            Effect::Reward {
                source_reference,
                guest,
                wei,
                cancelled,
            } => {
                if *cancelled {
                    let status = snapshot.rewards.get(source_reference).map(|r| r.status);
                    if snapshot.reversed(source_reference) {
                        verdict.confirmed += 1;
                    } else {
                        verdict.lost += 1;
                        short_guests.insert(guest.clone());
                        verdict.problem(format!(
                            "cancelled booking {source_reference} still {status:?}"
                        ));
                    }
                    continue;
                }
                *expected.entry(guest.clone()).or_default() += signed(*wei);
                match snapshot.reward_tx(source_reference) {
                    Some(tx) if on_chain(stack, tx).await? => verdict.confirmed += 1,
                    found => {
                        verdict.lost += 1;
                        short_guests.insert(guest.clone());
                        verdict.problem(format!(
                            "{source_reference}: {}",
                            describe(snapshot.rewards.get(source_reference), found)
                        ));
                    }
                }
            }
            Effect::Mint { tx_id, guest, wei } => {
                *expected.entry(guest.clone()).or_default() += signed(*wei);
                match snapshot.txs.get(tx_id) {
                    Some(tx) if on_chain(stack, tx).await? => verdict.confirmed += 1,
                    found => {
                        verdict.lost += 1;
                        short_guests.insert(guest.clone());
                        verdict.problem(format!(
                            "mint {tx_id}: {}",
                            found
                                .map_or("no transaction".to_owned(), |t| format!("{:?}", t.status))
                        ));
                    }
                }
            }
            Effect::Redeem {
                request_id,
                key,
                guest,
                wei,
            } => {
                let Some(redemption) = snapshot.redemption(*request_id, key) else {
                    verdict.lost += 1;
                    verdict.problem(format!("redemption {key} accepted but not recorded"));
                    continue;
                };
                let made = payouts_of
                    .get(&redemption.request_id.to_string())
                    .copied()
                    .unwrap_or(0);
                match (redemption.state, made) {
                    (RedemptionState::Paid, 1) => {
                        *expected.entry(guest.clone()).or_default() -= signed(*wei);
                        verdict.confirmed += 1;
                    }
                    (RedemptionState::Refunded, 0) => verdict.confirmed += 1,
                    (RedemptionState::Paid | RedemptionState::Refunded, n) => {
                        verdict.duplicated += 1;
                        verdict.problem(format!(
                            "redemption {} {:?} with {n} payouts",
                            redemption.request_id, redemption.state
                        ));
                        if redemption.state == RedemptionState::Paid {
                            *expected.entry(guest.clone()).or_default() -= signed(*wei);
                        }
                    }
                    (state, n) => {
                        verdict.lost += 1;
                        verdict.problem(format!(
                            "redemption {} stuck {state:?} ({n} payouts; {:?})",
                            redemption.request_id, redemption.failure_reason
                        ));
                        // Its tokens are reserved or burned: what the chain
                        // holds is not told by the events alone.
                        short_guests.insert(guest.clone());
                    }
                }
            }
            Effect::Cancel { .. } | Effect::Nothing => {}
        }
    }

    // Every guest's balance on chain is exactly what their events add up to.
    for (guest, want) in &expected {
        let Some(user) = snapshot
            .users
            .get(&(guest.partner.to_owned(), guest.external_id.clone()))
        else {
            continue; // their events are counted lost above
        };
        let wallet: Address = user
            .wallet_address
            .parse()
            .with_context(|| format!("wallet of {}", user.id))?;
        let have = i128::try_from(stack.balance_of(wallet).await?).unwrap_or(i128::MAX);
        if have > *want {
            verdict.duplicated += 1;
            verdict.problem(format!(
                "{}:{} holds {have} wei, owed {want}",
                guest.partner, guest.external_id
            ));
        } else if have < *want && !short_guests.contains(guest) {
            verdict.lost += 1;
            verdict.problem(format!(
                "{}:{} holds {have} wei, owed {want}",
                guest.partner, guest.external_id
            ));
        }
    }

    // No chain reference used by two transactions, and the contract's own
    // totals equal the ledger's.
    let mut references = HashSet::new();
    let (mut minted, mut burned) = (0i128, 0i128);
    for tx in snapshot.txs.values() {
        if !tx.chain_reference.is_empty() && !references.insert(tx.chain_reference.clone()) {
            verdict.duplicated += 1;
            verdict.problem(format!("chain reference of {} used twice", tx.tx_id));
        }
        if tx.status == TxStatus::Confirmed {
            let amount = i128::from(tx.amount);
            match tx.tx_type {
                TxType::Mint => minted += amount,
                TxType::Burn => burned += amount,
            }
        }
    }
    let total_minted: U256 = stack
        .rpc()
        .view(stack.contract, &HAVEN::totalMintedCall {})
        .await
        .context("totalMinted")?;
    let total_burned: U256 = stack
        .rpc()
        .view(stack.contract, &HAVEN::totalBurnedCall {})
        .await
        .context("totalBurned")?;
    verdict.total_minted = (total_minted.to_string(), minted.to_string());
    verdict.total_burned = (total_burned.to_string(), burned.to_string());
    for (what, chain, ledger) in [
        ("totalMinted", total_minted, minted),
        ("totalBurned", total_burned, burned),
    ] {
        let chain = i128::try_from(chain).unwrap_or(i128::MAX);
        if chain > ledger {
            verdict.duplicated += 1;
            verdict.problem(format!("{what} {chain} > ledger {ledger}"));
        } else if chain < ledger {
            verdict.lost += 1;
            verdict.problem(format!("{what} {chain} < ledger {ledger}"));
        }
    }
    if verdict.lost + verdict.duplicated > 0 {
        for tx in snapshot
            .txs
            .values()
            .filter(|t| t.status != TxStatus::Confirmed)
            .take(5)
        {
            verdict.problem(format!(
                "unconfirmed {:?} {} of {} wei ({}): {:?}, {}",
                tx.tx_type,
                tx.tx_id,
                i128::from(tx.amount),
                tx.reason,
                tx.status,
                tx.last_error.as_deref().unwrap_or("no error")
            ));
        }
    }
    Ok(verdict)
}

fn signed(wei: u128) -> i128 {
    i128::try_from(wei).unwrap_or(i128::MAX)
}

/// A confirmed transaction whose reference the contract has used.
async fn on_chain(stack: &Stack, tx: &token_transactions::Model) -> anyhow::Result<bool> {
    if tx.status != TxStatus::Confirmed || tx.chain_reference.len() != 32 {
        return Ok(false);
    }
    let reference = B256::from_slice(&tx.chain_reference);
    stack
        .rpc()
        .view(stack.contract, &HAVEN::refUsedCall { r#ref: reference })
        .await
        .context("refUsed")
}

/// Whether the database holds what `sent` would have written (a refused
/// event must not have; the load never sends one event twice).
fn had_effect(sent: &Sent, snapshot: &Snapshot) -> bool {
    match &sent.effect {
        Effect::Reward {
            source_reference, ..
        } => snapshot.rewards.contains_key(source_reference),
        Effect::Mint { tx_id, .. } => snapshot.txs.contains_key(tx_id),
        Effect::Redeem { key, .. } => snapshot.redemptions_by_key.contains_key(key),
        Effect::Cancel { .. } | Effect::Nothing => false,
    }
}

fn describe(reward: Option<&rewards::Model>, tx: Option<&token_transactions::Model>) -> String {
    match (reward, tx) {
        (None, _) => "no reward".to_owned(),
        (Some(r), None) => format!("reward {:?}, no transaction", r.status),
        (Some(r), Some(t)) => format!(
            "reward {:?}, mint {:?} ({}), reference not used on chain",
            r.status,
            t.status,
            t.last_error.as_deref().unwrap_or("no error")
        ),
    }
}
