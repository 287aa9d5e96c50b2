//! The tables and queries this service added, on both backends: `held`
//! rewards, the emission budget, bookings seen in any order, stakes.

use chrono::{Duration, Utc};
use haven_common::testing::db::TestDb;
use haven_entity::SignedWei;
use haven_entity::bookings::{self, BookingEvent, BookingStatus};
use haven_entity::emission_periods::{self, Reservation};
use haven_entity::rewards::{self, MintPointer, NewReward, RewardStatus};
use haven_entity::stakes::{self, NewStake};
use haven_entity::users::{self, NewUser};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};
use uuid::Uuid;

async fn a_user(db: &DatabaseConnection) -> users::Model {
    users::find_or_create(
        db,
        NewUser {
            partner: "tribe".into(),
            external_id: "schema-user".into(),
            email: None,
        },
        |index| Ok::<_, std::convert::Infallible>(format!("0x{index:040x}")),
    )
    .await
    .unwrap()
    .user
}

fn hnv(n: i128) -> SignedWei {
    SignedWei::from_hnv(n).unwrap()
}

async fn held_rewards_and_the_status_check(db: &DatabaseConnection) {
    let user = a_user(db).await;
    let new = |source: &str| NewReward {
        id: Uuid::now_v7(),
        source_reference: source.into(),
        user_id: user.id,
        rule: "review".into(),
        rule_version: 1,
        amount: hnv(50),
        status: RewardStatus::Held,
        token_tx_id: None,
    };
    let held = rewards::insert(db, new("s:1"))
        .await
        .unwrap()
        .expect("inserted");
    assert!(
        rewards::insert(db, new("s:1")).await.unwrap().is_none(),
        "source is unique"
    );
    rewards::insert(db, new("s:2"))
        .await
        .unwrap()
        .expect("inserted");
    assert_eq!(rewards::held_totals(db).await.unwrap(), (2, hnv(100)));
    assert_eq!(rewards::oldest_held(db, 10).await.unwrap()[0].id, held.id);

    assert!(
        rewards::transition(
            db,
            held.id,
            RewardStatus::Held,
            RewardStatus::Cancelled,
            MintPointer::Keep
        )
        .await
        .unwrap()
    );
    assert!(
        !rewards::transition(
            db,
            held.id,
            RewardStatus::Held,
            RewardStatus::Pending,
            MintPointer::Keep
        )
        .await
        .unwrap(),
        "conditional on the current status"
    );

    // The CHECK still refuses statuses nobody knows.
    let bogus = format!(
        "INSERT INTO rewards (id, source_reference, user_id, rule, rule_version, amount, status, created_at, updated_at) \
         VALUES ('{}', 's:bogus', '{}', 'review', 1, CAST('1' AS wei_text), 'bogus', '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')",
        Uuid::now_v7(),
        user.id
    );
    let err = db.execute_unprepared(&bogus).await.unwrap_err();
    assert!(
        err.to_string().contains("rewards_status") || err.to_string().contains("CHECK"),
        "{err}"
    );
}

async fn the_budget_is_never_overshot(db: &DatabaseConnection) {
    let budget = Some(hnv(100));
    let reserve = |amount| emission_periods::reserve(db, "2025-11", amount, budget);
    assert_eq!(
        reserve(hnv(60)).await.unwrap(),
        Reservation::Reserved { emitted: hnv(60) }
    );
    assert_eq!(
        reserve(hnv(50)).await.unwrap(),
        Reservation::OverBudget { emitted: hnv(60) }
    );
    assert_eq!(
        reserve(hnv(40)).await.unwrap(),
        Reservation::Reserved { emitted: hnv(100) }
    );
    assert_eq!(
        emission_periods::emitted(db, "2025-11").await.unwrap(),
        hnv(100)
    );
    assert_eq!(
        emission_periods::emitted(db, "2025-12").await.unwrap(),
        SignedWei::ZERO
    );
    // No budget: always reserved, still counted.
    assert_eq!(
        emission_periods::reserve(db, "2025-11", hnv(1), None)
            .await
            .unwrap(),
        Reservation::Reserved { emitted: hnv(101) }
    );
}

async fn bookings_in_any_order(db: &DatabaseConnection) {
    let status =
        |event| async move { bookings::record(db, "B1", "g", event).await.unwrap().status };
    assert_eq!(
        status(BookingEvent::Cancelled(None)).await,
        BookingStatus::Cancelled
    );
    assert_eq!(
        status(BookingEvent::Created).await,
        BookingStatus::Cancelled
    );
    assert_eq!(
        status(BookingEvent::Completed).await,
        BookingStatus::Cancelled
    );

    let other = |event| async move { bookings::record(db, "B2", "g", event).await.unwrap() };
    assert_eq!(
        other(BookingEvent::Completed).await.status,
        BookingStatus::Completed
    );
    assert_eq!(
        other(BookingEvent::Created).await.status,
        BookingStatus::Completed
    );
    let cancelled = other(BookingEvent::Cancelled(Some("why".into()))).await;
    assert_eq!(cancelled.status, BookingStatus::Cancelled);
    assert!(cancelled.completed_at.is_some() && cancelled.cancelled_at.is_some());
    assert_eq!(cancelled.cancellation_reason.as_deref(), Some("why"));
}

/// A booking's first event is one statement that returns the stored row;
/// a redelivery writes nothing and reads (and locks) the row.
async fn a_first_booking_event_is_one_insert(db: &TestDb) {
    let (conn, log) = db.recording();
    let first = bookings::record(&conn, "B3", "g", BookingEvent::Created)
        .await
        .unwrap();
    let statements = log.take();
    assert_eq!(statements.len(), 1, "{statements:#?}");
    assert!(statements[0].starts_with("INSERT"), "{statements:#?}");
    let stored = bookings::Entity::find_by_id("B3".to_owned())
        .one(&conn)
        .await
        .unwrap();
    assert_eq!(Some(&first), stored.as_ref(), "the row as stored");
    log.take();

    let again = bookings::record(&conn, "B3", "g", BookingEvent::Created)
        .await
        .unwrap();
    assert_eq!(again, first, "a redelivery changes nothing");
    let statements = log.take();
    assert_eq!(
        statements.len(),
        2,
        "the insert, then the read: {statements:#?}"
    );
}

async fn stakes_advance_one_period_at_a_time(db: &DatabaseConnection) {
    let user = a_user(db).await;
    let started_at = Utc::now() - Duration::days(15);
    let stake = stakes::insert(
        db,
        NewStake {
            stake_id: "S".into(),
            user_id: user.id,
            amount: hnv(520),
            started_at,
            first_accrual_at: started_at + Duration::days(7),
        },
    )
    .await
    .unwrap()
    .expect("inserted");
    assert!(
        stakes::insert(
            db,
            NewStake {
                stake_id: "S".into(),
                user_id: user.id,
                amount: hnv(1),
                started_at,
                first_accrual_at: started_at,
            }
        )
        .await
        .unwrap()
        .is_none()
    );
    assert_eq!(stakes::due(db, Utc::now(), 10).await.unwrap().len(), 1);
    let next = started_at + Duration::days(14);
    assert!(stakes::advance(db, stake.id, 1, next).await.unwrap());
    assert!(
        !stakes::advance(db, stake.id, 1, next).await.unwrap(),
        "period 1 paid once"
    );
    assert!(
        !stakes::advance(db, stake.id, 3, next).await.unwrap(),
        "no skipping"
    );
    assert!(
        stakes::advance(db, stake.id, 2, started_at + Duration::days(21))
            .await
            .unwrap()
    );
    assert!(stakes::due(db, Utc::now(), 10).await.unwrap().is_empty());
}

async fn everything(db: TestDb) {
    held_rewards_and_the_status_check(db.conn()).await;
    the_budget_is_never_overshot(db.conn()).await;
    bookings_in_any_order(db.conn()).await;
    a_first_booking_event_is_one_insert(&db).await;
    stakes_advance_one_period_at_a_time(db.conn()).await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_holds_rewards_budgets_bookings_and_stakes() {
    everything(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_holds_rewards_budgets_bookings_and_stakes() {
    everything(TestDb::sqlite().await).await;
}
