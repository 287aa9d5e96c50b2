//! `chain_store::DbLeaseStore` under the nonce manager, on a real anvil:
//! two managers racing for one signer never send two transactions with the
//! same nonce, on PostgreSQL (with a cut connection) and on SQLite. The
//! lease timing itself is tested on paused time in haven-chain.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, TxHash, U256};
use haven_chain::error::ChainError;
use haven_chain::nonce::{SignerLeases, unique_holder};
use haven_chain::rpc::Rpc;
use haven_chain::sender::{NonceSource, TxRequest, TxSender};
use haven_chain::signer::SignerPool;
use haven_chain::testing::{ANVIL_CHAIN_ID, AnvilInstance, dev_key, test_tx_config};
use haven_common::testing::db::TestDb;
use haven_common::testing::proxy::TcpProxy;
use haven_entity::chain_store::DbLeaseStore;
use sea_orm::{Database, DatabaseConnection};
use tokio_util::sync::CancellationToken;

/// Every successful broadcast: (holder, nonce, hash).
type Log = Arc<Mutex<Vec<(String, u64, TxHash)>>>;

fn pool_of(index: u32) -> SignerPool {
    SignerPool::new(vec![dev_key(index)]).unwrap()
}

fn leases(
    db: &DatabaseConnection,
    rpc: &Rpc,
    pool: &SignerPool,
    ttl: Duration,
    name: &str,
) -> SignerLeases {
    SignerLeases::new(
        Arc::new(DbLeaseStore::new(db.clone())),
        rpc.clone(),
        pool.clone(),
        ANVIL_CHAIN_ID,
        ttl,
        unique_holder(name),
    )
    .unwrap()
}

fn transfer(i: u64) -> TxRequest {
    TxRequest::transfer(Address::repeat_byte(0x77), U256::from(i + 1))
}

/// Takes the lease `rounds` times; each time sends `per_lease` transfers
/// from 3 concurrent tasks, then releases.
async fn handover_worker(leases: SignerLeases, rpc: Rpc, log: Log, rounds: usize, per_lease: u64) {
    let stop = CancellationToken::new();
    for _ in 0..rounds {
        let manager = leases
            .acquire_wait(Duration::from_millis(10), &stop)
            .await
            .expect("acquire")
            .expect("not stopped");
        let sender = Arc::new(
            TxSender::new(
                rpc.clone(),
                NonceSource::Leased(manager),
                ANVIL_CHAIN_ID,
                &test_tx_config(),
            )
            .unwrap(),
        );
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let sender = Arc::clone(&sender);
                let log = Arc::clone(&log);
                let holder = leases.holder().to_owned();
                tokio::spawn(async move {
                    for i in 0..per_lease {
                        let sent = sender
                            .send(transfer(i))
                            .await
                            .expect("send under a held lease");
                        log.lock()
                            .unwrap()
                            .push((holder.clone(), sent.nonce, sent.hash()));
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let sender = Arc::into_inner(sender).expect("tasks are done");
        let NonceSource::Leased(manager) = sender.into_nonces() else {
            unreachable!()
        };
        manager.release().await.unwrap();
        // Let the other side race for it.
        tokio::task::yield_now().await;
    }
}

async fn assert_unique_and_mined(rpc: &Rpc, signer: Address, log: &Log) {
    let log = log.lock().unwrap().clone();
    let mut by_nonce: BTreeMap<u64, Vec<(String, TxHash)>> = BTreeMap::new();
    for (holder, nonce, hash) in &log {
        by_nonce
            .entry(*nonce)
            .or_default()
            .push((holder.clone(), *hash));
    }
    let duplicates: Vec<_> = by_nonce.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(duplicates.is_empty(), "nonces sent twice: {duplicates:?}");
    // No gaps: nonces 0..n, all mined.
    let nonces: Vec<u64> = by_nonce.keys().copied().collect();
    assert_eq!(nonces, (0..log.len() as u64).collect::<Vec<_>>());
    assert_eq!(rpc.mined_nonce(signer).await.unwrap(), log.len() as u64);
    for (_, _, hash) in &log {
        let receipt = rpc
            .receipt(*hash)
            .await
            .unwrap()
            .expect("every sent transaction is mined");
        assert!(receipt.status());
    }
}

#[tokio::test]
async fn two_managers_racing_for_one_signer_never_reuse_a_nonce() {
    let anvil = AnvilInstance::spawn();
    let db = TestDb::new().await;
    let rpc = Rpc::new(&anvil.rpc_config()).unwrap();
    let pool = pool_of(3);
    let log: Log = Arc::default();
    let ttl = Duration::from_secs(5);
    let a = leases(db.conn(), &rpc, &pool, ttl, "a");
    let b = leases(db.conn(), &rpc, &pool, ttl, "b");

    let wa = tokio::spawn(handover_worker(a.clone(), rpc.clone(), log.clone(), 4, 3));
    let wb = tokio::spawn(handover_worker(b.clone(), rpc.clone(), log.clone(), 4, 3));
    wa.await.unwrap();
    wb.await.unwrap();

    let holders: HashSet<String> = log
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _, _)| h.clone())
        .collect();
    assert_eq!(holders.len(), 2, "both managers sent");
    assert_eq!(log.lock().unwrap().len(), 2 * 4 * 3 * 3);
    assert_unique_and_mined(&rpc, dev_key(3).address(), &log).await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_manager_cut_off_from_the_database_stops_before_another_takes_over() {
    let anvil = AnvilInstance::spawn();
    let db = TestDb::new().await;
    let rpc = Rpc::new(&anvil.rpc_config()).unwrap();
    let pool = pool_of(4);
    let log: Log = Arc::default();
    let ttl = Duration::from_secs(3);

    // A reaches the database through a proxy the test can cut.
    let proxy = TcpProxy::start(db.addr().to_string()).await.unwrap();
    let a_db = Database::connect(db.url_via(proxy.addr())).await.unwrap();
    let a = leases(&a_db, &rpc, &pool, ttl, "a");
    let b = leases(db.conn(), &rpc, &pool, ttl, "b");

    let manager_a = a.acquire().await.expect("A takes the free signer");
    assert!(matches!(b.acquire().await, Err(ChainError::NoFreeSigner)));
    let lost_a = manager_a.lost();
    let sender_a = Arc::new(
        TxSender::new(
            rpc.clone(),
            NonceSource::Leased(manager_a),
            ANVIL_CHAIN_ID,
            &test_tx_config(),
        )
        .unwrap(),
    );
    for i in 0..3 {
        let sent = sender_a.send(transfer(i)).await.unwrap();
        log.lock()
            .unwrap()
            .push(("a".into(), sent.nonce, sent.hash()));
    }

    // A keeps trying to send while cut off; B waits for the lease.
    proxy.cut();
    let stop = CancellationToken::new();
    let a_loop = {
        let sender_a = Arc::clone(&sender_a);
        let log = log.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut i = 100;
            while !stop.is_cancelled() {
                match sender_a.send(transfer(i)).await {
                    Ok(sent) => log
                        .lock()
                        .unwrap()
                        .push(("a".into(), sent.nonce, sent.hash())),
                    Err(err) => errors.push(err.to_string()),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            errors
        })
    };
    let manager_b = b
        .acquire_wait(Duration::from_millis(50), &CancellationToken::new())
        .await
        .unwrap()
        .expect("B takes the signer once A's lease expired");
    assert!(lost_a.is_cancelled(), "A gave up before B could take over");
    let sender_b = TxSender::new(
        rpc.clone(),
        NonceSource::Leased(manager_b),
        ANVIL_CHAIN_ID,
        &test_tx_config(),
    )
    .unwrap();
    for i in 0..5 {
        let sent = sender_b.send(transfer(i)).await.unwrap();
        log.lock()
            .unwrap()
            .push(("b".into(), sent.nonce, sent.hash()));
    }

    // Even with its database back, A never sends again: its lease is gone.
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let errors = a_loop.await.unwrap();
    assert!(!errors.is_empty());
    assert!(errors.iter().any(|e| e.contains("lease")), "{errors:?}");
    let err = sender_a.send(transfer(999)).await.unwrap_err();
    assert!(matches!(err, ChainError::LeaseLost { .. }), "{err:?}");

    assert_eq!(
        log.lock()
            .unwrap()
            .iter()
            .filter(|(h, _, _)| h == "b")
            .count(),
        5
    );
    assert_unique_and_mined(&rpc, dev_key(4).address(), &log).await;
    db.cleanup().await;
}

#[tokio::test]
async fn leases_work_the_same_on_sqlite() {
    let anvil = AnvilInstance::spawn();
    let db = TestDb::sqlite().await;
    let rpc = Rpc::new(&anvil.rpc_config()).unwrap();
    let pool = SignerPool::new(vec![dev_key(7), dev_key(8)]).unwrap();
    let a = leases(db.conn(), &rpc, &pool, Duration::from_secs(30), "a");
    let b = leases(db.conn(), &rpc, &pool, Duration::from_secs(30), "b");
    let c = leases(db.conn(), &rpc, &pool, Duration::from_secs(30), "c");

    let ma = a.acquire().await.unwrap();
    let mb = b.acquire().await.unwrap();
    assert_ne!(
        ma.address(),
        mb.address(),
        "each replica gets its own signer"
    );
    assert!(matches!(c.acquire().await, Err(ChainError::NoFreeSigner)));
    let freed = ma.address();
    ma.release().await.unwrap();
    let mc = c.acquire().await.unwrap();
    assert_eq!(mc.address(), freed);
    let slot = mc.next_slot().await.unwrap();
    assert_eq!(slot.nonce(), 0);
    drop(slot);
    drop(mb);
    db.cleanup().await;
}
