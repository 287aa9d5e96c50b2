//! `spawn_app`: reward-calculator running in-process against fresh
//! dependencies, and what the tests publish and look at.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub use haven_common::testing::eventually;
use std::time::Duration;

use clap::Parser as _;
use haven_common::amqp::AmqpClient;
use haven_common::testing::app::{TestApp, TestDeps};
use haven_entity::rewards::{self, RewardStatus};
use haven_entity::token_transactions::{self, TxStatus};
use haven_entity::users;
use haven_messages::names::{self, QueueSpec};
use haven_messages::{
    Booking, BookingCancellation, ChainRequest, Envelope, EventAttendance, PartnerEvent,
    QueueMessage,
};
use reward_calculator::{Config, Error};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
};

/// The well-known development mnemonic: fine for throw-away test wallets.
pub const TEST_MNEMONIC: &str = haven_chain::testing::DEV_MNEMONIC;

/// `CUSTODY_XPUB` of [`TEST_MNEMONIC`]: what the service is given.
pub use haven_chain::testing::dev_custody_xpub as test_xpub;

/// How long the service may take to handle what a test published.
pub const HANDLED: Duration = Duration::from_secs(20);

/// The running service and the dependencies it talks to (through proxies a
/// test can cut).
pub struct Spawned {
    pub app: TestApp<Error>,
    pub deps: TestDeps,
    /// Publishes partner events into the test's namespace.
    pub broker: AmqpClient,
}

impl Spawned {
    /// The test's database, directly (not through the proxy).
    pub fn db(&self) -> &DatabaseConnection {
        self.deps.db.conn()
    }

    /// Publishes a partner event as webhook-ingress would.
    pub async fn publish(&self, envelope: &Envelope<PartnerEvent>) {
        self.broker.publisher().publish(envelope).await.unwrap();
    }

    /// Publishes a new envelope around `event` and returns it.
    pub async fn send(&self, event: PartnerEvent) -> Envelope<PartnerEvent> {
        let envelope = Envelope::new(event);
        self.publish(&envelope).await;
        envelope
    }

    /// Stops the service and drops the dependencies.
    pub async fn finish(self) {
        self.app.stop().await;
        self.broker.close().await;
        self.deps.cleanup().await;
    }
}

/// Starts reward-calculator against a fresh database and broker namespace.
pub async fn spawn_app() -> Spawned {
    spawn_app_with(&[]).await
}

/// [`spawn_app`] with extra command-line settings.
pub async fn spawn_app_with(extra: &[&str]) -> Spawned {
    spawn_app_on(TestDeps::new().await, extra).await
}

/// [`spawn_app_with`] on given dependencies (e.g. `TestDeps::sqlite()`).
pub async fn spawn_app_on(deps: TestDeps, extra: &[&str]) -> Spawned {
    let app = spawn_on(&deps, extra).await;
    let broker = deps.amqp.client(&deps.amqp.config());
    broker
        .wait_connected(Duration::from_secs(30))
        .await
        .expect("the test broker client connects");
    Spawned { app, deps, broker }
}

/// Starts another reward-calculator on existing dependencies (a replica).
pub async fn spawn_on(deps: &TestDeps, extra: &[&str]) -> TestApp<Error> {
    // Test defaults, unless the test sets them itself (clap refuses a flag twice).
    let xpub = test_xpub();
    let defaults = [
        ("--custody-xpub", xpub.as_str()),
        ("--outbox-poll-interval", "200ms"),
        ("--reward-jobs-interval", "200ms"),
    ]
    .into_iter()
    .filter(|(flag, _)| !extra.contains(flag))
    .flat_map(|(flag, value)| [flag.to_owned(), value.to_owned()]);
    let args = std::iter::once("reward-calculator".to_owned())
        .chain(deps.args())
        .chain(defaults)
        .chain(extra.iter().map(|s| (*s).to_owned()));
    let config = Config::try_parse_from(args).expect("test settings parse");
    let app =
        TestApp::spawn(|listener, shutdown| reward_calculator::run(config, listener, shutdown))
            .await;
    app.wait_for_health(200, Duration::from_secs(30)).await;
    app
}

/// Takes every message that arrives on `queue` within `wait` of the last one.
pub async fn drain_queue<P: QueueMessage>(
    deps: &TestDeps,
    queue: QueueSpec,
    wait: Duration,
) -> Vec<Envelope<P>> {
    deps.amqp.drain(queue, wait).await
}

/// The chain requests published so far (waits `wait` after the last one).
pub async fn chain_requests(deps: &TestDeps, wait: Duration) -> Vec<ChainRequest> {
    drain_queue::<ChainRequest>(deps, names::CHAIN_REQUESTS, wait)
        .await
        .into_iter()
        .map(|envelope| envelope.payload)
        .collect()
}

/// Number of rows of an entity.
pub async fn count<E: EntityTrait>(db: &DatabaseConnection) -> u64
where
    E::Model: Sync,
{
    E::find().count(db).await.unwrap()
}

/// The reward for a source reference, if any.
pub async fn reward(db: &DatabaseConnection, source_reference: &str) -> Option<rewards::Model> {
    rewards::find_by_source_reference(db, source_reference)
        .await
        .unwrap()
}

/// Waits for the reward of `source_reference` to reach `status`.
pub async fn reward_in(
    db: &DatabaseConnection,
    source_reference: &str,
    status: RewardStatus,
) -> rewards::Model {
    eventually(
        &format!("reward {source_reference} {status:?}"),
        HANDLED,
        || async {
            reward(db, source_reference)
                .await
                .filter(|r| r.status == status)
        },
    )
    .await
}

/// The token transaction with this `tx_id`.
pub async fn token_tx(db: &DatabaseConnection, tx_id: &str) -> token_transactions::Model {
    token_transactions::find_by_tx_id(db, tx_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("token transaction {tx_id} exists"))
}

/// Sets a token transaction's status as chain-minter would: a mint it
/// confirms is credited to the user in the ledger (`mint:<id>`) in the same
/// transaction.
pub async fn set_tx_status(db: &DatabaseConnection, tx_id: &str, status: TxStatus) {
    use haven_entity::ledger::{self, Account, Movement};
    use haven_entity::ledger_movements::MovementKind;
    use haven_entity::token_transactions::TxType;
    use sea_orm::TransactionTrait;
    let txn = db.begin().await.unwrap();
    let row = token_transactions::find_by_tx_id(&txn, tx_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("token transaction {tx_id} exists"));
    if status == TxStatus::Confirmed && row.tx_type == TxType::Mint {
        let credit = Movement::transfer(
            format!("mint:{}", row.id),
            MovementKind::Mint,
            Account::Supply,
            Account::UserAvailable(row.user_id),
            row.amount,
        )
        .unwrap();
        ledger::post(&txn, &credit).await.unwrap();
    }
    txn.commit().await.unwrap();
    // Confirmed means final here, as chain-minter records it at depth 0
    // (a test of the time between the two clears it: `set_not_final`).
    let final_at = (status == TxStatus::Confirmed).then(chrono::Utc::now);
    let updated = token_transactions::Entity::update_many()
        .set(token_transactions::ActiveModel {
            status: Set(status),
            final_at: Set(final_at),
            ..Default::default()
        })
        .col_expr(
            token_transactions::Column::UpdatedAt,
            Expr::current_timestamp(),
        )
        .filter(token_transactions::Column::TxId.eq(tx_id))
        .exec(db)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected, 1);
}

/// Marks a confirmed transaction not final (or final again): a block a
/// reorganisation may still remove.
pub async fn set_final(db: &DatabaseConnection, tx_id: &str, is_final: bool) {
    let updated = token_transactions::Entity::update_many()
        .set(token_transactions::ActiveModel {
            final_at: Set(is_final.then(chrono::Utc::now)),
            ..Default::default()
        })
        .filter(token_transactions::Column::TxId.eq(tx_id))
        .exec(db)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected, 1);
}

/// The user with this partner id.
pub async fn user(db: &DatabaseConnection, external_id: &str) -> users::Model {
    users::find_by_external_id(db, external_id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("user {external_id} exists"))
}

/// Reads one sample of `metric` (all label pairs given) from `/metrics`; 0 when absent.
pub async fn metric(app: &TestApp<Error>, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.split(['{', ' ']).next() == Some(metric)
                && labels
                    .iter()
                    .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

// ---------------------------------------------------------------- events

/// An Aurora booking.
pub fn booking(id: &str, guest: &str, price: &str, nights: u32) -> PartnerEvent {
    PartnerEvent::AuroraBookingCreated(Booking {
        booking_id: id.into(),
        guest_id: guest.into(),
        guest_email: Some(format!("{guest}@example.com")),
        total_price: price.into(),
        nights,
        check_in: Some("2025-12-01".into()),
        check_out: None,
    })
}

/// An Aurora cancellation.
pub fn cancellation(id: &str, guest: &str) -> PartnerEvent {
    PartnerEvent::AuroraBookingCancelled(BookingCancellation {
        booking_id: id.into(),
        guest_id: guest.into(),
        cancellation_reason: Some("guest request".into()),
    })
}

/// A Tribe event attendance.
pub fn attendance(event: &str, attendee: &str, kind: &str) -> PartnerEvent {
    PartnerEvent::TribeEventAttendance(EventAttendance {
        event_id: event.into(),
        attendee_id: attendee.into(),
        event_name: None,
        event_type: kind.into(),
        attended: true,
        timestamp: None,
    })
}

/// `n` HNV in wei.
pub fn hnv(n: u128) -> u128 {
    n * 10u128.pow(18)
}
