//! `idempotency_keys`: the stored outcome of a request made with an
//! `Idempotency-Key`, so a retried request gets the first answer.

use chrono::{Duration, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;

use crate::error::EntityError;

/// A claimed key.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    /// What the key is for, e.g. `token.mint`: the same key may be used for
    /// different endpoints.
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    /// The client's key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// Hash of the request; a retry with another body is refused.
    pub request_hash: String,
    /// HTTP status of the stored answer; `None` while the first request runs.
    pub status_code: Option<i32>,
    /// Body of the stored answer.
    pub response: Option<Json>,
    /// When the key was claimed.
    pub created_at: DateTimeUtc,
    /// When it may be forgotten.
    pub expires_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What [`claim`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// New key, now ours: process the request, then [`complete`] (or
    /// [`release`] on failure).
    Claimed,
    /// The first request with this key is still running (HTTP 409).
    InProgress,
    /// Done before: answer with the stored response.
    Completed {
        /// Stored HTTP status.
        status_code: u16,
        /// Stored body.
        response: Json,
    },
    /// The key was used with a different request (HTTP 422).
    Mismatch,
}

/// Claims `key` in `scope` for a request whose hash is `request_hash`,
/// keeping it for `ttl`. An expired key is forgotten and claimed afresh.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    scope: &str,
    key: &str,
    request_hash: &str,
    ttl: Duration,
) -> Result<Claim, EntityError> {
    // Two rounds: the second follows the removal of an expired key.
    for _ in 0..2 {
        let now = Utc::now();
        let inserted = Entity::insert(ActiveModel {
            scope: Set(scope.to_owned()),
            key: Set(key.to_owned()),
            request_hash: Set(request_hash.to_owned()),
            status_code: Set(None),
            response: Set(None),
            created_at: Set(now),
            expires_at: Set(now + ttl),
        })
        .on_conflict(
            OnConflict::columns([Column::Scope, Column::Key])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
        if inserted == 1 {
            return Ok(Claim::Claimed);
        }
        let Some(existing) = Entity::find_by_id((scope.to_owned(), key.to_owned()))
            .one(db)
            .await?
        else {
            continue;
        };
        if existing.expires_at <= now {
            Entity::delete_many()
                .filter(Column::Scope.eq(scope))
                .filter(Column::Key.eq(key))
                .filter(Column::ExpiresAt.lte(now))
                .exec(db)
                .await?;
            continue;
        }
        if existing.request_hash != request_hash {
            return Ok(Claim::Mismatch);
        }
        return Ok(match (existing.status_code, existing.response) {
            (Some(status), Some(response)) => Claim::Completed {
                status_code: u16::try_from(status).map_err(|_| {
                    EntityError::Corrupt(format!("idempotency status code {status}"))
                })?,
                response,
            },
            _ => Claim::InProgress,
        });
    }
    Ok(Claim::InProgress)
}

/// Stores the answer to a claimed key.
pub async fn complete<C: ConnectionTrait>(
    db: &C,
    scope: &str,
    key: &str,
    status_code: u16,
    response: Json,
) -> Result<(), EntityError> {
    Entity::update_many()
        .set(ActiveModel {
            status_code: Set(Some(i32::from(status_code))),
            response: Set(Some(response)),
            ..Default::default()
        })
        .filter(Column::Scope.eq(scope))
        .filter(Column::Key.eq(key))
        .exec(db)
        .await?;
    Ok(())
}

/// Gives up a claim whose request failed without an answer worth keeping,
/// so the client's retry can run.
pub async fn release<C: ConnectionTrait>(
    db: &C,
    scope: &str,
    key: &str,
) -> Result<(), EntityError> {
    Entity::delete_many()
        .filter(Column::Scope.eq(scope))
        .filter(Column::Key.eq(key))
        .filter(Column::StatusCode.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes keys that expired; returns how many.
pub async fn purge_expired<C: ConnectionTrait>(db: &C) -> Result<u64, EntityError> {
    Ok(Entity::delete_many()
        .filter(Column::ExpiresAt.lte(Utc::now()))
        .exec(db)
        .await?
        .rows_affected)
}
