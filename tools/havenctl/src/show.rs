//! `havenctl show`: a user, a token transaction, a redemption or a partner
//! event, with its history, read from the database. Changes nothing.

use chrono::{DateTime, Utc};
use haven_common::config::DatabaseConfig;
use haven_common::db;
use haven_common::money::Wei;
use haven_entity::redemptions::{self, RedemptionState};
use haven_entity::token_transactions::{self, TxStatus};
use haven_entity::{
    SignedWei, inbound_events, ledger_entries, ledger_movements, redemption_states, rewards,
    user_balances, users,
};
use haven_messages::PartnerEvent;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::cli::Show;
use crate::{Error, Output};

/// Most rows of one kind shown under a user or an event.
const LATEST: u64 = 20;
/// How `once_per_key` joins the parts of a composite event key.
const KEY_SEPARATOR: char = '\u{1f}';

pub(crate) async fn run(command: Show) -> Result<Output, Error> {
    match command {
        Show::User { id, database } => user(&connect(&database).await?, &id).await,
        Show::Tx { tx_id, database } => tx(&connect(&database).await?, &tx_id).await,
        Show::Redemption {
            request_id,
            database,
        } => redemption(&connect(&database).await?, request_id).await,
        Show::Event {
            partner,
            event_id,
            database,
        } => event(&connect(&database).await?, &partner, &event_id).await,
    }
}

pub(crate) async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, Error> {
    Ok(db::connect(config).await?)
}

/// An amount as exact decimal HNV text (`-12.5`), never a float.
pub(crate) fn hnv(amount: SignedWei) -> String {
    let wei = amount.get();
    let magnitude = Wei::from_wei(wei.unsigned_abs());
    if wei < 0 {
        format!("-{magnitude}")
    } else {
        magnitude.to_string()
    }
}

fn or_dash(s: Option<&str>) -> &str {
    s.unwrap_or("-")
}

fn tx_json(tx: &token_transactions::Model) -> Value {
    json!({
        "tx_id": tx.tx_id,
        "id": tx.id,
        "type": format!("{:?}", tx.tx_type).to_lowercase(),
        "amount": hnv(tx.amount),
        "reason": tx.reason,
        "status": status(tx.status),
        "tx_hash": tx.tx_hash,
        "block_number": tx.block_number,
        "last_error": tx.last_error,
        "chain_reference": format!("0x{}", hex::encode(&tx.chain_reference)),
        "reorgs": tx.reorgs,
        "requested_by": tx.requested_by,
        "accepted_at": tx.accepted_at,
        "created_at": tx.created_at,
        "submitted_at": tx.submitted_at,
        "confirmed_at": tx.confirmed_at,
        "final_at": tx.final_at,
    })
}

fn tx_line(tx: &token_transactions::Model) -> String {
    format!(
        "{} {} {} HNV ({}) {} hash={} block={} requested_by={}",
        tx.tx_id,
        format!("{:?}", tx.tx_type).to_lowercase(),
        hnv(tx.amount),
        tx.reason,
        status(tx.status),
        or_dash(tx.tx_hash.as_deref()),
        tx.block_number
            .map_or_else(|| "-".to_owned(), |b| b.to_string()),
        or_dash(tx.requested_by.as_deref()),
    )
}

fn status(s: TxStatus) -> &'static str {
    match s {
        TxStatus::Pending => "pending",
        TxStatus::Submitted => "submitted",
        TxStatus::Confirmed => "confirmed",
        TxStatus::Failed => "failed",
        TxStatus::Cancelled => "cancelled",
    }
}

/// A transaction's own history, from its timestamps.
fn tx_history(tx: &token_transactions::Model) -> Vec<(DateTime<Utc>, String)> {
    let mut out = vec![(tx.created_at, format!("{} recorded (pending)", tx.tx_id))];
    if let Some(at) = tx.submitted_at {
        out.push((
            at,
            format!("{} sent, hash {}", tx.tx_id, or_dash(tx.tx_hash.as_deref())),
        ));
    }
    if let Some(at) = tx.confirmed_at {
        out.push((
            at,
            format!(
                "{} confirmed in block {}",
                tx.tx_id,
                tx.block_number.unwrap_or_default()
            ),
        ));
    }
    if let Some(at) = tx.final_at {
        out.push((at, format!("{} final", tx.tx_id)));
    }
    if matches!(tx.status, TxStatus::Failed | TxStatus::Cancelled) {
        out.push((
            tx.updated_at,
            format!(
                "{} {}: {}",
                tx.tx_id,
                status(tx.status),
                or_dash(tx.last_error.as_deref())
            ),
        ));
    }
    out
}

/// The ledger movements with these references, each with its entries.
async fn movements(db: &DatabaseConnection, references: &[String]) -> Result<Vec<Value>, Error> {
    let found = ledger_movements::Entity::find()
        .filter(ledger_movements::Column::Reference.is_in(references.iter().cloned()))
        .order_by_asc(ledger_movements::Column::CreatedAt)
        .all(db)
        .await?;
    let mut out = Vec::with_capacity(found.len());
    for movement in found {
        let entries = ledger_entries::Entity::find()
            .filter(ledger_entries::Column::MovementId.eq(movement.id))
            .order_by_asc(ledger_entries::Column::Id)
            .all(db)
            .await?;
        out.push(json!({
            "reference": movement.reference,
            "kind": format!("{:?}", movement.kind).to_lowercase(),
            "created_at": movement.created_at,
            "entries": entries.iter().map(|e| json!({
                "account": format!("{:?}", e.account),
                "user_id": e.user_id,
                "amount": hnv(e.amount),
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(out)
}

/// A "history:" heading and one indented line per step, oldest first.
fn history_lines(history: &[(DateTime<Utc>, String)]) -> Vec<String> {
    std::iter::once("history:".to_owned())
        .chain(
            history
                .iter()
                .map(|(at, what)| format!("  {} {what}", at.to_rfc3339())),
        )
        .collect()
}

fn movement_lines(movements: &[Value]) -> Vec<String> {
    movements
        .iter()
        .map(|m| {
            let entries: Vec<String> = m["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    format!(
                        "{} {}",
                        e["account"].as_str().unwrap_or("?"),
                        e["amount"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            format!(
                "  ledger {} ({}) at {}: {}",
                m["reference"].as_str().unwrap_or("?"),
                m["kind"].as_str().unwrap_or("?"),
                m["created_at"].as_str().unwrap_or("?"),
                entries.join(", ")
            )
        })
        .collect()
}

/// The ledger references a transaction's confirmation posts (chain-minter's).
fn tx_references(tx: &token_transactions::Model) -> Vec<String> {
    vec![format!("mint:{}", tx.id), format!("burn:{}", tx.id)]
}

async fn user_by_any_id(db: &DatabaseConnection, id: &str) -> Result<users::Model, Error> {
    if let Some(user) = users::find_by_external_id(db, id).await? {
        return Ok(user);
    }
    if let Ok(uuid) = id.parse::<Uuid>()
        && let Some(user) = users::Entity::find_by_id(uuid).one(db).await?
    {
        return Ok(user);
    }
    Err(Error::NotFound(format!("no user `{id}`")))
}

async fn user(db: &DatabaseConnection, id: &str) -> Result<Output, Error> {
    let user = user_by_any_id(db, id).await?;
    let balance = user_balances::Entity::find_by_id(user.id).one(db).await?;
    let txs = token_transactions::history(db, user.id, LATEST, 0).await?;
    let redemptions = redemptions::Entity::find()
        .filter(redemptions::Column::UserId.eq(user.id))
        .order_by_desc(redemptions::Column::CreatedAt)
        .limit(LATEST)
        .all(db)
        .await?;
    let (available, reserved) = balance
        .as_ref()
        .map_or((SignedWei::ZERO, SignedWei::ZERO), |b| {
            (b.available, b.reserved)
        });
    let mut lines = vec![
        format!(
            "user {} (internal id {}), partner {}, wallet {}, kyc_verified {}, since {}",
            user.external_id,
            user.id,
            user.partner,
            user.wallet_address,
            user.kyc_verified,
            user.created_at.to_rfc3339()
        ),
        format!(
            "balance: {} HNV available, {} HNV reserved",
            hnv(available),
            hnv(reserved)
        ),
        format!("latest {} token transaction(s):", txs.len()),
    ];
    lines.extend(txs.iter().map(|t| format!("  {}", tx_line(t))));
    lines.push(format!("latest {} redemption(s):", redemptions.len()));
    lines.extend(redemptions.iter().map(|r| {
        format!(
            "  {} {} {} HNV, created {}",
            r.request_id,
            r.state.as_str(),
            hnv(r.amount),
            r.created_at.to_rfc3339()
        )
    }));
    let json = json!({
        "user": {
            "user_id": user.external_id,
            "id": user.id,
            "partner": user.partner,
            "email": user.email,
            "wallet_address": user.wallet_address,
            "kyc_verified": user.kyc_verified,
            "created_at": user.created_at,
        },
        "balance": { "available": hnv(available), "reserved": hnv(reserved) },
        "transactions": txs.iter().map(tx_json).collect::<Vec<_>>(),
        "redemptions": redemptions.iter().map(redemption_json).collect::<Vec<_>>(),
    });
    Ok(Output::new(lines, json))
}

async fn tx(db: &DatabaseConnection, tx_id: &str) -> Result<Output, Error> {
    let tx = token_transactions::find_by_tx_id(db, tx_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no token transaction `{tx_id}`")))?;
    let user = users::Entity::find_by_id(tx.user_id).one(db).await?;
    let movements = movements(db, &tx_references(&tx)).await?;
    let reward = rewards::Entity::find()
        .filter(rewards::Column::TokenTxId.eq(tx.tx_id.clone()))
        .one(db)
        .await?;
    let refunded = redemption_payout::store::refunded_redemption(&tx.tx_id);
    let redemption = redemptions::Entity::find()
        .filter(
            Condition::any()
                .add(redemptions::Column::BurnTxId.eq(tx.tx_id.clone()))
                .add(redemptions::Column::RequestId.is_in(refunded)),
        )
        .one(db)
        .await?;
    let mut history = tx_history(&tx);
    history.sort_by_key(|(at, _)| *at);
    let mut lines = vec![
        tx_line(&tx),
        format!(
            "user {} wallet {}",
            user.as_ref().map_or("?", |u| u.external_id.as_str()),
            user.as_ref().map_or("?", |u| u.wallet_address.as_str())
        ),
    ];
    if let Some(error) = &tx.last_error {
        lines.push(format!("last error: {error}"));
    }
    lines.extend(history_lines(&history));
    lines.extend(movement_lines(&movements));
    if let Some(reward) = &reward {
        lines.push(format!(
            "pays reward {} ({}, rule {}, {})",
            reward.id,
            reward.source_reference,
            reward.rule,
            format!("{:?}", reward.status).to_lowercase()
        ));
    }
    if let Some(r) = &redemption {
        lines.push(format!(
            "belongs to redemption {} ({})",
            r.request_id,
            r.state.as_str()
        ));
    }
    let json = json!({
        "transaction": tx_json(&tx),
        "user_id": user.as_ref().map(|u| u.external_id.clone()),
        "history": history_json(&history),
        "ledger_movements": movements,
        "reward": reward.as_ref().map(reward_json),
        "redemption_id": redemption.as_ref().map(|r| r.request_id),
    });
    Ok(Output::new(lines, json))
}

fn history_json(history: &[(DateTime<Utc>, String)]) -> Value {
    history
        .iter()
        .map(|(at, what)| json!({ "at": at, "event": what }))
        .collect()
}

fn reward_json(reward: &rewards::Model) -> Value {
    json!({
        "id": reward.id,
        "source_reference": reward.source_reference,
        "rule": reward.rule,
        "rule_version": reward.rule_version,
        "amount": hnv(reward.amount),
        "status": format!("{:?}", reward.status).to_lowercase(),
        "token_tx_id": reward.token_tx_id,
        "created_at": reward.created_at,
    })
}

fn redemption_json(r: &redemptions::Model) -> Value {
    json!({
        "request_id": r.request_id,
        "state": r.state.as_str(),
        "amount": hnv(r.amount),
        "burn_amount": hnv(r.burn_amount),
        "payout_amount": hnv(r.payout_amount),
        "payout_fiat_amount": r.payout_fiat_amount,
        "payout_currency": r.payout_currency,
        "method": format!("{:?}", r.method).to_lowercase(),
        "address": r.address,
        "burn_tx_id": r.burn_tx_id,
        "payout_id": r.payout_reference,
        "failure_reason": r.failure_reason,
        "idempotency_key": r.idempotency_key,
        "requested_by": r.requested_by,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "completed_at": r.completed_at,
    })
}

async fn redemption(db: &DatabaseConnection, request_id: Uuid) -> Result<Output, Error> {
    let r = redemptions::Entity::find_by_id(request_id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no redemption `{request_id}`")))?;
    let user = users::Entity::find_by_id(r.user_id).one(db).await?;
    let burn_tx_id = r
        .burn_tx_id
        .clone()
        .unwrap_or_else(|| redemption_payout::store::burn_tx_id(request_id));
    let burn = token_transactions::find_by_tx_id(db, &burn_tx_id).await?;
    let refund =
        token_transactions::find_by_tx_id(db, &redemption_payout::store::refund_tx_id(request_id))
            .await?;

    // Every state it entered (recorded by the database as it changed), and
    // what its burn and refund went through.
    let mut history: Vec<(DateTime<Utc>, String)> = redemption_states::history(db, request_id)
        .await?
        .into_iter()
        .map(|s| (s.entered_at, s.state.as_str().to_owned()))
        .collect();
    if history.is_empty() {
        history.push((r.created_at, RedemptionState::Reserved.as_str().to_owned()));
    }
    for tx in burn.iter().chain(refund.iter()) {
        history.extend(tx_history(tx));
    }
    if let Some(payout) = &r.payout_reference {
        history.push((r.updated_at, format!("payout id {payout}")));
    }
    history.sort_by_key(|(at, _)| *at);

    let mut references = vec![
        format!("reserve:{request_id}"),
        format!("release:{request_id}"),
        format!("payout:{request_id}"),
    ];
    for tx in burn.iter().chain(refund.iter()) {
        references.extend(tx_references(tx));
    }
    let movements = movements(db, &references).await?;

    let mut lines = vec![
        format!(
            "redemption {} of user {}: {} ({} HNV, payout {} HNV{}, {:?}), requested by {}",
            r.request_id,
            user.as_ref().map_or("?", |u| u.external_id.as_str()),
            r.state.as_str(),
            hnv(r.amount),
            hnv(r.payout_amount),
            r.payout_fiat_amount
                .as_ref()
                .map(|a| format!(" = {a} {}", or_dash(r.payout_currency.as_deref())))
                .unwrap_or_default(),
            r.method,
            or_dash(r.requested_by.as_deref()),
        ),
        format!(
            "burn {} | payout id {} | refund {}",
            burn.as_ref().map_or_else(|| "-".to_owned(), tx_line),
            or_dash(r.payout_reference.as_deref()),
            refund.as_ref().map_or_else(|| "-".to_owned(), tx_line),
        ),
    ];
    if let Some(reason) = &r.failure_reason {
        lines.push(format!("failure reason: {reason}"));
    }
    lines.extend(history_lines(&history));
    lines.extend(movement_lines(&movements));
    let json = json!({
        "redemption": redemption_json(&r),
        "user_id": user.as_ref().map(|u| u.external_id.clone()),
        "burn": burn.as_ref().map(tx_json),
        "refund": refund.as_ref().map(tx_json),
        "history": history_json(&history),
        "ledger_movements": movements,
    });
    Ok(Output::new(lines, json))
}

async fn event(db: &DatabaseConnection, partner: &str, event_id: &str) -> Result<Output, Error> {
    let mut matches = Condition::any()
        .add(inbound_events::Column::EventKey.eq(event_id))
        .add(inbound_events::Column::DeliveryId.eq(event_id))
        // Composite keys (event + attendee, referrer + referred) by their first part.
        .add(inbound_events::Column::EventKey.starts_with(format!("{event_id}{KEY_SEPARATOR}")));
    if let Ok(message_id) = event_id.parse::<Uuid>() {
        matches = matches.add(inbound_events::Column::MessageId.eq(message_id));
    }
    let events = inbound_events::Entity::find()
        .filter(inbound_events::Column::Partner.eq(partner))
        .filter(matches)
        .order_by_asc(inbound_events::Column::ReceivedAt)
        .limit(LATEST)
        .all(db)
        .await?;
    if events.is_empty() {
        return Err(Error::NotFound(format!(
            "no {partner} event `{event_id}` was received"
        )));
    }
    let mut lines = Vec::new();
    let mut out = Vec::new();
    for event in events {
        let reference = serde_json::from_value::<PartnerEvent>(event.payload.clone())
            .ok()
            .map(|e| reward_calculator::handlers::partner_event::source_reference(&e));
        let rewards = match &reference {
            Some(reference) => {
                rewards::Entity::find()
                    .filter(
                        Condition::any()
                            .add(rewards::Column::SourceReference.eq(reference.clone()))
                            // A stake's rewards are one per period.
                            .add(
                                rewards::Column::SourceReference
                                    .starts_with(format!("{reference}:period:")),
                            ),
                    )
                    .order_by_asc(rewards::Column::CreatedAt)
                    .limit(LATEST)
                    .all(db)
                    .await?
            }
            None => Vec::new(),
        };
        let mut minted = Vec::new();
        for reward in &rewards {
            if let Some(tx_id) = &reward.token_tx_id {
                minted.push(token_transactions::find_by_tx_id(db, tx_id).await?);
            } else {
                minted.push(None);
            }
        }
        lines.push(format!(
            "{} event {} ({}) key {} received {}, message {}, webhook-id {}",
            event.partner,
            event.kind,
            event.id,
            event.event_key.replace(KEY_SEPARATOR, "/"),
            event.received_at.to_rfc3339(),
            event.message_id,
            or_dash(event.delivery_id.as_deref()),
        ));
        if rewards.is_empty() {
            lines.push(format!(
                "  no reward (yet) for {}",
                reference.as_deref().unwrap_or("an unreadable payload")
            ));
        }
        for (reward, tx) in rewards.iter().zip(&minted) {
            lines.push(format!(
                "  reward {} {} HNV by rule {} ({}); mint {}",
                reward.source_reference,
                hnv(reward.amount),
                reward.rule,
                format!("{:?}", reward.status).to_lowercase(),
                tx.as_ref().map_or_else(|| "-".to_owned(), tx_line),
            ));
        }
        out.push(json!({
            "event": {
                "id": event.id,
                "partner": event.partner,
                "kind": event.kind,
                "event_key": event.event_key,
                "delivery_id": event.delivery_id,
                "message_id": event.message_id,
                "received_at": event.received_at,
                "payload": event.payload,
            },
            "source_reference": reference,
            "rewards": rewards.iter().zip(&minted).map(|(reward, tx)| json!({
                "reward": reward_json(reward),
                "mint": tx.as_ref().map(tx_json),
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(Output::new(lines, json!({ "events": out })))
}
