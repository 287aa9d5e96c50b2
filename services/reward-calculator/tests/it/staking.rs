//! Staking: the stake is recorded, and every completed period pays
//! amount x 10% / 52 exactly once, even with two replicas running the job.

use std::collections::BTreeMap;
use std::time::Duration;

use haven_entity::rewards::{self, RewardStatus};
use haven_entity::stakes;
use haven_messages::{ChainRequest, PartnerEvent, StakingStarted};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::helpers::{
    HANDLED, chain_requests, count, eventually, hnv, metric, spawn_app_with, spawn_on, user,
};

#[tokio::test]
async fn two_replicas_pay_each_stake_period_exactly_once() {
    let settings = [
        "--staking-accrual-period",
        "1s",
        "--reward-jobs-interval",
        "50ms",
    ];
    let s = spawn_app_with(&settings).await;
    let replica = spawn_on(&s.deps, &settings).await;
    let db = &s.db().clone();

    let started = s
        .send(PartnerEvent::TribeStakingStarted(StakingStarted {
            stake_id: "S-1".into(),
            user_id: "staker".into(),
            amount_wei: hnv(5_200),
        }))
        .await;
    let stake = eventually("the stake recorded", HANDLED, || async {
        stakes::Entity::find()
            .filter(stakes::Column::StakeId.eq("S-1"))
            .one(db)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(stake.amount.get(), hnv(5_200) as i128);
    // When Tribe's event happened (PostgreSQL keeps microseconds).
    let drift = (stake.started_at - started.occurred_at).abs();
    assert!(drift < chrono::Duration::milliseconds(1), "{drift}");
    assert_eq!(stake.user_id, user(db, "staker").await.id);

    // Let both replicas race through a few periods.
    eventually("three periods paid", HANDLED, || async {
        let paid = rewards::Entity::find()
            .filter(rewards::Column::Rule.eq("staking_interest"))
            .all(db)
            .await
            .unwrap();
        (paid.len() >= 3).then_some(())
    })
    .await;
    let accrued = metric(&s.app, "haven_staking_accruals_total", &[]).await
        + metric(&replica, "haven_staking_accruals_total", &[]).await;
    replica.stop().await;
    s.app.stop().await;

    let paid = rewards::Entity::find()
        .filter(rewards::Column::Rule.eq("staking_interest"))
        .all(db)
        .await
        .unwrap();
    let by_period: BTreeMap<i64, &rewards::Model> = paid
        .iter()
        .map(|r| {
            let n = r
                .source_reference
                .strip_prefix("tribe:stake:S-1:period:")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected reference {}", r.source_reference));
            (n, r)
        })
        .collect();
    // Every period once, none skipped: 1, 2, ..., k.
    assert_eq!(by_period.len(), paid.len());
    let k = paid.len() as i64;
    assert_eq!(
        by_period.keys().copied().collect::<Vec<_>>(),
        (1..=k).collect::<Vec<_>>()
    );
    for reward in paid.iter() {
        // 5200 HNV x 10% / 52 = 10 HNV a period.
        assert_eq!(reward.amount.get(), hnv(10) as i128);
        assert_eq!(reward.status, RewardStatus::Pending);
    }
    // What the replicas counted was paid, and nothing twice.
    assert!(accrued >= 3.0 && accrued <= k as f64, "{accrued} of {k}");
    s.broker.close().await;
    s.deps.cleanup().await;
}

#[tokio::test]
async fn every_paid_period_gets_one_mint_request() {
    let s = spawn_app_with(&["--staking-accrual-period", "1s"]).await;
    let db = &s.db().clone();
    s.send(PartnerEvent::TribeStakingStarted(StakingStarted {
        stake_id: "S-2".into(),
        user_id: "staker-2".into(),
        amount_wei: hnv(520),
    }))
    .await;
    eventually("two periods paid", HANDLED, || async {
        (count::<rewards::Entity>(db).await >= 2).then_some(())
    })
    .await;
    // The same staking-started again records nothing new.
    s.send(PartnerEvent::TribeStakingStarted(StakingStarted {
        stake_id: "S-2".into(),
        user_id: "staker-2".into(),
        amount_wei: hnv(520),
    }))
    .await;
    s.app.stop().await;
    assert_eq!(count::<stakes::Entity>(db).await, 1);
    let rewards = count::<rewards::Entity>(db).await;
    let mints: Vec<_> = chain_requests(&s.deps, Duration::from_secs(2))
        .await
        .into_iter()
        .filter_map(|r| match r {
            ChainRequest::Mint(m) => Some(m),
            ChainRequest::Burn(_) => None,
        })
        .collect();
    assert_eq!(mints.len() as u64, rewards, "{mints:?}");
    for mint in &mints {
        assert_eq!(mint.amount_wei, hnv(1));
        assert_eq!(mint.reason, "staking_interest");
        assert_eq!(mint.user_id, "staker-2");
    }
    s.broker.close().await;
    s.deps.cleanup().await;
}
