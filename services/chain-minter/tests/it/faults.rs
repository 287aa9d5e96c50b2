//! Fault tests (issue 6): chain-minter killed mid-flight, the chain's RPC
//! cut for 30 s, two replicas sharing the queue, one request delivered 100
//! times. Each ends with the same verdict, read from the chain itself: every
//! mint landed exactly once, and the database agrees. The mints are
//! refunds, whose confirmations are announced, so each announcement is
//! checked exactly once as well.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use haven_chain::contract::HAVEN;
use haven_chain::testing::dev_key;
use haven_common::testing::amqp::ready_count;
use haven_common::testing::proxy::TcpProxy;
use haven_entity::token_transactions::{self, TxStatus};
use haven_entity::{signer_leases, user_balances};
use haven_messages::{ChainRequest, names};
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::helpers::*;

/// How long a run may take to settle once nothing is in its way any more.
const SETTLE: Duration = Duration::from_secs(120);

/// How long the chain stays unreachable in the outage test.
const OUTAGE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn killed_after_sending_and_before_recording_then_restarted_mints_each_exactly_once() {
    let s = spawn_stack(&[]).await;
    // From here on blocks come only when the test mines them: the killed
    // process can broadcast its batches but never see them confirmed.
    s.set_automine(false).await;
    let supply = s.total_supply().await;
    let mints = pending_refunds(s.db(), "killed", 30, |i| 1 + i as u128).await;

    let mut minter = s.minter_process(&s.anvil.endpoint(), &["--batch-size", "10"]);
    s.publish(&requests_of(&mints)).await;
    wait_broadcast(&s, &mut minter, 30).await;
    assert_eq!(count_status(s.db(), TxStatus::Submitted).await, 30);
    minter.kill();

    // Sent and not recorded: the chain mines what the dead process sent,
    // the database still says `submitted`.
    s.mine(1).await;
    s.set_automine(true).await;
    assert_eq!(s.minted_events().await.len(), 30, "the batches landed");
    assert_eq!(count_status(s.db(), TxStatus::Confirmed).await, 0);

    let restarted = s.minter(&s.anvil.endpoint(), &[]).await;
    wait_settled(s.db(), SETTLE).await;
    assert_minted_exactly_once(&s, &mints, supply).await;
    restarted.stop().await;
    s.finish().await;
}

#[tokio::test]
async fn killed_before_the_chain_mined_and_restarted_first_mints_each_exactly_once() {
    // The harder order: the restarted minter finds nothing on chain, resends
    // every batch with the other signer, and only then does the chain mine
    // both the dead process's transactions and the resends.
    let s = spawn_stack(&[]).await;
    s.set_automine(false).await;
    let supply = s.total_supply().await;
    let mints = pending_refunds(s.db(), "unmined", 30, |i| 1 + i as u128).await;

    let mut minter = s.minter_process(&s.anvil.endpoint(), &["--batch-size", "10"]);
    s.publish(&requests_of(&mints)).await;
    wait_broadcast(&s, &mut minter, 30).await;
    let first_hashes = recorded_hashes(s.db()).await;
    minter.kill();

    let restarted = s.minter(&s.anvil.endpoint(), &["--batch-size", "10"]).await;
    let (db, first) = (s.db(), &first_hashes);
    wait_for(
        "every batch resent",
        Duration::from_secs(60),
        move || async move {
            let now = recorded_hashes(db).await;
            now.iter().all(|(id, hash)| first.get(id) != Some(hash))
        },
    )
    .await;
    assert!(s.minted_events().await.is_empty(), "nothing mined yet");

    s.set_automine(true).await;
    wait_settled(s.db(), SETTLE).await;
    assert_minted_exactly_once(&s, &mints, supply).await;
    restarted.stop().await;
    s.finish().await;
}

#[tokio::test]
async fn rpc_unreachable_for_30_s_during_500_mints_confirms_all_once() {
    let s = spawn_stack(&[]).await;
    let proxy = TcpProxy::start(format!("127.0.0.1:{}", s.anvil.port()))
        .await
        .unwrap();
    let supply = s.total_supply().await;
    let mints = pending_refunds(s.db(), "outage", 500, |i| 1 + i as u128 % 13).await;
    let requests = requests_of(&mints);
    let app = s.minter(&format!("http://{}", proxy.addr()), &[]).await;

    // The first 200 start going out; the chain goes away mid-run and the
    // other 300 arrive during the outage.
    s.publish(&requests[..200]).await;
    let db = s.db();
    wait_for(
        "the first batch sent",
        Duration::from_secs(30),
        move || async move { count_with_hash(db).await > 0 },
    )
    .await;
    proxy.cut();
    let cut_at = tokio::time::Instant::now();
    s.publish(&requests[200..]).await;
    let health = app.wait_for_health(503, Duration::from_secs(20)).await;
    assert_eq!(health["blockchain"], "disconnected", "{health}");
    tokio::time::sleep_until(cut_at + OUTAGE).await;
    let open = 500 - count_status(s.db(), TxStatus::Confirmed).await;
    eprintln!("{open} of 500 mints open when the chain came back");
    assert!(open >= 300, "the outage did not hold anything up");
    proxy.restore();

    wait_settled(s.db(), SETTLE).await;
    eprintln!(
        "all settled {:?} after the chain came back",
        cut_at.elapsed().saturating_sub(OUTAGE)
    );
    assert_minted_exactly_once(&s, &mints, supply).await;
    app.stop().await;
    s.finish().await;
}

#[tokio::test]
async fn two_replicas_share_1000_mints_each_once_without_nonce_errors() {
    let s = spawn_stack(&[]).await;
    let supply = s.total_supply().await;
    let one = s.minter(&s.anvil.endpoint(), &[]).await;
    let two = s.minter(&s.anvil.endpoint(), &[]).await;
    // Both consume and each holds its own signer before the first request
    // arrives, so the broker spreads the requests over both.
    let stack = &s;
    wait_for(
        "both replicas ready",
        Duration::from_secs(30),
        move || async move {
            let leases = signer_leases::Entity::find()
                .count(stack.db())
                .await
                .unwrap();
            leases == 2 && stack.consumer_count(names::CHAIN_REQUESTS.name).await == 2
        },
    )
    .await;

    let mints = pending_refunds(s.db(), "replicas", 1000, |i| 1 + i as u128 % 29).await;
    let started = std::time::Instant::now();
    s.publish(&requests_of(&mints)).await;
    wait_settled(s.db(), SETTLE).await;
    eprintln!(
        "1,000 mints published and settled in {:?}",
        started.elapsed()
    );
    assert_minted_exactly_once(&s, &mints, supply).await;

    for signer in SIGNERS {
        let address = dev_key(signer).address();
        let sent = s.mined_tx_count(address).await;
        eprintln!("signer {signer} ({address}) sent {sent} transactions");
        assert!(
            sent > 0,
            "signer {signer} never sent: one replica did nothing"
        );
    }
    for app in [&one, &two] {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let nonce_retries =
            metric_sum(&metrics, "haven_chain_retries_total", &[r#"class="nonce""#]);
        assert_eq!(nonce_retries, 0.0, "a nonce collision:\n{metrics}");
        let acked = metric_sum(
            &metrics,
            "haven_amqp_consumed_total",
            &[r#"outcome="ack""#, r#"queue="chain-minter.requests""#],
        );
        eprintln!("a replica acked {acked} requests");
        assert!(acked > 0.0, "one replica consumed nothing");
    }
    one.stop().await;
    two.stop().await;
    s.finish().await;
}

/// Found by the fault matrix's `replicas` row (one signer, two replicas):
/// the replica without the lease kept its prefetched requests waiting for a
/// lease it never got, for minutes, while the holder idled. Now only a
/// lease holder consumes; the other stands by and takes over when it goes.
#[tokio::test]
async fn a_replica_without_a_signer_takes_no_requests_until_it_holds_one() {
    let s = spawn_stack(&[]).await;
    let supply = s.total_supply().await;
    let key = format!("0x{}", hex::encode(dev_key(SIGNERS[0]).to_bytes()));
    let one_signer = ["--signer-private-keys", key.as_str()];
    let stack = &s;
    let queue = names::CHAIN_REQUESTS.name;
    let holder = s.minter(&s.anvil.endpoint(), &one_signer).await;
    wait_for(
        "the holder consuming",
        Duration::from_secs(30),
        move || async move { stack.consumer_count(queue).await == 1 },
    )
    .await;
    let standby = s.minter(&s.anvil.endpoint(), &one_signer).await;
    standby.wait_for_health(200, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        s.consumer_count(queue).await,
        1,
        "the standby consumes nothing"
    );

    let mints = pending_refunds(s.db(), "standby", 200, |i| 1 + i as u128 % 7).await;
    s.publish(&requests_of(&mints)).await;
    wait_settled(s.db(), SETTLE).await;
    assert_minted_exactly_once(&s, &mints, supply).await;
    let acked = |metrics: &str| {
        metric_sum(
            metrics,
            "haven_amqp_consumed_total",
            &[r#"outcome="ack""#, r#"queue="chain-minter.requests""#],
        )
    };
    let standby_metrics = standby.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        acked(&standby_metrics),
        0.0,
        "every request went to the holder"
    );

    // The holder stops (its lease released): the standby takes over.
    holder.stop().await;
    wait_for(
        "the standby consuming",
        Duration::from_secs(60),
        move || async move { stack.consumer_count(queue).await == 1 },
    )
    .await;
    let supply = s.total_supply().await;
    let more = pending_refunds(s.db(), "takeover", 20, |_| 3).await;
    s.publish(&requests_of(&more)).await;
    wait_settled(s.db(), SETTLE).await;
    assert_eq!(count_status(s.db(), TxStatus::Confirmed).await, 220);
    let expected: u128 = more.iter().map(|(_, _, amount)| amount).sum();
    assert_eq!(
        s.total_supply().await - supply,
        expected,
        "minted once each"
    );
    let standby_metrics = standby.get("/metrics").await.text().await.unwrap();
    assert!(acked(&standby_metrics) >= 20.0, "{standby_metrics}");
    standby.stop().await;
    s.finish().await;
}

#[tokio::test]
async fn the_same_request_delivered_100_times_mints_once() {
    let s = spawn_stack(&[]).await;
    let supply = s.total_supply().await;
    // Small batches: the copies spread over several batches sent and
    // confirmed concurrently, not one batch that skips its own repeats.
    let app = s.minter(&s.anvil.endpoint(), &["--batch-size", "7"]).await;
    let mints = pending_refunds(s.db(), "dup", 1, |_| 42).await;
    let copies = vec![mints[0].0.clone(); 100];
    s.publish(&copies).await;

    // Every copy settled (acked), not just the first.
    let minter = &app;
    wait_for("all 100 copies acked", SETTLE, move || async move {
        let metrics = minter.get("/metrics").await.text().await.unwrap();
        metric_sum(
            &metrics,
            "haven_amqp_consumed_total",
            &[r#"outcome="ack""#, r#"queue="chain-minter.requests""#],
        ) >= 100.0
    })
    .await;
    wait_settled(s.db(), SETTLE).await;
    let connection = s.deps.amqp.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = s
        .deps
        .amqp
        .topology()
        .work_queue(names::CHAIN_REQUESTS.name);
    assert_eq!(ready_count(&channel, &queue).await, 0);
    let _ = connection.close(200, "done".into()).await;

    assert_minted_exactly_once(&s, &mints, supply).await;
    app.stop().await;
    s.finish().await;
}

// ------------------------------------------------------------------ verdict

/// Every mint of `mints` landed exactly once on chain and nothing else was
/// minted since `supply_before`; the database says confirmed, at the
/// transaction that minted it, with the same ledger balance; each
/// confirmation was announced once.
async fn assert_minted_exactly_once(
    s: &Stack,
    mints: &[(ChainRequest, Address, u128)],
    supply_before: u128,
) {
    let n = mints.len() as u64;
    assert_eq!(
        count_status(s.db(), TxStatus::Failed).await,
        0,
        "none failed"
    );
    assert_eq!(count_status(s.db(), TxStatus::Confirmed).await, n);

    // The chain: one `Minted` per reference, the balances and the supply.
    let events = s.minted_events().await;
    let mut minted_at: HashMap<B256, Vec<B256>> = HashMap::new();
    for (reference, tx_hash) in &events {
        minted_at.entry(*reference).or_default().push(*tx_hash);
    }
    let twice: Vec<_> = minted_at.values().filter(|txs| txs.len() > 1).collect();
    assert!(twice.is_empty(), "references minted twice: {twice:?}");
    assert_eq!(events.len() as u64, n, "one Minted event per request");
    let expected_supply: u128 = mints.iter().map(|(_, _, amount)| amount).sum();
    assert_eq!(s.total_supply().await - supply_before, expected_supply);

    // Every wallet on chain and in the ledger (read in bulk: 1,000 one by
    // one would dominate the test).
    let rows: HashMap<uuid::Uuid, token_transactions::Model> = token_transactions::Entity::find()
        .all(s.db())
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let ledger: HashMap<uuid::Uuid, u128> = user_balances::Entity::find()
        .all(s.db())
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.user_id, u128::try_from(b.available.get()).unwrap()))
        .collect();
    let on_chain = balances_of(s, mints.iter().map(|(_, wallet, _)| *wallet)).await;
    let mut wrong_hash = Vec::new();
    for ((request, wallet, amount), chain_balance) in mints.iter().zip(on_chain) {
        let ChainRequest::Mint(m) = request else {
            panic!("only mints here")
        };
        assert_eq!(chain_balance, *amount, "{wallet} on chain");
        let row = &rows[&m.tx_id];
        let reference = B256::from_slice(&row.chain_reference);
        assert_eq!(
            minted_at.get(&reference).map(Vec::len),
            Some(1),
            "{} minted once",
            row.id
        );
        assert_eq!(
            ledger.get(&row.user_id),
            Some(amount),
            "{} in the ledger",
            row.id
        );
        let landed = minted_at[&reference][0].to_string();
        if row.tx_hash.as_deref() != Some(landed.as_str()) {
            wrong_hash.push((row.id, row.tx_hash.clone(), landed));
        }
    }
    // What the database says about where and how often it landed: the
    // history shows users this hash, and redemption-payout acts on each
    // confirmation. Collected, so one failure reports all of it.
    let mut problems = Vec::new();
    if !wrong_hash.is_empty() {
        problems.push(format!(
            "{} of {n} confirmed rows record a transaction that did not mint them \
             (id, recorded, minted by), e.g. {:?}",
            wrong_hash.len(),
            &wrong_hash[..wrong_hash.len().min(3)]
        ));
    }
    let announced = s.confirmed_announcements(Duration::from_secs(3)).await;
    let repeated: Vec<_> = announced.iter().filter(|(_, n)| **n > 1).collect();
    if !repeated.is_empty() {
        problems.push(format!(
            "{} confirmations announced more than once (tx id, times), e.g. {:?}",
            repeated.len(),
            &repeated[..repeated.len().min(3)]
        ));
    }
    if announced.len() as u64 != n {
        problems.push(format!(
            "{} of {n} confirmations announced",
            announced.len()
        ));
    }
    assert!(
        problems.is_empty(),
        "minted exactly once on chain and in the ledger, but:\n{}",
        problems.join("\n")
    );
}

// ------------------------------------------------------------------ helpers

/// Waits until the child process has broadcast all `n` mints (each row
/// has a hash); panics if it died or took over a minute.
async fn wait_broadcast(s: &Stack, minter: &mut MinterProcess, n: u64) {
    let started = tokio::time::Instant::now();
    while count_with_hash(s.db()).await < n {
        minter.assert_running();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not every batch broadcast within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `balanceOf` of each wallet, in order, a few calls at a time on one client.
async fn balances_of(s: &Stack, wallets: impl Iterator<Item = Address>) -> Vec<u128> {
    use futures::StreamExt as _;
    let rpc = s.rpc();
    let (rpc, contract) = (&rpc, s.contract);
    futures::stream::iter(wallets)
        .map(|account| async move {
            let balance: alloy::primitives::U256 = rpc
                .view(contract, &HAVEN::balanceOfCall { account })
                .await
                .unwrap();
            balance.to::<u128>()
        })
        .buffered(16)
        .collect()
        .await
}

fn requests_of(mints: &[(ChainRequest, Address, u128)]) -> Vec<ChainRequest> {
    mints.iter().map(|(r, _, _)| r.clone()).collect()
}

/// Polls `done` every 100 ms until true; panics after `deadline`.
async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each token transaction's recorded hash.
async fn recorded_hashes(db: &sea_orm::DatabaseConnection) -> HashMap<uuid::Uuid, Option<String>> {
    token_transactions::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.id, row.tx_hash))
        .collect()
}

/// Sum of the samples of metric `name` whose labels contain all of `labels`.
fn metric_sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter(|line| {
            line[name.len()..].starts_with(['{', ' ']) && labels.iter().all(|l| line.contains(l))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
