//! `users::find_or_create` under concurrency, and what creating a user costs.

use std::collections::HashSet;
use std::sync::Arc;

use haven_common::db::begin_write;
use haven_common::testing::db::TestDb;
use haven_entity::users::{self, NewUser};
use haven_entity::{SignedWei, ledger, user_balances, users::Entity as Users};
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::helpers::fake_wallet;

async fn one_user_for_concurrent_callers(db: TestDb) {
    const CALLERS: usize = 10;
    let conn = Arc::new(db.conn().clone());
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let conn = Arc::clone(&conn);
            tokio::spawn(async move {
                users::find_or_create(
                    conn.as_ref(),
                    NewUser {
                        partner: "aurora".into(),
                        external_id: "guest-42".into(),
                        email: Some("guest@example.com".into()),
                    },
                    fake_wallet,
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut created = 0;
    for task in tasks {
        let result = task.await.unwrap();
        ids.insert(result.user.id);
        created += usize::from(result.created);
        assert!(
            !result.user.new_in_transaction,
            "find_or_create has committed it"
        );
    }
    assert_eq!(ids.len(), 1, "every caller got the same user");
    assert_eq!(created, 1, "exactly one caller created it");
    assert_eq!(Users::find().count(conn.as_ref()).await.unwrap(), 1);
    assert_eq!(
        user_balances::Entity::find()
            .count(conn.as_ref())
            .await
            .unwrap(),
        1,
        "one balance row, written with the one user row"
    );
    let id = ids.into_iter().next().unwrap();
    assert_eq!(
        ledger::user_balance(conn.as_ref(), id)
            .await
            .unwrap()
            .version,
        0
    );

    // Other users get other derivation indexes and wallets.
    let mut indexes = HashSet::new();
    for n in 0..5 {
        let user = users::find_or_create(
            conn.as_ref(),
            NewUser {
                partner: "tribe".into(),
                external_id: format!("member-{n}"),
                email: None,
            },
            fake_wallet,
        )
        .await
        .unwrap()
        .user;
        assert!(user.derivation_index > 0);
        assert!(indexes.insert(user.derivation_index));
        assert_eq!(
            user.wallet_address,
            fake_wallet(user.derivation_index as u32).unwrap()
        );
    }
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_find_or_create_makes_one_user() {
    one_user_for_concurrent_callers(TestDb::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_find_or_create_makes_one_user() {
    one_user_for_concurrent_callers(TestDb::sqlite().await).await;
}

/// A new user costs the lookup (which takes the derivation index on
/// PostgreSQL) and one insert of the user with its balance row (on SQLite a
/// lookup, two for the index counter and two inserts); an existing one only
/// the lookup, which takes no index.
async fn a_new_user_costs_few_statements(db: TestDb) {
    let (conn, log) = db.recording();
    let new = || NewUser {
        partner: "aurora".into(),
        external_id: "guest-7".into(),
        email: None,
    };
    let txn = begin_write(&conn).await.unwrap();
    let found = users::find_or_create_in(&txn, new(), fake_wallet)
        .await
        .unwrap();
    assert!(found.created && found.user.new_in_transaction);
    let statements = log.take();
    let expected = if db.is_postgres() { 2 } else { 5 };
    assert_eq!(statements.len(), expected, "{statements:#?}");
    assert!(
        statements[0].starts_with("SELECT") && statements[0].contains("users"),
        "the lookup comes first: {statements:#?}"
    );
    assert!(
        !statements
            .iter()
            .any(|sql| sql.starts_with("SELECT") && sql.contains("user_balances")),
        "the new balance row is not read back: {statements:#?}"
    );
    let balance = ledger::user_balance(&txn, found.user.id).await.unwrap();
    assert_eq!(
        (balance.available, balance.reserved),
        (SignedWei::ZERO, SignedWei::ZERO)
    );
    txn.commit().await.unwrap();
    log.take();

    let txn = begin_write(&conn).await.unwrap();
    let again = users::find_or_create_in(&txn, new(), fake_wallet)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    assert!(!again.created && !again.user.new_in_transaction);
    assert_eq!(again.user.id, found.user.id);
    assert_eq!(log.take().len(), 1, "an existing user is one SELECT");

    // Finding them took no derivation index: the next new user has the
    // one after theirs.
    let txn = begin_write(&conn).await.unwrap();
    let next = users::find_or_create_in(
        &txn,
        NewUser {
            external_id: "guest-8".into(),
            ..new()
        },
        fake_wallet,
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(next.user.derivation_index, found.user.derivation_index + 1);
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_a_new_user_costs_few_statements() {
    a_new_user_costs_few_statements(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_a_new_user_costs_few_statements() {
    a_new_user_costs_few_statements(TestDb::sqlite().await).await;
}
