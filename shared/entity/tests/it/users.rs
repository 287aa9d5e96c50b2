//! `users::find_or_create` under concurrency.

use std::collections::HashSet;
use std::sync::Arc;

use haven_common::testing::db::TestDb;
use haven_entity::users::{self, NewUser};
use haven_entity::{ledger, users::Entity as Users};
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
    }
    assert_eq!(ids.len(), 1, "every caller got the same user");
    assert_eq!(created, 1, "exactly one caller created it");
    assert_eq!(Users::find().count(conn.as_ref()).await.unwrap(), 1);
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
