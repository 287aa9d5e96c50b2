//! Partner events become rewards, pending mints and mint requests, once per event.

use std::time::Duration;

use haven_chain::signer::CustodyWallets;
use haven_common::amqp::AMQPValue;
use haven_common::config::Redacted;
use haven_common::testing::amqp::get_one;
use haven_common::testing::app::TestDeps;
use haven_entity::rewards::{self, RewardStatus};
use haven_entity::token_transactions::{self, TxStatus, TxType};
use haven_entity::users::{self, NewUser};
use haven_messages::{
    ChainRequest, CoachingMilestone, Contribution, Envelope, PartnerEvent, Review, names,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};

use crate::helpers::{
    HANDLED, Spawned, TEST_MNEMONIC, attendance, booking, chain_requests, count, eventually, hnv,
    metric, reward, reward_in, spawn_app, spawn_app_on, token_tx, user,
};

#[tokio::test]
async fn the_seed_flow_grants_240_and_100_to_a_new_user_with_a_derived_wallet() {
    let s = spawn_app().await;
    let db = s.db();
    let created = s.send(booking("B-seed", "guest-1", "100.00", 2)).await;
    s.send(attendance("EV-1", "guest-1", "wisdom_circle")).await;

    let booked = reward_in(db, "aurora:booking:B-seed", RewardStatus::Pending).await;
    let attended = reward_in(db, "tribe:event:EV-1\u{1f}guest-1", RewardStatus::Pending).await;
    assert_eq!(booked.amount.get(), hnv(240) as i128);
    assert_eq!(attended.amount.get(), hnv(100) as i128);
    assert_eq!((booked.rule.as_str(), booked.rule_version), ("booking", 1));
    assert_eq!(attended.rule, "event_attendance");

    // One user, created on first sight, with the wallet of its derivation index.
    let guest = user(db, "guest-1").await;
    assert_eq!(count::<users::Entity>(db).await, 1);
    assert_eq!(guest.email.as_deref(), Some("guest-1@example.com"));
    let wallets = CustodyWallets::from_mnemonic(&Redacted::new(TEST_MNEMONIC.to_owned())).unwrap();
    assert_eq!(
        guest.wallet_address,
        wallets
            .wallet_address(u32::try_from(guest.derivation_index).unwrap())
            .unwrap()
    );
    assert_eq!(booked.user_id, guest.id);

    // Each reward points at its pending mint...
    let mint = token_tx(db, booked.token_tx_id.as_deref().unwrap()).await;
    assert_eq!(mint.tx_id, format!("reward_{}", booked.id));
    assert_eq!(
        (mint.tx_type, mint.status, mint.reason.as_str()),
        (TxType::Mint, TxStatus::Pending, "booking")
    );
    assert_eq!(mint.amount, booked.amount);

    // ...and each mint was requested from chain-minter, correlated with its event.
    let connection = s.deps.amqp.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = s
        .deps
        .amqp
        .topology()
        .work_queue(names::CHAIN_REQUESTS.name);
    let mut requests = Vec::new();
    while let Some(message) = get_one(&channel, &queue, Duration::from_secs(3)).await {
        requests.push(Envelope::<ChainRequest>::decode(&message.delivery.data).unwrap());
    }
    assert_eq!(requests.len(), 2, "{requests:?}");
    let booking_mint = requests
        .iter()
        .find_map(|e| match &e.payload {
            ChainRequest::Mint(m) if m.tx_id == mint.id => Some((e, m)),
            _ => None,
        })
        .expect("the booking's mint request");
    assert_eq!(booking_mint.0.correlation_id, created.correlation_id);
    assert_eq!(booking_mint.0.causation_id, Some(created.message_id));
    let m = booking_mint.1;
    assert_eq!(m.user_id, "guest-1");
    assert_eq!(m.to_address, guest.wallet_address);
    assert_eq!(m.amount_wei, hnv(240));
    assert_eq!(m.reason, "booking");

    assert_eq!(metric(&s.app, "haven_users_created_total", &[]).await, 1.0);
    assert_eq!(
        metric(
            &s.app,
            "haven_rewards_total",
            &[("rule", "booking"), ("outcome", "granted")]
        )
        .await,
        1.0
    );
    let _ = connection.close(200, "done".into()).await;
    s.finish().await;
}

/// `event` delivered three times as one message (a redelivery) and once
/// more under a new message id (a partner retry that got past the ingress
/// dedupe): one user, one reward for `source`, one mint, one chain request,
/// and three duplicates counted under `rule`.
async fn a_redelivered_event_is_granted_once(
    s: Spawned,
    event: PartnerEvent,
    source: &str,
    rule: &str,
) {
    let db = s.db();
    let envelope = Envelope::new(event.clone());
    for _ in 0..3 {
        s.publish(&envelope).await;
    }
    s.send(event).await;

    reward_in(db, source, RewardStatus::Pending).await;
    eventually("every copy handled", HANDLED, || async {
        let handled = metric(&s.app, "haven_rewards_total", &[("rule", rule)]).await;
        (handled >= 4.0).then_some(())
    })
    .await;
    assert_eq!(count::<users::Entity>(db).await, 1);
    assert_eq!(count::<rewards::Entity>(db).await, 1);
    assert_eq!(count::<token_transactions::Entity>(db).await, 1);
    assert_eq!(
        metric(
            &s.app,
            "haven_rewards_total",
            &[("rule", rule), ("outcome", "duplicate")]
        )
        .await,
        3.0
    );
    let requests = chain_requests(&s.deps, Duration::from_secs(2)).await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    s.finish().await;
}

#[tokio::test]
async fn a_redelivered_or_resent_event_grants_one_reward_and_one_mint() {
    a_redelivered_event_is_granted_once(
        spawn_app().await,
        booking("B-dup", "guest-dup", "50", 1),
        "aurora:booking:B-dup",
        "booking",
    )
    .await;
}

/// A Tribe attendance and its reward's source: an event without a booking
/// row, which a known user's redelivery takes through the one-statement
/// path, where the reward's clash writes nothing after it (no second mint,
/// no second request).
fn attendance_dup() -> (PartnerEvent, &'static str) {
    (
        attendance("EV-dup", "member-dup", "wisdom_circle"),
        "tribe:event:EV-dup\u{1f}member-dup",
    )
}

#[tokio::test]
async fn postgres_grants_a_redelivered_attendance_once() {
    let (event, source) = attendance_dup();
    a_redelivered_event_is_granted_once(spawn_app().await, event, source, "event_attendance").await;
}

#[tokio::test]
async fn sqlite_grants_a_redelivered_attendance_once() {
    let (event, source) = attendance_dup();
    let s = spawn_app_on(TestDeps::sqlite().await, &[]).await;
    a_redelivered_event_is_granted_once(s, event, source, "event_attendance").await;
}

#[tokio::test]
async fn events_racing_for_one_new_user_create_one_user() {
    let s = spawn_app().await;
    let db = s.db();
    // Published back to back: the consumer handles them concurrently.
    for i in 0..20 {
        s.send(PartnerEvent::TribeContribution(Contribution {
            contribution_id: format!("C-{i}"),
            user_id: "newcomer".into(),
            contribution_type: "post".into(),
            quality_score: None,
        }))
        .await;
    }
    eventually("20 rewards", HANDLED, || async {
        (count::<rewards::Entity>(db).await == 20).then_some(())
    })
    .await;
    assert_eq!(count::<users::Entity>(db).await, 1);
    let newcomer = user(db, "newcomer").await;
    let theirs = rewards::Entity::find()
        .filter(rewards::Column::UserId.eq(newcomer.id))
        .all(db)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 20);
    assert_eq!(metric(&s.app, "haven_users_created_total", &[]).await, 1.0);
    s.finish().await;
}

#[tokio::test]
async fn find_or_create_with_the_custody_wallets_makes_one_user_under_a_race() {
    let s = spawn_app().await;
    let wallets = CustodyWallets::from_mnemonic(&Redacted::new(TEST_MNEMONIC.to_owned())).unwrap();
    let racers = (0..16).map(|_| {
        let db = s.db().clone();
        let wallets = wallets.clone();
        tokio::spawn(async move {
            users::find_or_create(
                &db,
                NewUser {
                    partner: "tribe".into(),
                    external_id: "racer".into(),
                    email: None,
                },
                |index| wallets.wallet_address(index),
            )
            .await
            .unwrap()
        })
    });
    let found = futures::future::join_all(racers).await;
    let ids: std::collections::HashSet<_> =
        found.iter().map(|f| f.as_ref().unwrap().user.id).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        found.iter().filter(|f| f.as_ref().unwrap().created).count(),
        1
    );
    assert_eq!(count::<users::Entity>(s.db()).await, 1);
    s.finish().await;
}

#[tokio::test]
async fn events_that_earn_nothing_write_no_reward() {
    let s = spawn_app().await;
    let db = s.db();
    s.send(PartnerEvent::AuroraReviewSubmitted(Review {
        review_id: "R-low".into(),
        booking_id: None,
        guest_id: "critic".into(),
        rating: 3,
    }))
    .await;
    let mut absent = attendance("EV-absent", "critic", "workshop");
    if let PartnerEvent::TribeEventAttendance(a) = &mut absent {
        a.attended = false;
    }
    s.send(absent).await;
    s.send(PartnerEvent::AuroraReviewSubmitted(Review {
        review_id: "R-high".into(),
        booking_id: None,
        guest_id: "critic".into(),
        rating: 4,
    }))
    .await;

    let high = reward_in(db, "aurora:review:R-high", RewardStatus::Pending).await;
    assert_eq!(high.amount.get(), hnv(50) as i128);
    eventually("the three events handled", HANDLED, || async {
        let none = metric(&s.app, "haven_rewards_total", &[("outcome", "none")]).await;
        (none >= 2.0).then_some(())
    })
    .await;
    assert!(reward(db, "aurora:review:R-low").await.is_none());
    assert_eq!(count::<rewards::Entity>(db).await, 1);
    // The user was still seen, so it exists.
    user(db, "critic").await;
    s.finish().await;
}

#[tokio::test]
async fn an_event_no_rule_can_price_is_dead_lettered_with_its_reason() {
    let s = spawn_app().await;
    s.send(PartnerEvent::TribeCoachingMilestone(CoachingMilestone {
        user_id: "coachee".into(),
        milestone_name: "first".into(),
        tier: "platinum".into(),
    }))
    .await;

    let connection = s.deps.amqp.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    let dead = s
        .deps
        .amqp
        .topology()
        .dead_queue(names::PARTNER_EVENTS.name);
    let message = get_one(&channel, &dead, HANDLED)
        .await
        .expect("the event is dead-lettered");
    let headers = message.delivery.properties.headers().clone().unwrap();
    let Some(AMQPValue::LongString(reason)) = headers.inner().get(names::HEADER_DEAD_REASON) else {
        panic!("no dead-letter reason: {headers:?}");
    };
    let reason = String::from_utf8_lossy(reason.as_bytes());
    assert!(reason.contains("platinum"), "{reason}");
    // Priced before anything is written: not even the user was created.
    assert_eq!(count::<users::Entity>(s.db()).await, 0);
    assert_eq!(count::<rewards::Entity>(s.db()).await, 0);
    let _ = connection.close(200, "done".into()).await;
    s.finish().await;
}

/// A grant writes its reward once, already naming its mint (the foreign key
/// is checked at commit): no UPDATE of the reward follows its insert, and
/// what commits points at the mint the same transaction recorded.
async fn a_granted_reward_is_written_once_pointing_at_its_mint(s: Spawned) {
    let db = s.db();
    // Every UPDATE of a reward, logged by the updating transaction itself.
    let trigger = if s.deps.db.is_postgres() {
        "CREATE FUNCTION log_reward_update() RETURNS trigger AS $$ \
         BEGIN INSERT INTO reward_updates VALUES (NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER log_reward_update AFTER UPDATE ON rewards \
         FOR EACH ROW EXECUTE FUNCTION log_reward_update()"
    } else {
        "CREATE TRIGGER log_reward_update AFTER UPDATE ON rewards \
         BEGIN INSERT INTO reward_updates VALUES (NEW.id); END"
    };
    db.execute_unprepared("CREATE TABLE reward_updates (reward_id text NOT NULL)")
        .await
        .unwrap();
    db.execute_unprepared(trigger).await.unwrap();

    s.send(booking("B-once", "guest-once", "100", 1)).await;
    s.send(attendance("EV-once", "guest-once", "wisdom_circle"))
        .await;
    for source in [
        "aurora:booking:B-once",
        "tribe:event:EV-once\u{1f}guest-once",
    ] {
        let granted = reward_in(db, source, RewardStatus::Pending).await;
        let tx_id = format!("reward_{}", granted.id);
        assert_eq!(granted.token_tx_id.as_deref(), Some(tx_id.as_str()));
        let mint = token_tx(db, &tx_id).await;
        assert_eq!(
            (mint.tx_type, mint.user_id, mint.amount),
            (TxType::Mint, granted.user_id, granted.amount)
        );
    }
    let updates = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM reward_updates",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(
        updates, 0,
        "a granted reward is never updated before its mint settles"
    );
    s.finish().await;
}

#[tokio::test]
async fn postgres_writes_a_granted_reward_once_pointing_at_its_mint() {
    a_granted_reward_is_written_once_pointing_at_its_mint(spawn_app().await).await;
}

#[tokio::test]
async fn sqlite_writes_a_granted_reward_once_pointing_at_its_mint() {
    a_granted_reward_is_written_once_pointing_at_its_mint(
        spawn_app_on(TestDeps::sqlite().await, &[]).await,
    )
    .await;
}
