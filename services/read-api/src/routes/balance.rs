//! `GET /token/balance/{user_id}` and its look-up twin by wallet or email.
//!
//! One indexed statement per request (user by unique key, balance row by
//! primary key, pending mints through the `(user_id, created_at)` index):
//! this is the hot read of the API.

use axum::Json;
use axum::extract::State;
use haven_common::money::Wei;
use haven_common::openapi::{Detail, HnvAmount};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{LookupKey, UserId};
use super::state::AppState;
use crate::error::Error;
use crate::store::{BalanceRow, Lookup, UserKey};

/// Tag of the balance routes.
pub const TAG: &str = "balances";

/// A user's balances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BalanceBody {
    /// The partners' id of the user.
    #[schema(example = "test_user_123")]
    pub user_id: String,
    /// The user's custodial wallet (EIP-55).
    #[schema(example = "0x742d35Cc6634C0532925a3b844Bc9e7595f10000")]
    pub wallet_address: String,
    /// The user's tokens per the ledger: `available` + `reserved`, which is
    /// what the wallet holds on chain. Unconfirmed mints are not in it.
    #[schema(value_type = HnvAmount, example = 1234.56)]
    pub balance: Wei,
    /// What can be redeemed now: `balance` less what redemptions in flight hold.
    #[schema(value_type = HnvAmount, example = 1034.56)]
    pub available: Wei,
    /// Held by redemptions in flight (burned once they complete).
    #[schema(value_type = HnvAmount, example = 200.0)]
    pub reserved: Wei,
    /// Mints queued or sent and not yet confirmed: on their way into `balance`.
    #[schema(value_type = HnvAmount, example = 240.0)]
    pub pending: Wei,
}

impl BalanceBody {
    /// The body of a stored balance row.
    pub fn from_row(row: BalanceRow) -> Result<Self, Error> {
        Ok(Self {
            balance: row.available.checked_add(row.reserved).ok_or_else(|| {
                Error::Store(haven_entity::EntityError::Corrupt(format!(
                    "the balance of {} overflows",
                    row.user_id
                )))
            })?,
            user_id: row.user_id,
            wallet_address: row.wallet_address,
            available: row.available,
            reserved: row.reserved,
            pending: row.pending,
        })
    }
}

/// A user's balance by the partners' user id.
#[utoipa::path(
    get,
    path = "/token/balance/{user_id}",
    tag = TAG,
    summary = "A user's balance",
    params(("user_id" = String, Path, description = "The partners' id of the user (1 to 255 characters)", example = "test_user_123")),
    responses(
        (status = 200, description = "The user's balances", body = BalanceBody),
        (status = 404, description = "`User not found`", body = Detail),
        (status = 422, description = "A malformed user id", body = Detail),
        (status = 503, description = "The database is unavailable", body = Detail),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn balance(
    State(state): State<AppState>,
    UserId(user_id): UserId,
) -> Result<Json<BalanceBody>, Error> {
    answer(&state, UserKey::UserId(&user_id)).await
}

/// A user's balance by custodial wallet or email.
#[utoipa::path(
    get,
    path = "/token/balance",
    tag = TAG,
    summary = "A user's balance by wallet address or email",
    description = "For partners that know a guest by email or wallet rather than by id. Give exactly one parameter. An email shared by several users is a 409: use the id.",
    params(
        ("wallet_address" = Option<String>, Query, description = "The custodial wallet, 0x-prefixed (any letter case)"),
        ("email" = Option<String>, Query, description = "The email a partner sent for the user (letter case ignored)"),
    ),
    responses(
        (status = 200, description = "The user's balances", body = BalanceBody),
        (status = 404, description = "`User not found`", body = Detail),
        (status = 409, description = "Several users share this email", body = Detail),
        (status = 422, description = "Neither or both parameters, or a malformed one", body = Detail),
        (status = 503, description = "The database is unavailable", body = Detail),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn lookup(
    State(state): State<AppState>,
    key: LookupKey,
) -> Result<Json<BalanceBody>, Error> {
    answer(&state, key.as_key()).await
}

async fn answer(state: &AppState, key: UserKey<'_>) -> Result<Json<BalanceBody>, Error> {
    match state.store.balance(key).await? {
        Lookup::Found(row) => Ok(Json(BalanceBody::from_row(row)?)),
        Lookup::NotFound => Err(Error::UserNotFound),
        Lookup::Ambiguous => Err(Error::AmbiguousEmail),
    }
}
