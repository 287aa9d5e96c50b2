//! `spawn_app`: chain-minter running in-process against fresh dependencies,
//! a throw-away anvil with the HAVEN contract deployed, and helpers to queue
//! requests and read the chain.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chain_minter::testing::chain_args;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use chain_minter::{Config, Error};
use clap::Parser as _;
use haven_chain::contract::HAVEN;

use haven_chain::rpc::Rpc;
use haven_chain::testing::{AnvilInstance, deploy_for_tests};
use haven_common::amqp::AmqpClient;
use haven_common::testing::app::{TestApp, TestDeps};
use haven_entity::chain_store::DbDeployments;
use haven_entity::token_transactions::{self, NewTokenTransaction, TxStatus, TxType};
use haven_entity::users::{self, NewUser};
use haven_messages::{BurnRequest, ChainRequest, Envelope, MintRequest};
use sea_orm::DatabaseConnection;

/// Dev accounts of the signer pool (1 and 2); 0 deploys.
pub const SIGNERS: [u32; 2] = [1, 2];

/// One HNV in wei.
pub const HNV: u128 = 1_000_000_000_000_000_000;

/// A chain-minter running in-process on its own [`Stack`]; derefs to the stack.
pub struct Spawned {
    pub app: TestApp<Error>,
    pub stack: Stack,
}

impl std::ops::Deref for Spawned {
    type Target = Stack;
    fn deref(&self) -> &Stack {
        &self.stack
    }
}

impl Spawned {
    /// Stops the minter, then everything else.
    pub async fn finish(self) {
        self.app.stop().await;
        self.stack.finish().await;
    }
}

/// Starts anvil (`anvil_args`), deploys, and starts chain-minter with `extra` settings.
pub async fn spawn_app_with(anvil_args: &[&str], extra: &[&str]) -> Spawned {
    let stack = spawn_stack(anvil_args).await;
    let app = stack.minter(&stack.anvil.endpoint(), extra).await;
    Spawned { app, stack }
}

/// [`spawn_app_with`] with anvil's defaults (automine).
pub async fn spawn_app() -> Spawned {
    spawn_app_with(&[], &[]).await
}

/// Starts one chain-minter on existing dependencies with the given pool.
pub async fn spawn_minter(
    deps: &TestDeps,
    rpc_url: &str,
    contract: Address,
    signers: &[u32],
    extra: &[&str],
) -> TestApp<Error> {
    let args = std::iter::once("chain-minter".to_owned())
        .chain(deps.args())
        .chain(chain_args(rpc_url, contract, signers))
        .chain(extra.iter().map(|s| (*s).to_owned()));
    let config = Config::try_parse_from(args).expect("test settings parse");
    TestApp::spawn(|listener, shutdown| chain_minter::run(config, listener, shutdown)).await
}

/// Creates `n` users named `<prefix>-<i>` with distinct wallets and a pending
/// mint of `hnv(i)` HNV each; returns the requests to publish.
pub async fn pending_mints(
    db: &DatabaseConnection,
    prefix: &str,
    n: usize,
    hnv: impl Fn(usize) -> u128,
) -> Vec<(ChainRequest, Address, u128)> {
    pending_mints_for(db, prefix, n, hnv, "booking").await
}

/// Like [`pending_mints`], refunds of redemptions: their confirmations are
/// announced (redemption-payout waits on them), so a test can check each
/// is announced exactly once.
pub async fn pending_refunds(
    db: &DatabaseConnection,
    prefix: &str,
    n: usize,
    hnv: impl Fn(usize) -> u128,
) -> Vec<(ChainRequest, Address, u128)> {
    pending_mints_for(db, prefix, n, hnv, haven_messages::REFUND_REASON).await
}

async fn pending_mints_for(
    db: &DatabaseConnection,
    prefix: &str,
    n: usize,
    hnv: impl Fn(usize) -> u128,
    reason: &str,
) -> Vec<(ChainRequest, Address, u128)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let external_id = format!("{prefix}-{i}");
        let user = users::find_or_create(
            db,
            NewUser {
                partner: "aurora".into(),
                external_id: external_id.clone(),
                email: None,
            },
            |index| {
                let mut bytes = [0u8; 20];
                bytes[..8].copy_from_slice(&u64::from(index).to_be_bytes());
                bytes[8..16].copy_from_slice(&(prefix.len() as u64 + 0xABCD).to_be_bytes());
                Ok::<_, std::convert::Infallible>(Address::from(bytes).to_checksum(None))
            },
        )
        .await
        .unwrap()
        .user;
        let amount = hnv(i) * HNV;
        let tx = token_transactions::insert_pending(
            db,
            NewTokenTransaction {
                tx_id: format!("{external_id}-mint"),
                user_id: user.id,
                tx_type: TxType::Mint,
                amount: haven_entity::SignedWei::new(i128::try_from(amount).unwrap()),
                reason: reason.to_owned(),
                requested_by: None,
                accepted_at: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
        let wallet: Address = user.wallet_address.parse().unwrap();
        out.push((
            ChainRequest::Mint(MintRequest {
                tx_id: tx.id,
                user_id: external_id,
                to_address: user.wallet_address,
                amount_wei: amount,
                reason: reason.to_owned(),
            }),
            wallet,
            amount,
        ));
    }
    out
}

/// A burn request for an existing user, recorded pending, its tokens
/// reserved.
pub async fn pending_burn(
    db: &DatabaseConnection,
    external_id: &str,
    amount: u128,
    reason: &str,
) -> ChainRequest {
    let user = users::find_by_external_id(db, external_id)
        .await
        .unwrap()
        .unwrap();
    let tx = token_transactions::insert_pending(
        db,
        NewTokenTransaction {
            tx_id: format!("{external_id}-burn-{reason}"),
            user_id: user.id,
            tx_type: TxType::Burn,
            amount: haven_entity::SignedWei::new(i128::try_from(amount).unwrap()),
            reason: reason.into(),
            requested_by: None,
            accepted_at: None,
        },
    )
    .await
    .unwrap()
    .unwrap();
    // Every burn takes tokens reserved for it (reward-calculator reserves a
    // reversal's before queueing it; webhook-ingress a redemption's).
    {
        use haven_entity::ledger::{self, Movement};
        use sea_orm::TransactionTrait;
        let txn = db.begin().await.unwrap();
        let hold = Movement::reserve(
            format!("reversal-reserve:{}", tx.id),
            user.id,
            haven_entity::SignedWei::new(i128::try_from(amount).unwrap()),
        )
        .unwrap();
        ledger::post(&txn, &hold).await.unwrap();
        txn.commit().await.unwrap();
    }
    ChainRequest::Burn(BurnRequest {
        tx_id: tx.id,
        user_id: external_id.into(),
        from_address: user.wallet_address,
        amount_wei: amount,
        reason: reason.into(),
        redemption_id: None,
    })
}

/// Waits until no token transaction is `pending` or `submitted`, or panics after `deadline`.
pub async fn wait_settled(db: &DatabaseConnection, deadline: Duration) {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    let started = tokio::time::Instant::now();
    loop {
        let open = token_transactions::Entity::find()
            .filter(
                token_transactions::Column::Status.is_in([TxStatus::Pending, TxStatus::Submitted]),
            )
            .count(db)
            .await
            .unwrap();
        if open == 0 {
            return;
        }
        assert!(
            started.elapsed() < deadline,
            "{open} token transactions still open after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Count of token transactions in `status`.
pub async fn count_status(db: &DatabaseConnection, status: TxStatus) -> u64 {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    token_transactions::Entity::find()
        .filter(token_transactions::Column::Status.eq(status))
        .count(db)
        .await
        .unwrap()
}

// ------------------------------------------------------------------------
// Fault tests: a stack without a minter, the real binary as a child
// process, and what the chain itself says was minted.

/// Dependencies, anvil and the deployed contract, with no chain-minter
/// running: fault tests start (and kill) their minters themselves.
pub struct Stack {
    pub deps: TestDeps,
    pub anvil: AnvilInstance,
    pub contract: Address,
    pub amqp: AmqpClient,
}

/// Deploys HAVEN on `anvil` (signers [`SIGNERS`]), recording it in the
/// test's database; retries the first requests a fresh node may drop.
pub async fn deploy_contract(deps: &TestDeps, anvil: &AnvilInstance) -> Address {
    deploy_for_tests(anvil, &SIGNERS, &DbDeployments::new(deps.db.conn().clone())).await
}

/// Fresh dependencies, anvil (`anvil_args`, which must mine: the deploy
/// waits for its receipt) and the deployed contract; no minter.
pub async fn spawn_stack(anvil_args: &[&str]) -> Stack {
    let deps = TestDeps::new().await;
    let anvil = AnvilInstance::spawn_with(anvil_args);
    let contract = deploy_contract(&deps, &anvil).await;
    let amqp = deps.amqp.client(&deps.amqp.config());
    Stack {
        deps,
        anvil,
        contract,
        amqp,
    }
}

impl Stack {
    /// The test's database, directly.
    pub fn db(&self) -> &DatabaseConnection {
        self.deps.db.conn()
    }

    /// An RPC client of the test's anvil (never through a proxy).
    pub fn rpc(&self) -> Rpc {
        Rpc::new(&self.anvil.rpc_config()).unwrap()
    }

    /// `balanceOf(address)` on chain, in wei.
    pub async fn balance_of(&self, address: Address) -> u128 {
        let balance: U256 = self
            .rpc()
            .view(self.contract, &HAVEN::balanceOfCall { account: address })
            .await
            .unwrap();
        balance.to::<u128>()
    }

    /// `totalSupply()` on chain, in wei.
    pub async fn total_supply(&self) -> u128 {
        let supply: U256 = self
            .rpc()
            .view(self.contract, &HAVEN::totalSupplyCall {})
            .await
            .unwrap();
        supply.to::<u128>()
    }

    /// Publishes chain requests to the namespace's exchange.
    pub async fn publish(&self, requests: &[ChainRequest]) {
        self.amqp
            .wait_connected(Duration::from_secs(10))
            .await
            .unwrap();
        let publisher = self.amqp.publisher();
        for request in requests {
            publisher
                .publish(&Envelope::new(request.clone()))
                .await
                .unwrap();
        }
    }

    /// A chain-minter in this process on the stack, pool [`SIGNERS`],
    /// reaching the chain at `rpc_url`.
    pub async fn minter(&self, rpc_url: &str, extra: &[&str]) -> TestApp<Error> {
        spawn_minter(&self.deps, rpc_url, self.contract, &SIGNERS, extra).await
    }

    /// The real `chain-minter` binary as a child process on the stack, pool
    /// [`SIGNERS`], reaching the chain at `rpc_url`; killed when dropped.
    pub fn minter_process(&self, rpc_url: &str, extra: &[&str]) -> MinterProcess {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_chain-minter"))
            .args(self.deps.args())
            .args([
                "--http-host",
                "127.0.0.1",
                "--port",
                "0",
                "--log-filter",
                "warn",
            ])
            .args(chain_args(rpc_url, self.contract, &SIGNERS))
            .args(extra)
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("start the chain-minter binary");
        MinterProcess { child }
    }

    /// Every `Minted` event of the contract: (reference, transaction hash).
    pub async fn minted_events(&self) -> Vec<(alloy::primitives::B256, alloy::primitives::B256)> {
        use alloy::providers::Provider as _;
        use alloy::rpc::types::Filter;
        use alloy::sol_types::SolEvent as _;
        let filter = Filter::new()
            .address(self.contract)
            .event_signature(HAVEN::Minted::SIGNATURE_HASH)
            .from_block(0);
        self.rpc()
            .provider()
            .get_logs(&filter)
            .await
            .unwrap()
            .into_iter()
            .map(|log| {
                let event = log.log_decode::<HAVEN::Minted>().unwrap().inner.data;
                (event.r#ref, log.transaction_hash.unwrap())
            })
            .collect()
    }

    /// Transactions `address` has had mined (its latest nonce).
    pub async fn mined_tx_count(&self, address: Address) -> u64 {
        self.rpc().mined_nonce(address).await.unwrap()
    }

    /// Switches anvil's automine on or off.
    pub async fn set_automine(&self, on: bool) {
        use alloy::providers::ext::AnvilApi as _;
        self.rpc().provider().anvil_set_auto_mine(on).await.unwrap();
    }

    /// Mines `blocks` blocks now (with whatever the node holds pending).
    pub async fn mine(&self, blocks: u64) {
        use alloy::providers::ext::AnvilApi as _;
        self.rpc()
            .provider()
            .anvil_mine(Some(blocks), None)
            .await
            .unwrap();
    }

    /// Consumers attached to a work queue of the namespace (0 while the
    /// queue is not declared yet).
    pub async fn consumer_count(&self, queue: &str) -> u32 {
        use lapin::options::QueueDeclareOptions;
        use lapin::types::FieldTable;
        let connection = self.deps.amqp.raw_connection().await;
        let channel = connection.create_channel().await.unwrap();
        let name = self.deps.amqp.topology().work_queue(queue);
        let count = channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            // Not declared yet (no minter has connected): nobody consumes.
            .map_or(0, |queue| queue.consumer_count());
        let _ = connection.close(200, "done".into()).await;
        count
    }

    /// How many `confirmed` chain events each token transaction got,
    /// draining the namespace's chain-events queue (waits `quiet` for
    /// stragglers the outbox relay has not published yet).
    pub async fn confirmed_announcements(
        &self,
        quiet: Duration,
    ) -> std::collections::HashMap<uuid::Uuid, usize> {
        use haven_messages::{ChainEvent, names};
        let connection = self.deps.amqp.raw_connection().await;
        let channel = connection.create_channel().await.unwrap();
        let queue = self
            .deps
            .amqp
            .topology()
            .work_queue(names::CHAIN_EVENTS.name);
        let mut seen = std::collections::HashMap::new();
        while let Some(m) = haven_common::testing::amqp::get_one(&channel, &queue, quiet).await {
            if let ChainEvent::Confirmed(c) = Envelope::<ChainEvent>::decode(&m.delivery.data)
                .unwrap()
                .payload
            {
                *seen.entry(c.tx_id).or_default() += 1;
            }
        }
        let _ = connection.close(200, "done".into()).await;
        seen
    }

    /// Closes the test's clients, drops the database and the namespace.
    pub async fn finish(self) {
        self.amqp.close().await;
        self.deps.cleanup().await;
    }
}

/// The real `chain-minter` binary running as a child process.
pub struct MinterProcess {
    child: std::process::Child,
}

impl MinterProcess {
    /// SIGKILL: no shutdown, no drain, no lease release.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL chain-minter");
        self.child.wait().expect("reap chain-minter");
    }

    /// Panics if the process has exited (it should be running).
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("chain-minter exited early: {status}");
        }
    }
}

impl Drop for MinterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Count of token transactions that have a recorded transaction hash.
pub async fn count_with_hash(db: &DatabaseConnection) -> u64 {
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    token_transactions::Entity::find()
        .filter(token_transactions::Column::TxHash.is_not_null())
        .count(db)
        .await
        .unwrap()
}

/// The sum of every sample of metric `name` on `app`'s `/metrics` (0 when absent).
pub async fn metric_value(app: &TestApp<Error>, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|line| line.split(['{', ' ']).next() == Some(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
