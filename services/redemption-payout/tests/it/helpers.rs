//! What the integration tests run: redemption-payout in-process (or as the
//! real binary) against its own database and broker namespace, a stand-in
//! payout provider, and for the saga tests a throw-away anvil with the
//! contract, chain-minter in-process, and mints and reservations written
//! through the entity layer as the API writes them (row, ledger posting and
//! outbox message in one transaction).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chain_minter::testing::chain_args;
pub use haven_common::testing::eventually;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use clap::Parser as _;
use haven_chain::contract::HAVEN;
use haven_chain::rpc::Rpc;
use haven_chain::signer::CustodyWallets;
use haven_chain::testing::{AnvilInstance, deploy_for_tests};
use haven_common::amqp::AmqpClient;
use haven_common::config::Redacted;
use haven_common::money::Wei as Money;
use haven_common::testing::app::{TestApp, TestDeps};
use haven_entity::EntityError;
use haven_entity::chain_store::DbDeployments;
use haven_entity::ledger::{self, Account, Movement};
use haven_entity::ledger_movements::MovementKind;
use haven_entity::redemptions::{self, NewRedemption, RedemptionState, WithdrawalMethod};
use haven_entity::token_transactions::{self, NewTokenTransaction, TxStatus, TxType};
use haven_entity::users::{self, NewUser};
use haven_messages::{
    ChainRequest, Envelope, MintRequest, QueueMessage, RedemptionCommand, RedemptionRequested,
};
use redemption_payout::provider::stand_in::{Options, StandIn};
use redemption_payout::{Config, Error};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
};
use uuid::Uuid;

/// The well-known development mnemonic: fine for throw-away test wallets.
pub const TEST_MNEMONIC: &str = "test test test test test test test test test test test junk";
/// Dev accounts of chain-minter's signer pool; 0 deploys.
pub const SIGNERS: [u32; 1] = [1];
/// The token the stand-in requires and redemption-payout sends.
pub const PROVIDER_TOKEN: &str = "test-provider-token";
/// The API key name the test redemptions are recorded as asked by.
pub const REQUESTED_BY: &str = "support-desk";
/// How long a redemption may take to settle once nothing is in its way.
pub const SETTLE: Duration = Duration::from_secs(60);

/// `n` HNV in wei.
pub const fn hnv(n: u128) -> u128 {
    n * 1_000_000_000_000_000_000
}

/// An entity amount of `n` HNV.
pub fn entity_hnv(n: u128) -> haven_entity::SignedWei {
    haven_entity::SignedWei::new(i128::try_from(hnv(n)).unwrap())
}

/// A redemption reserved as the API reserves it.
#[derive(Debug, Clone, Copy)]
pub struct Reserved {
    /// Its id.
    pub request_id: Uuid,
    /// What it pays out (98 %).
    pub payout_amount: Money,
}

// ------------------------------------------------------------------ no chain

/// redemption-payout in-process with a stand-in provider, no chain: for
/// the ops endpoints.
pub struct Spawned {
    pub app: TestApp<Error>,
    pub deps: TestDeps,
    pub provider: StandIn,
}

/// Starts redemption-payout on a random port against a fresh database and
/// broker namespace and a stand-in provider.
pub async fn spawn_app() -> Spawned {
    let deps = TestDeps::new().await;
    let provider = StandIn::start(Options::default()).await.unwrap();
    let app = spawn_payout(&deps, &provider.url(), &[]).await;
    Spawned {
        app,
        deps,
        provider,
    }
}

/// The command line of a redemption-payout on `deps` paying through
/// `provider_url`, test defaults first unless `extra` sets them.
pub fn payout_args(deps: &TestDeps, provider_url: &str, extra: &[&str]) -> Vec<String> {
    let defaults = [
        ("--payout-provider-url", provider_url),
        ("--payout-provider-token", PROVIDER_TOKEN),
        ("--payout-provider-retry-delay", "50ms"),
        ("--outbox-poll-interval", "200ms"),
        ("--redemption-sweep-interval", "500ms"),
        ("--redemption-stale-after", "3s"),
    ]
    .into_iter()
    .filter(|(flag, _)| !extra.contains(flag))
    .flat_map(|(flag, value)| [flag.to_owned(), value.to_owned()]);
    deps.args()
        .into_iter()
        .chain(defaults)
        .chain(extra.iter().map(|s| (*s).to_owned()))
        .collect()
}

/// A redemption-payout in this process on `deps`.
pub async fn spawn_payout(deps: &TestDeps, provider_url: &str, extra: &[&str]) -> TestApp<Error> {
    let args = std::iter::once("redemption-payout".to_owned()).chain(payout_args(
        deps,
        provider_url,
        extra,
    ));
    let config = Config::try_parse_from(args).expect("test settings parse");
    TestApp::spawn(|listener, shutdown| redemption_payout::run(config, listener, shutdown)).await
}

// ------------------------------------------------------------------ the stack

/// Dependencies, anvil with the contract, chain-minter in-process and a
/// stand-in provider; redemption-payout is started by each test.
pub struct Stack {
    pub deps: TestDeps,
    pub anvil: AnvilInstance,
    pub contract: Address,
    pub minter: TestApp<chain_minter::Error>,
    pub provider: StandIn,
    pub broker: AmqpClient,
    wallets: CustodyWallets,
}

/// Starts everything but redemption-payout.
pub async fn spawn_stack() -> Stack {
    let deps = TestDeps::new().await;
    let anvil = AnvilInstance::spawn();
    let contract = deploy_for_tests(
        &anvil,
        &SIGNERS,
        &DbDeployments::new(deps.db.conn().clone()),
    )
    .await;
    let args = std::iter::once("chain-minter".to_owned())
        .chain(deps.args())
        .chain(chain_args(&anvil.endpoint(), contract, &SIGNERS))
        .chain(
            [
                "--outbox-poll-interval",
                "200ms",
                "--batch-max-wait",
                "20ms",
            ]
            .map(str::to_owned),
        );
    let config = chain_minter::Config::try_parse_from(args).expect("minter settings parse");
    let minter =
        TestApp::spawn(|listener, shutdown| chain_minter::run(config, listener, shutdown)).await;
    minter.wait_for_health(200, Duration::from_secs(30)).await;
    let provider = StandIn::start(Options {
        api_token: Some(PROVIDER_TOKEN.to_owned()),
        ..Options::default()
    })
    .await
    .unwrap();
    let broker = deps.amqp.client(&deps.amqp.config());
    broker
        .wait_connected(Duration::from_secs(30))
        .await
        .expect("the test broker client connects");
    Stack {
        deps,
        anvil,
        contract,
        minter,
        provider,
        broker,
        wallets: CustodyWallets::from_mnemonic(&Redacted::new(TEST_MNEMONIC.to_owned())).unwrap(),
    }
}

impl Stack {
    /// The test's database, directly.
    pub fn db(&self) -> &DatabaseConnection {
        self.deps.db.conn()
    }

    /// A redemption-payout in this process, paying through the stand-in.
    pub async fn payout(&self, extra: &[&str]) -> TestApp<Error> {
        let app = spawn_payout(&self.deps, &self.provider.url(), extra).await;
        app.wait_for_health(200, Duration::from_secs(30)).await;
        app
    }

    /// Creates user `external_id` (custodial wallet from the test mnemonic).
    pub async fn user(&self, external_id: &str) -> users::Model {
        users::find_or_create(
            self.db(),
            NewUser {
                partner: "aurora".into(),
                external_id: external_id.into(),
                email: None,
            },
            |index| self.wallets.wallet_address(index),
        )
        .await
        .unwrap()
        .user
    }

    /// Marks a user KYC-verified or not.
    pub async fn set_kyc(&self, user: &users::Model, verified: bool) {
        users::Entity::update(users::ActiveModel {
            id: Set(user.id),
            kyc_verified: Set(verified),
            ..Default::default()
        })
        .exec(self.db())
        .await
        .unwrap();
    }

    /// Mints `amount` HNV to the user as `POST /token/mint` records it (a
    /// pending mint and its chain request in the outbox) and waits until
    /// chain-minter confirmed it.
    pub async fn fund(&self, user: &users::Model, amount: u128) {
        let tx_id = format!("fund-{}-{}", user.external_id, Uuid::now_v7());
        let txn = haven_common::db::begin_write(self.db()).await.unwrap();
        let tx = token_transactions::insert_pending(
            &txn,
            NewTokenTransaction {
                tx_id: tx_id.clone(),
                user_id: user.id,
                tx_type: TxType::Mint,
                amount: entity_hnv(amount),
                reason: "booking".into(),
                requested_by: None,
                accepted_at: None,
            },
        )
        .await
        .unwrap()
        .expect("a new funding tx_id");
        let request = ChainRequest::Mint(MintRequest {
            tx_id: tx.id,
            user_id: user.external_id.clone(),
            to_address: user.wallet_address.clone(),
            amount_wei: hnv(amount),
            reason: "booking".into(),
        });
        haven_outbox::enqueue(&txn, &Envelope::new(request))
            .await
            .unwrap();
        txn.commit().await.unwrap();
        let db = self.db();
        let tx_id = &tx_id;
        eventually("the funding mint confirmed", SETTLE, || async move {
            let tx = token_transactions::find_by_tx_id(db, tx_id)
                .await
                .unwrap()?;
            (tx.status == TxStatus::Confirmed).then_some(())
        })
        .await;
    }

    /// Reserves a redemption by bank transfer as `POST /token/redeem`
    /// records it.
    pub async fn redeem(
        &self,
        user: &users::Model,
        amount: u128,
        key: &str,
    ) -> Result<Reserved, EntityError> {
        self.redeem_with(user, amount, key, WithdrawalMethod::BankTransfer, None)
            .await
    }

    /// [`Stack::redeem`] with a method and address: the redemption row, the
    /// ledger's `reserve:<id>` (available -> reserved) and the
    /// `RedemptionRequested` message in the outbox, in one transaction.
    pub async fn redeem_with(
        &self,
        user: &users::Model,
        amount: u128,
        key: &str,
        method: WithdrawalMethod,
        address: Option<String>,
    ) -> Result<Reserved, EntityError> {
        // 98 % is paid out (whole HNV here, so exact).
        let payout = hnv(amount) / 100 * 98;
        let txn = haven_common::db::begin_write(self.db()).await?;
        let redemption = redemptions::insert_reserved(
            &txn,
            NewRedemption {
                user_id: user.id,
                idempotency_key: key.to_owned(),
                amount: entity_hnv(amount),
                payout_amount: haven_entity::SignedWei::new(i128::try_from(payout).unwrap()),
                method,
                address: address.clone(),
                requested_by: Some(REQUESTED_BY.to_owned()),
            },
        )
        .await?
        .expect("a new idempotency key");
        let reserve = Movement::transfer(
            format!("reserve:{}", redemption.request_id),
            MovementKind::Reserve,
            Account::UserAvailable(user.id),
            Account::UserReserved(user.id),
            entity_hnv(amount),
        )?;
        ledger::post(&txn, &reserve).await?;
        let command = RedemptionCommand::Requested(RedemptionRequested {
            redemption_id: redemption.request_id,
            user_id: user.external_id.clone(),
            amount_wei: hnv(amount),
            payout_wei: payout,
            withdrawal_method: match method {
                WithdrawalMethod::BankTransfer => haven_messages::WithdrawalMethod::BankTransfer,
                WithdrawalMethod::Paypal => haven_messages::WithdrawalMethod::Paypal,
                WithdrawalMethod::Crypto => haven_messages::WithdrawalMethod::Crypto,
            },
            withdrawal_address: address,
        });
        haven_outbox::enqueue(&txn, &Envelope::new(command))
            .await
            .unwrap();
        txn.commit().await?;
        Ok(Reserved {
            request_id: redemption.request_id,
            payout_amount: Money::from_wei(payout),
        })
    }

    /// `balanceOf` on chain, in wei.
    pub async fn balance_of(&self, user: &users::Model) -> u128 {
        let rpc = Rpc::new(&self.anvil.rpc_config()).unwrap();
        let balance: U256 = rpc
            .view(
                self.contract,
                &HAVEN::balanceOfCall {
                    account: user.wallet_address.parse().unwrap(),
                },
            )
            .await
            .unwrap();
        balance.to::<u128>()
    }

    /// Publishes envelopes into the test's namespace.
    pub async fn publish<P: QueueMessage>(&self, envelopes: &[Envelope<P>]) {
        let publisher = self.broker.publisher();
        for envelope in envelopes {
            publisher.publish(envelope).await.unwrap();
        }
    }

    /// Stops chain-minter and the stand-in, then drops everything.
    pub async fn finish(self) {
        self.minter.stop().await;
        self.provider.stop().await;
        self.broker.close().await;
        self.deps.cleanup().await;
    }
}

// ------------------------------------------------------------------ reading

/// The redemption, as stored.
pub async fn redemption(db: &DatabaseConnection, id: Uuid) -> redemptions::Model {
    redemptions::Entity::find_by_id(id)
        .one(db)
        .await
        .unwrap()
        .expect("the redemption exists")
}

/// Waits until redemption `id` is in `state`; panics with the state it is in.
pub async fn wait_state(
    db: &DatabaseConnection,
    id: Uuid,
    state: RedemptionState,
) -> redemptions::Model {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let row = redemption(db, id).await;
        if row.state == state {
            return row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "redemption {id} is {:?} ({:?}), not {state:?}, after {SETTLE:?}",
            row.state,
            row.failure_reason
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The user's token transactions of `tx_type`.
pub async fn transactions(
    db: &DatabaseConnection,
    user: &users::Model,
    tx_type: TxType,
) -> Vec<token_transactions::Model> {
    token_transactions::Entity::find()
        .filter(token_transactions::Column::UserId.eq(user.id))
        .filter(token_transactions::Column::TxType.eq(tx_type))
        .all(db)
        .await
        .unwrap()
}

/// (available, reserved) of a user in the ledger, in wei.
pub async fn ledger_balance(db: &DatabaseConnection, user: &users::Model) -> (u128, u128) {
    let balance = ledger::user_balance(db, user.id).await.unwrap();
    (
        u128::try_from(balance.available.get()).unwrap(),
        u128::try_from(balance.reserved.get()).unwrap(),
    )
}

/// A system account's balance, in wei.
pub async fn system_balance(db: &DatabaseConnection, account: Account) -> i128 {
    ledger::system_balance(db, account).await.unwrap().get()
}

/// Ledger movements whose reference is exactly `reference`.
pub async fn movements(db: &DatabaseConnection, reference: &str) -> u64 {
    use haven_entity::ledger_movements;
    ledger_movements::Entity::find()
        .filter(ledger_movements::Column::Reference.eq(reference))
        .count(db)
        .await
        .unwrap()
}

/// Every ledger entry sums to zero: the ledger balances as a whole.
pub async fn assert_ledger_balances(db: &DatabaseConnection) {
    use haven_entity::ledger_entries;
    let entries = ledger_entries::Entity::find().all(db).await.unwrap();
    let sum: i128 = entries.iter().map(|e| e.amount.get()).sum();
    assert_eq!(sum, 0, "the ledger's entries sum to {sum}");
}

/// Reads one sample of `metric` (all label pairs given) from `/metrics`; 0 when absent.
pub async fn metric<E>(app: &TestApp<E>, metric: &str, labels: &[(&str, &str)]) -> f64
where
    E: std::error::Error + Send + 'static,
{
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
