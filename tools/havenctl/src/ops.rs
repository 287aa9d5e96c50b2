//! The commands that act: `signer-lease`, `refund retry`, `reconcile`.

use std::time::Duration;

use chrono::Utc;
use haven_chain::config::RpcConfig;
use haven_chain::store::LeaseStore as _;
use haven_entity::chain_store::DbLeaseStore;
use haven_entity::signer_leases;
use read_api::chain::ChainReader;
use read_api::reconcile::{Outcome as Checked, Reconciler};
use read_api::store::Store;
use redemption_payout::store::RefundRetry;
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use serde_json::json;

use crate::cli::{ReconcileArgs, Refund, SignerLease};
use crate::show::{connect, hnv};
use crate::{EXIT_MISMATCH, Error, Output};

pub(crate) async fn signer_lease(command: SignerLease) -> Result<Output, Error> {
    match command {
        SignerLease::List { database } => list_leases(&connect(&database).await?).await,
        SignerLease::Release {
            address,
            holder,
            database,
        } => release_lease(&connect(&database).await?, &address, holder.as_deref()).await,
    }
}

fn lease_json(lease: &signer_leases::Model) -> serde_json::Value {
    json!({
        "signer_address": lease.signer_address,
        "holder": lease.holder,
        "expires_at": lease.expires_at,
        "expired": lease.expires_at <= Utc::now(),
        "acquired_at": lease.acquired_at,
        "renewed_at": lease.updated_at,
    })
}

fn lease_line(lease: &signer_leases::Model) -> String {
    let state = if lease.expires_at <= Utc::now() {
        "expired"
    } else {
        "held"
    };
    format!(
        "{} {state} by {} until {} (taken {}, renewed {})",
        lease.signer_address,
        lease.holder,
        lease.expires_at.to_rfc3339(),
        lease.acquired_at.to_rfc3339(),
        lease.updated_at.to_rfc3339()
    )
}

async fn all_leases(db: &DatabaseConnection) -> Result<Vec<signer_leases::Model>, Error> {
    Ok(signer_leases::Entity::find()
        .order_by_asc(signer_leases::Column::SignerAddress)
        .all(db)
        .await?)
}

async fn list_leases(db: &DatabaseConnection) -> Result<Output, Error> {
    let leases = all_leases(db).await?;
    let mut lines = vec![format!("{} signer lease(s)", leases.len())];
    lines.extend(leases.iter().map(lease_line));
    Ok(Output::new(
        lines,
        json!({ "leases": leases.iter().map(lease_json).collect::<Vec<_>>() }),
    ))
}

async fn release_lease(
    db: &DatabaseConnection,
    address: &str,
    holder: Option<&str>,
) -> Result<Output, Error> {
    // Few rows (one per signer of the pool); addresses are compared case
    // ignored, as a checksummed and a lower-case spelling are one address.
    let find = |leases: Vec<signer_leases::Model>| {
        leases
            .into_iter()
            .find(|l| l.signer_address.eq_ignore_ascii_case(address.trim()))
    };
    let lease = find(all_leases(db).await?)
        .ok_or_else(|| Error::NotFound(format!("no lease on signer `{address}`")))?;
    if let Some(holder) = holder
        && holder != lease.holder
    {
        return Err(Error::Refused(format!(
            "signer {} is held by `{}`, not `{holder}`; nothing released",
            lease.signer_address, lease.holder
        )));
    }
    // The holder's own release: deletes the row only while this holder has it.
    DbLeaseStore::new(db.clone())
        .release(&lease.signer_address, &lease.holder)
        .await
        .map_err(|err| Error::Step(format!("could not release the lease: {err}")))?;
    if let Some(now) = find(all_leases(db).await?)
        && now.holder != lease.holder
    {
        return Err(Error::Refused(format!(
            "signer {} was taken by `{}` meanwhile; nothing released",
            now.signer_address, now.holder
        )));
    }
    tracing::warn!(signer = %lease.signer_address, holder = %lease.holder, "signer lease released by an operator");
    Ok(Output::new(
        vec![format!(
            "released the lease on {} held by {} (it would have expired at {}); the next chain-minter replica that asks takes it",
            lease.signer_address,
            lease.holder,
            lease.expires_at.to_rfc3339()
        )],
        json!({ "released": lease_json(&lease) }),
    ))
}

pub(crate) async fn refund(command: Refund) -> Result<Output, Error> {
    let Refund::Retry {
        request_id,
        database,
    } = command;
    let db = connect(&database).await?;
    let retried = redemption_payout::store::retry_refund(&db, request_id)
        .await
        .map_err(|failure| Error::Step(failure.to_string()))?;
    match retried {
        None => Err(Error::NotFound(format!("no redemption `{request_id}`"))),
        Some(RefundRetry::NotWaiting { state, refund }) => Err(Error::Refused(format!(
            "redemption {request_id} is not waiting for an operator (state {}, refund mint {}): only `refund_requested` with a failed or cancelled refund mint is retried; nothing changed",
            state.as_str(),
            refund.map_or_else(|| "none".to_owned(), |s| format!("{s:?}").to_lowercase()),
        ))),
        Some(RefundRetry::Queued(mint)) => {
            tracing::warn!(redemption_id = %request_id, tx_id = %mint.tx_id, "refund mint sent again by an operator");
            Ok(Output::new(
                vec![format!(
                    "refund {} of redemption {request_id} ({} HNV) is pending again and its mint request is queued; it failed before with: {}",
                    mint.tx_id,
                    hnv(mint.amount),
                    mint.last_error.as_deref().unwrap_or("-")
                )],
                json!({
                    "redemption_id": request_id,
                    "refund_tx_id": mint.tx_id,
                    "amount": hnv(mint.amount),
                    "previous_status": format!("{:?}", mint.status).to_lowercase(),
                    "previous_error": mint.last_error,
                    "requested_by": mint.requested_by,
                    "status": "pending",
                }),
            ))
        }
    }
}

pub(crate) async fn reconcile(args: ReconcileArgs) -> Result<Output, Error> {
    let rpc = RpcConfig {
        rpc_url: args.rpc_url.clone(),
        // Views only: nothing is signed, so the chain id is not checked
        // (as read-api's reconciliation).
        chain_id: 0,
        rpc_timeout: args.rpc_timeout,
        rpc_retries: 0,
        poll_interval: Duration::from_secs(1),
    };
    let reader = ChainReader::new(&rpc, args.contract_address).map_err(Error::Chain)?;
    let db = connect(&args.database).await?;
    let reconciler = Reconciler::new(
        // No balance reads here: no batching workers.
        Store::new(db.clone(), 0),
        reader,
        usize::from(args.reconcile_concurrency),
    );
    let report = reconciler.run().await;
    let _ = db.close().await;
    let report = report.map_err(Error::Reconcile)?;
    report.log();

    let mut lines = vec![format!(
        "{}: {} user(s) checked at block {} of {}, {} mismatched, {} unsettled, {} transaction(s) in flight",
        if report.matched {
            "ledger and chain agree"
        } else {
            "ledger and chain DISAGREE"
        },
        report.users_checked,
        report.block_number,
        report.contract_address,
        report.user_mismatches,
        report.user_unsettled,
        report.in_flight_transactions,
    )];
    for total in &report.totals {
        lines.push(format!(
            "  {}: ledger {} chain {} difference {} ({})",
            total.kind,
            total.ledger,
            total.chain,
            total.difference,
            match total.outcome {
                Checked::Match => "match",
                Checked::Mismatch => "MISMATCH",
                Checked::Unsettled => "unsettled",
            }
        ));
    }
    for (label, users) in [
        ("MISMATCH", &report.mismatches),
        ("unsettled", &report.unsettled),
    ] {
        for user in users {
            lines.push(format!(
                "  {label} user {} wallet {}: ledger {} chain {}",
                user.user_id,
                user.wallet_address,
                user.ledger_balance,
                user.chain_balance
                    .map_or_else(|| "? (not an address)".to_owned(), |w| w.to_string()),
            ));
        }
    }
    let mut output = Output::new(lines, serde_json::to_value(&report).unwrap_or_default());
    if !report.matched {
        output.status = EXIT_MISMATCH;
    }
    Ok(output)
}
