//! The emission budget: rewards beyond a period's budget are held (no
//! mint), then released oldest first in a later period, never dropped.

use std::time::Duration;

use chrono::Utc;
use haven_entity::emission_periods;
use haven_entity::rewards::{self, RewardStatus};
use haven_messages::ChainRequest;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::helpers::{
    HANDLED, attendance, chain_requests, eventually, hnv, metric, spawn_app_with,
};

/// Length of a test emission period.
const PERIOD_MS: i64 = 4_000;

/// Waits until a period has just begun, so the test's events land in one period.
async fn start_of_a_period() {
    loop {
        let into = Utc::now().timestamp_millis().rem_euclid(PERIOD_MS);
        if into < 300 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(
            u64::try_from(PERIOD_MS - into).unwrap_or(0),
        ))
        .await;
    }
}

async fn by_status(db: &sea_orm::DatabaseConnection, status: RewardStatus) -> Vec<rewards::Model> {
    rewards::Entity::find()
        .filter(rewards::Column::Status.eq(status))
        .all(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn rewards_beyond_the_budget_are_held_then_released_in_the_next_period() {
    let s = spawn_app_with(&[
        "--monthly-emission-target-hnv",
        "100",
        "--emission-period",
        "4s",
    ])
    .await;
    let db = s.db();
    start_of_a_period().await;
    // 75 + 75 > 100: one of the two waits.
    s.send(attendance("EV-a", "member-a", "workshop")).await;
    s.send(attendance("EV-b", "member-b", "workshop")).await;

    let (held, granted) = eventually("one granted, one held", HANDLED, || async {
        let held = by_status(db, RewardStatus::Held).await;
        let pending = by_status(db, RewardStatus::Pending).await;
        (held.len() == 1 && pending.len() == 1).then_some((held, pending))
    })
    .await;
    let held = &held[0];
    assert_eq!(held.token_tx_id, None, "a held reward has no mint");
    assert!(granted[0].token_tx_id.is_some());
    assert_eq!(
        metric(&s.app, "haven_rewards_total", &[("outcome", "held")]).await,
        1.0
    );
    eventually("the held gauge", HANDLED, || async {
        (metric(&s.app, "haven_rewards_held", &[]).await == 1.0).then_some(())
    })
    .await;

    // The next period has room: the held reward gets its mint.
    let released = eventually("the held reward released", HANDLED, || async {
        rewards::find_by_source_reference(db, &held.source_reference)
            .await
            .unwrap()
            .filter(|r| r.status == RewardStatus::Pending)
    })
    .await;
    assert_eq!(
        released.token_tx_id.as_deref(),
        Some(format!("reward_{}", held.id).as_str())
    );
    assert_eq!(
        metric(&s.app, "haven_rewards_total", &[("outcome", "released")]).await,
        1.0
    );
    eventually("the held gauge back to zero", HANDLED, || async {
        (metric(&s.app, "haven_rewards_held", &[]).await == 0.0).then_some(())
    })
    .await;

    // Each period counted 75 HNV; the budget was never overshot.
    let periods = emission_periods::Entity::find().all(db).await.unwrap();
    assert_eq!(periods.len(), 2, "{periods:?}");
    for period in &periods {
        assert_eq!(period.emitted.get(), hnv(75) as i128);
    }
    let mints = chain_requests(&s.deps, Duration::from_secs(2))
        .await
        .into_iter()
        .filter(|r| matches!(r, ChainRequest::Mint(_)))
        .count();
    assert_eq!(mints, 2);
    s.finish().await;
}

#[tokio::test]
async fn without_a_budget_nothing_is_held() {
    let s = spawn_app_with(&[]).await;
    let db = s.db();
    for i in 0..5 {
        s.send(attendance(&format!("EV-{i}"), "member", "wisdom_circle"))
            .await;
    }
    eventually("five granted", HANDLED, || async {
        (by_status(db, RewardStatus::Pending).await.len() == 5).then_some(())
    })
    .await;
    assert!(by_status(db, RewardStatus::Held).await.is_empty());
    s.finish().await;
}
