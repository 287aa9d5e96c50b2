//! The database side of `haven-chain`'s storage traits: signer leases and
//! nonces ([`DbLeaseStore`] over `signer_leases` and `signer_nonces`) and
//! deployment records ([`DbDeployments`] over `chain_deployments`).
//!
//! Every statement works on PostgreSQL and SQLite (both support
//! `ON CONFLICT ... DO UPDATE ... WHERE`), and each trait method is one
//! statement, so two replicas racing on the same row see one winner.
//!
//! Database failures are reported as transient: a dropped connection or a
//! busy database clears up, and the nonce manager's safety never rests on
//! a write it could not make (it stops sending when its window closes).
//! Values a BIGINT cannot hold and malformed stored records are permanent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use haven_chain::deploy::{DeploymentRecord, DeploymentStore};
use haven_chain::store::{LeaseStore, StorageError};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::{EntityError, chain_deployments, signer_leases, signer_nonces};

/// Signer leases and nonces in `signer_leases` and `signer_nonces`.
#[derive(Debug, Clone)]
pub struct DbLeaseStore {
    db: DatabaseConnection,
}

impl DbLeaseStore {
    /// The store over `db` (migrated).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn db_err(err: DbErr) -> StorageError {
    StorageError::transient(err)
}

fn i64_of(value: u64) -> Result<i64, StorageError> {
    i64::try_from(value)
        .map_err(|_| StorageError::permanent(format!("{value} does not fit the database's BIGINT")))
}

fn expires_at(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::TimeDelta::MAX)
}

#[async_trait::async_trait]
impl LeaseStore for DbLeaseStore {
    /// A conditional upsert: inserts the row, or overwrites it only when
    /// it has expired; exactly one of two racing replicas changes a row.
    async fn take(&self, signer: &str, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let now = Utc::now();
        let row = signer_leases::ActiveModel {
            signer_address: Set(signer.to_owned()),
            holder: Set(holder.to_owned()),
            expires_at: Set(expires_at(now, ttl)),
            acquired_at: Set(now),
            updated_at: Set(now),
        };
        let taken = signer_leases::Entity::insert(row)
            .on_conflict(
                OnConflict::column(signer_leases::Column::SignerAddress)
                    .update_columns([
                        signer_leases::Column::Holder,
                        signer_leases::Column::ExpiresAt,
                        signer_leases::Column::AcquiredAt,
                        signer_leases::Column::UpdatedAt,
                    ])
                    .action_and_where(
                        Expr::col((signer_leases::Entity, signer_leases::Column::ExpiresAt))
                            .lte(now),
                    )
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map_err(db_err)?;
        Ok(taken == 1)
    }

    async fn renew(&self, signer: &str, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let now = Utc::now();
        let res = signer_leases::Entity::update_many()
            .col_expr(
                signer_leases::Column::ExpiresAt,
                Expr::value(expires_at(now, ttl)),
            )
            .col_expr(signer_leases::Column::UpdatedAt, Expr::value(now))
            .filter(signer_leases::Column::SignerAddress.eq(signer))
            .filter(signer_leases::Column::Holder.eq(holder))
            .filter(signer_leases::Column::ExpiresAt.gt(now))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(res.rows_affected == 1)
    }

    async fn release(&self, signer: &str, holder: &str) -> Result<(), StorageError> {
        signer_leases::Entity::delete_many()
            .filter(signer_leases::Column::SignerAddress.eq(signer))
            .filter(signer_leases::Column::Holder.eq(holder))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// `UPDATE signer_nonces ... WHERE EXISTS (lease held by me and not
    /// expired)`: the check and the write are one statement.
    async fn fence(
        &self,
        chain_id: u64,
        signer: &str,
        holder: &str,
        next_nonce: Option<u64>,
    ) -> Result<bool, StorageError> {
        let now = Utc::now();
        let held = Query::select()
            .expr(Expr::val(1))
            .from(signer_leases::Entity)
            .and_where(
                Expr::col((signer_leases::Entity, signer_leases::Column::SignerAddress)).eq(signer),
            )
            .and_where(Expr::col((signer_leases::Entity, signer_leases::Column::Holder)).eq(holder))
            .and_where(Expr::col((signer_leases::Entity, signer_leases::Column::ExpiresAt)).gt(now))
            .to_owned();
        let mut update = signer_nonces::Entity::update_many()
            .col_expr(signer_nonces::Column::UpdatedAt, Expr::value(now))
            .filter(signer_nonces::Column::ChainId.eq(i64_of(chain_id)?))
            .filter(signer_nonces::Column::SignerAddress.eq(signer))
            .filter(Expr::exists(held));
        if let Some(next) = next_nonce {
            update = update.col_expr(signer_nonces::Column::NextNonce, Expr::value(i64_of(next)?));
        }
        let res = update.exec(&self.db).await.map_err(db_err)?;
        Ok(res.rows_affected == 1)
    }

    async fn read_nonce(&self, chain_id: u64, signer: &str) -> Result<Option<u64>, StorageError> {
        let row = signer_nonces::Entity::find_by_id((i64_of(chain_id)?, signer.to_owned()))
            .one(&self.db)
            .await
            .map_err(db_err)?;
        // A negative count cannot have been written by us; read it as "none
        // reserved", which the chain's pending count then overrides.
        Ok(row.map(|row| u64::try_from(row.next_nonce).unwrap_or(0)))
    }

    async fn record_nonce(
        &self,
        chain_id: u64,
        signer: &str,
        next: u64,
    ) -> Result<(), StorageError> {
        signer_nonces::Entity::insert(signer_nonces::ActiveModel {
            chain_id: Set(i64_of(chain_id)?),
            signer_address: Set(signer.to_owned()),
            next_nonce: Set(i64_of(next)?),
            updated_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::columns([
                signer_nonces::Column::ChainId,
                signer_nonces::Column::SignerAddress,
            ])
            .update_columns([
                signer_nonces::Column::NextNonce,
                signer_nonces::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

/// Deployment records in `chain_deployments` (run the migrations first).
#[derive(Debug, Clone)]
pub struct DbDeployments {
    db: DatabaseConnection,
}

impl DbDeployments {
    /// The records in `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn entity_err(err: EntityError) -> StorageError {
    match err {
        EntityError::Db(db) => StorageError::transient(db),
        other => StorageError::permanent(format!("deployment record: {other}")),
    }
}

#[async_trait::async_trait]
impl DeploymentStore for DbDeployments {
    async fn load(
        &self,
        chain_id: u64,
        contract: &str,
    ) -> Result<Option<DeploymentRecord>, StorageError> {
        let row = chain_deployments::find(&self.db, i64_of(chain_id)?, contract)
            .await
            .map_err(entity_err)?;
        row.map(|row| {
            let bad = |what: &str| {
                StorageError::permanent(format!("chain_deployments holds a malformed {what}"))
            };
            Ok(DeploymentRecord {
                chain_id,
                contract: row.contract,
                address: row.address.parse().map_err(|_| bad("address"))?,
                tx_hash: row.tx_hash.parse().map_err(|_| bad("tx_hash"))?,
                block_number: u64::try_from(row.block_number).map_err(|_| bad("block_number"))?,
                deployer: row.deployer.parse().map_err(|_| bad("deployer"))?,
            })
        })
        .transpose()
    }

    async fn save(&self, record: &DeploymentRecord) -> Result<(), StorageError> {
        chain_deployments::upsert(
            &self.db,
            chain_deployments::Model {
                chain_id: i64_of(record.chain_id)?,
                contract: record.contract.clone(),
                address: record.address.to_checksum(None),
                tx_hash: record.tx_hash.to_string(),
                block_number: i64_of(record.block_number)?,
                deployer: record.deployer.to_checksum(None),
                deployed_at: Utc::now(),
            },
        )
        .await
        .map_err(entity_err)
    }
}
