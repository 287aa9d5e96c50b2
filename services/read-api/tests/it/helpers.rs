//! `spawn_app`: read-api running in-process against fresh dependencies, and
//! seeding helpers that write the rows the other services write (users,
//! ledger movements, token transactions, redemptions) through
//! `haven_entity`, as they do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use clap::Parser as _;
use haven_common::testing::app::{TestApp, TestDeps};
use haven_entity::SignedWei;
use haven_entity::ledger::{self, Account, Movement};
use haven_entity::ledger_movements::MovementKind;
use haven_entity::redemptions::{self, NewRedemption, RedemptionState, WithdrawalMethod};
use haven_entity::token_transactions::{self, NewTokenTransaction, TxStatus, TxType};
use haven_entity::users::{self, NewUser};
use read_api::{Config, Error};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
};
use serde_json::Value;
use uuid::Uuid;

/// The running service and the dependencies it talks to.
pub struct Spawned {
    pub app: TestApp<Error>,
    pub deps: TestDeps,
}

impl Spawned {
    /// The test's database.
    pub fn db(&self) -> &DatabaseConnection {
        self.deps.db.conn()
    }

    /// `GET path` -> (status, JSON body).
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let res = self.app.get(path).await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|err| {
            panic!("GET {path} answered {status} with non-JSON {text:?}: {err}")
        });
        (status, body)
    }

    /// `GET path` -> the raw body text, asserting `status`.
    pub async fn get_text(&self, path: &str, status: u16) -> String {
        let res = self.app.get(path).await;
        assert_eq!(res.status().as_u16(), status, "GET {path}");
        res.text().await.unwrap()
    }

    /// Stops the service, then drops the database.
    pub async fn finish(self) {
        self.app.stop().await;
        self.deps.cleanup().await;
    }
}

/// Starts read-api on a random port against a fresh database.
pub async fn spawn_app() -> Spawned {
    spawn_app_with(&[]).await
}

/// [`spawn_app`] with extra settings (`--stats-cache-ttl 0s`, ...).
pub async fn spawn_app_with(extra: &[&str]) -> Spawned {
    let deps = TestDeps::new().await;
    let args = std::iter::once("read-api".to_owned())
        .chain(deps.database_args())
        .chain(extra.iter().map(|s| (*s).to_owned()));
    let config = Config::try_parse_from(args).expect("test settings parse");
    let app = TestApp::spawn(|listener, shutdown| read_api::run(config, listener, shutdown)).await;
    Spawned { app, deps }
}

/// `n` HNV in wei.
pub fn hnv(n: i128) -> SignedWei {
    SignedWei::from_hnv(n).unwrap()
}

/// An amount written as a decimal of HNV (`"1234.56"`), in wei.
pub fn hnv_str(text: &str) -> SignedWei {
    SignedWei::new(i128::try_from(haven_common::money::Wei::parse(text).unwrap().as_wei()).unwrap())
}

/// The `i`-th test wallet: a checksummed address.
pub fn wallet(i: u64) -> String {
    format!("0x742d35cc6634c0532925a3b844bc{:012x}", i)
        .parse::<alloy::primitives::Address>()
        .unwrap()
        .to_checksum(None)
}

/// Creates a user (as reward-calculator does) with `wallet` and `email`.
pub async fn user(
    db: &DatabaseConnection,
    external_id: &str,
    email: Option<&str>,
    wallet: &str,
    kyc: bool,
) -> Uuid {
    let wallet = wallet.to_owned();
    let created = users::find_or_create(
        db,
        NewUser {
            partner: "aurora".into(),
            external_id: external_id.into(),
            email: email.map(str::to_owned),
        },
        move |_| Ok::<_, std::convert::Infallible>(wallet),
    )
    .await
    .unwrap();
    if kyc {
        let mut row: users::ActiveModel = created.user.clone().into();
        row.kyc_verified = Set(true);
        row.update(db).await.unwrap();
    }
    created.user.id
}

/// Posts a ledger movement.
pub async fn post(db: &DatabaseConnection, movement: Movement) {
    let txn = db.begin().await.unwrap();
    ledger::post(&txn, &movement).await.unwrap();
    txn.commit().await.unwrap();
}

/// A token transaction as the services write it: recorded `pending`, then
/// moved to `status`; a confirmed one also moves the ledger (as chain-minter
/// does, in its own transaction here). Returns its row id.
pub async fn token_tx(
    db: &DatabaseConnection,
    user: Uuid,
    tx_id: &str,
    tx_type: TxType,
    amount: SignedWei,
    reason: &str,
    status: TxStatus,
) -> Uuid {
    let row = token_transactions::insert_pending(
        db,
        NewTokenTransaction {
            tx_id: tx_id.into(),
            user_id: user,
            tx_type,
            amount,
            reason: reason.into(),
            requested_by: None,
            accepted_at: None,
        },
    )
    .await
    .unwrap()
    .expect("a fresh tx_id");
    if status != TxStatus::Pending {
        // `update_many`, not `ActiveModel::update`: the latter reads the row
        // back through RETURNING, which SQLite cannot do for the amount cast.
        let now = Utc::now();
        let sent = matches!(status, TxStatus::Submitted | TxStatus::Confirmed);
        let confirmed = status == TxStatus::Confirmed;
        token_transactions::Entity::update_many()
            .col_expr(token_transactions::Column::Status, Expr::value(status))
            .col_expr(
                token_transactions::Column::TxHash,
                Expr::value(sent.then(|| format!("0x{:064x}", row.id.as_u128()))),
            )
            .col_expr(
                token_transactions::Column::SubmittedAt,
                Expr::value(sent.then_some(now)),
            )
            .col_expr(
                token_transactions::Column::ConfirmedAt,
                Expr::value(confirmed.then_some(now)),
            )
            .col_expr(
                token_transactions::Column::BlockNumber,
                Expr::value(confirmed.then_some(7i64)),
            )
            .filter(token_transactions::Column::Id.eq(row.id))
            .exec(db)
            .await
            .unwrap();
    }
    if status == TxStatus::Confirmed {
        // Referenced by the row's id, as chain-minter posts it.
        let movement = match tx_type {
            TxType::Mint => Movement::transfer(
                format!("mint:{}", row.id),
                MovementKind::Mint,
                Account::Supply,
                Account::UserAvailable(user),
                amount,
            ),
            TxType::Burn if reason == "redemption" => Movement::transfer(
                format!("burn:{}", row.id),
                MovementKind::Burn,
                Account::UserReserved(user),
                Account::Burned,
                amount,
            ),
            TxType::Burn => Movement::transfer(
                format!("burn:{}", row.id),
                MovementKind::Burn,
                Account::UserAvailable(user),
                Account::Burned,
                amount,
            ),
        };
        post(db, movement.unwrap()).await;
    }
    row.id
}

/// Sets a token transaction's `created_at` (to test the order of equal or
/// chosen times).
pub async fn set_created_at(db: &DatabaseConnection, id: Uuid, at: DateTime<Utc>) {
    token_transactions::Entity::update_many()
        .col_expr(token_transactions::Column::CreatedAt, Expr::value(at))
        .filter(token_transactions::Column::Id.eq(id))
        .exec(db)
        .await
        .unwrap();
}

/// A redemption reserved at ingress (balance moved to reserved), as
/// webhook-ingress records it. Returns its id.
pub async fn reserve(db: &DatabaseConnection, user: Uuid, key: &str, amount: SignedWei) -> Uuid {
    let redemption = redemptions::insert_reserved(
        db,
        NewRedemption {
            user_id: user,
            idempotency_key: key.into(),
            amount,
            payout_amount: SignedWei::new(amount.get() / 100 * 98),
            method: WithdrawalMethod::BankTransfer,
            address: None,
            requested_by: None,
        },
    )
    .await
    .unwrap()
    .unwrap();
    post(
        db,
        Movement::transfer(
            format!("reserve:{}", redemption.request_id),
            MovementKind::Reserve,
            Account::UserAvailable(user),
            Account::UserReserved(user),
            amount,
        )
        .unwrap(),
    )
    .await;
    redemption.request_id
}

/// Moves a redemption to `state`, linking its burn when given.
pub async fn set_redemption(
    db: &DatabaseConnection,
    request_id: Uuid,
    state: RedemptionState,
    burn_tx_id: Option<&str>,
) {
    let mut update =
        redemptions::Entity::update_many().col_expr(redemptions::Column::State, Expr::value(state));
    if let Some(tx_id) = burn_tx_id {
        update = update.col_expr(redemptions::Column::BurnTxId, Expr::value(tx_id));
    }
    update
        .filter(redemptions::Column::RequestId.eq(request_id))
        .exec(db)
        .await
        .unwrap();
}
