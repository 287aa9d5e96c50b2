//! Running havenctl in-process (the parsed command through `execute`) and as
//! the real binary (exit status and what it prints).

use std::convert::Infallible;
use std::process::Command;

use clap::Parser as _;
use haven_entity::users::{self, NewUser};
use haven_entity::{SignedWei, users::Model as User};
use havenctl::{Cli, Error, Output};
use sea_orm::DatabaseConnection;

/// `havenctl <args>` in-process.
pub async fn run(args: &[&str]) -> Result<Output, Error> {
    let cli = Cli::try_parse_from(std::iter::once("havenctl").chain(args.iter().copied()))
        .expect("the test's arguments parse");
    havenctl::execute(cli).await
}

/// `havenctl --json <args>` in-process; the JSON document.
pub async fn json(args: &[&str]) -> serde_json::Value {
    let output = run(args).await.expect("the command succeeds");
    assert_eq!(output.status, 0, "{output:?}");
    output.json
}

/// The real binary: (exit status, stdout, stderr).
pub fn bin(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_havenctl"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .env_remove("AMQP_NAMESPACE")
        .output()
        .expect("run havenctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `n` whole HNV.
pub fn hnv(n: i128) -> SignedWei {
    SignedWei::from_hnv(n).unwrap()
}

/// A user with a wallet derived as the services do (here: the index as an address).
pub async fn user(db: &DatabaseConnection, external_id: &str) -> User {
    users::find_or_create(
        db,
        NewUser {
            partner: "aurora".into(),
            external_id: external_id.into(),
            email: None,
        },
        |index| Ok::<_, Infallible>(format!("0x{:040x}", u64::from(index) + 0x1000)),
    )
    .await
    .unwrap()
    .user
}

/// A mint recorded, sent and confirmed as chain-minter would leave it: the
/// row confirmed with its hash and block, and the ledger's `mint:<id>`
/// movement (supply -> the user's available balance).
pub async fn confirmed_mint(
    db: &DatabaseConnection,
    user: &User,
    tx_id: &str,
    amount: SignedWei,
    reason: &str,
) -> haven_entity::token_transactions::Model {
    use haven_entity::ledger::{self, Account, Movement};
    use haven_entity::ledger_movements::MovementKind;
    use haven_entity::token_transactions::{self, NewTokenTransaction, TxStatus, TxType};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, IntoActiveModel, TransactionTrait};

    let tx = token_transactions::insert_pending(
        db,
        NewTokenTransaction {
            tx_id: tx_id.into(),
            user_id: user.id,
            tx_type: TxType::Mint,
            amount,
            reason: reason.into(),
            requested_by: None,
            accepted_at: None,
        },
    )
    .await
    .unwrap()
    .unwrap();
    let now = chrono::Utc::now();
    let mut row = tx.clone().into_active_model();
    row.status = Set(TxStatus::Confirmed);
    row.tx_hash = Set(Some(format!("0x{}", "ab".repeat(32))));
    row.block_number = Set(Some(42));
    row.submitted_at = Set(Some(now));
    row.confirmed_at = Set(Some(now));
    let tx = row.update(db).await.unwrap();
    let txn = db.begin().await.unwrap();
    ledger::post(
        &txn,
        &Movement::transfer(
            format!("mint:{}", tx.id),
            MovementKind::Mint,
            Account::Supply,
            Account::UserAvailable(user.id),
            amount,
        )
        .unwrap(),
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    tx
}
