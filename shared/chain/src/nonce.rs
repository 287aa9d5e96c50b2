//! The nonce manager: one owner per signer key at a time.
//!
//! Each chain-minter replica holds an exclusive lease on one signer of the
//! pool, kept in a [`LeaseStore`] (in production the `signer_leases` table,
//! see `haven_entity::chain_store`): taken only when absent or expired, in
//! one atomic step, and renewed in a background task. On taking a lease the replica
//! reconciles the next nonce from the chain's pending transaction count.
//!
//! Why two replicas never send the same nonce:
//! - the holder stops sending *before* its lease expires: it sends only
//!   while `now < last successful renewal start + ttl - margin` (a local,
//!   monotonic deadline), and `margin = ttl / 3` covers clock skew between
//!   replicas and the time from the final check to the broadcast;
//! - every nonce is reserved by the store's fence (in the database a
//!   `UPDATE signer_nonces ... WHERE EXISTS (lease held by me and not
//!   expired)`), so once another replica has taken the lease over, the old
//!   holder cannot reserve again;
//! - a new holder only takes the row after its expiry, i.e. after the old
//!   holder has stopped, and starts from the chain's pending count, which
//!   includes everything the old holder broadcast.
//!
//! Sends of one manager are serialized by a mutex around the nonce: a nonce
//! is only advanced once the node accepted the transaction, so a refused
//! send leaves no gap.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::network::TxSigner;
use alloy::primitives::Address;
use haven_common::telemetry::ErrorChain;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::error::ChainError;
use crate::rpc::Rpc;
use crate::signer::{ChainSigner, SignerPool};
use crate::store::LeaseStore;

/// A unique lease holder id for this process: `{prefix}-{pid}-{random}`.
/// Unique per process so two replicas (or a restarted one) never mistake
/// each other's lease for their own.
pub fn unique_holder(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Lease timing derived from the TTL.
#[derive(Debug, Clone, Copy)]
struct Timing {
    ttl: Duration,
    /// Stop sending this long before the lease would expire.
    margin: Duration,
    /// Renew this often.
    renew_every: Duration,
}

impl Timing {
    fn new(ttl: Duration) -> Result<Self, ChainError> {
        if ttl < Duration::from_secs(1) {
            return Err(ChainError::Config(
                "SIGNER_LEASE_TTL must be at least 1s".into(),
            ));
        }
        Ok(Self {
            ttl,
            margin: ttl / 3,
            renew_every: ttl / 6,
        })
    }
}

/// An exclusive lease on one signer of the pool, with its nonce.
///
/// Dropping it stops the renewal (the lease then expires after its TTL);
/// [`NonceManager::release`] hands it back at once.
#[derive(Debug)]
pub struct NonceManager {
    inner: Arc<Inner>,
    _renewal: DropGuard,
}

struct Inner {
    store: Arc<dyn LeaseStore>,
    rpc: Rpc,
    chain_id: u64,
    signer: ChainSigner,
    address: Address,
    /// The address as stored in the lease and nonce tables (checksummed).
    key: String,
    holder: String,
    timing: Timing,
    /// Local, monotonic end of the sending window.
    send_until: Mutex<Instant>,
    /// Cancelled once the lease is known lost; never un-cancelled.
    lost: CancellationToken,
    /// Next nonce to use; `None` after an unknown send outcome, so the next
    /// reservation re-reads the chain's pending count.
    next: tokio::sync::Mutex<Option<u64>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceManager")
            .field("signer", &self.address)
            .field("holder", &self.holder)
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

/// The signer pool of one replica, ready to lease from.
#[derive(Debug, Clone)]
pub struct SignerLeases {
    store: Arc<dyn LeaseStore>,
    rpc: Rpc,
    pool: SignerPool,
    chain_id: u64,
    timing: Timing,
    holder: String,
}

impl SignerLeases {
    /// Leases of `pool` on `chain_id`, held as `holder` (see [`unique_holder`]) for `ttl`.
    pub fn new(
        store: Arc<dyn LeaseStore>,
        rpc: Rpc,
        pool: SignerPool,
        chain_id: u64,
        ttl: Duration,
        holder: impl Into<String>,
    ) -> Result<Self, ChainError> {
        Ok(Self {
            store,
            rpc,
            pool,
            chain_id,
            timing: Timing::new(ttl)?,
            holder: holder.into(),
        })
    }

    /// This process's lease holder id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Tries to lease one free signer of the pool, starting at a random
    /// position so replicas spread over the pool. Returns
    /// [`ChainError::NoFreeSigner`] when every signer is leased.
    #[tracing::instrument(skip_all, fields(holder = %self.holder))]
    pub async fn acquire(&self) -> Result<NonceManager, ChainError> {
        let signers = self.pool.signers();
        let offset = rand_offset(signers.len());
        for i in 0..signers.len() {
            let signer = &signers[(offset + i) % signers.len()];
            let key = signer.address().to_checksum(None);
            let started = Instant::now();
            if self.store.take(&key, &self.holder, self.timing.ttl).await? {
                let manager = NonceManager::start(
                    Arc::clone(&self.store),
                    self.rpc.clone(),
                    self.chain_id,
                    Arc::clone(signer),
                    self.holder.clone(),
                    self.timing,
                    started,
                )
                .await;
                return match manager {
                    Ok(manager) => Ok(manager),
                    Err(err) => {
                        // Could not reconcile: give the signer back at once.
                        let _ = self.store.release(&key, &self.holder).await;
                        Err(err)
                    }
                };
            }
        }
        Err(ChainError::NoFreeSigner)
    }

    /// [`Self::acquire`], retried every `retry_every` while every signer is
    /// leased or the database or node is unreachable, until `shutdown` is
    /// cancelled (then `Ok(None)`).
    pub async fn acquire_wait(
        &self,
        retry_every: Duration,
        shutdown: &CancellationToken,
    ) -> Result<Option<NonceManager>, ChainError> {
        loop {
            match self.acquire().await {
                Ok(manager) => return Ok(Some(manager)),
                Err(err) if err.is_retryable() => {
                    tracing::debug!(error = %err, "no signer lease yet; waiting");
                }
                Err(err) => return Err(err),
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                () = tokio::time::sleep(retry_every) => {}
            }
        }
    }
}

impl NonceManager {
    async fn start(
        store: Arc<dyn LeaseStore>,
        rpc: Rpc,
        chain_id: u64,
        signer: ChainSigner,
        holder: String,
        timing: Timing,
        started: Instant,
    ) -> Result<Self, ChainError> {
        let address = signer.address();
        let key = address.to_checksum(None);
        // Everything the previous holder broadcast is in the pending count.
        let pending = rpc.pending_nonce(address).await?;
        let recorded = store.read_nonce(chain_id, &key).await?;
        if let Some(recorded) = recorded
            && recorded > pending
        {
            // The previous holder reserved nonces it never broadcast (it
            // crashed between the two). The chain is the truth: reusing
            // them fills the gap instead of stalling every later nonce.
            tracing::warn!(
                signer = %address,
                recorded,
                pending,
                "previous holder reserved nonces the chain never saw; resuming from the chain"
            );
        }
        store.record_nonce(chain_id, &key, pending).await?;

        let inner = Arc::new(Inner {
            store,
            rpc,
            chain_id,
            signer,
            address,
            key,
            holder,
            timing,
            send_until: Mutex::new(started + timing.ttl - timing.margin),
            lost: CancellationToken::new(),
            next: tokio::sync::Mutex::new(Some(pending)),
        });
        tracing::info!(signer = %address, holder = %inner.holder, next_nonce = pending, "signer lease taken");
        let stop = CancellationToken::new();
        tokio::spawn(renew_loop(Arc::clone(&inner), stop.clone()));
        Ok(Self {
            inner,
            _renewal: stop.drop_guard(),
        })
    }

    /// The leased signer's address.
    pub fn address(&self) -> Address {
        self.inner.address
    }

    /// The leased signer (to sign with).
    pub fn signer(&self) -> &ChainSigner {
        &self.inner.signer
    }

    /// This process's lease holder id.
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    /// Whether the lease is still held and inside its sending window.
    pub fn is_held(&self) -> bool {
        self.inner.is_held()
    }

    /// A token cancelled when the lease is lost (the worker should stop and
    /// try to acquire a lease again).
    pub fn lost(&self) -> CancellationToken {
        self.inner.lost.clone()
    }

    /// The nonce the next send will use, when this manager knows it: `None`
    /// after an unknown send outcome (the next send re-reads the chain) and
    /// while a send holds the nonce. For monitoring: the difference to the
    /// node's pending count is the signer's nonce gap.
    pub fn next_nonce(&self) -> Option<u64> {
        self.inner.next.try_lock().ok().and_then(|next| *next)
    }

    /// Locks the nonce for one send: checks the lease, reserves the next
    /// nonce in the database under the lease (the fence), and returns the
    /// slot. Other sends of this manager wait until the slot is finished.
    pub async fn next_slot(&self) -> Result<NonceSlot<'_>, ChainError> {
        let inner = &*self.inner;
        let mut next = inner.next.lock().await;
        inner.ensure_held()?;
        let nonce = match *next {
            Some(nonce) => nonce,
            None => inner.rpc.pending_nonce(inner.address).await?,
        };
        *next = Some(nonce);
        inner.fence(Some(nonce.saturating_add(1))).await?;
        Ok(NonceSlot {
            next,
            nonce,
            address: inner.address,
        })
    }

    /// Forgets the next nonce (after the send in progress, if any): the next
    /// send reads the chain's pending count. After a reorganisation removed
    /// transactions of this signer, the chain expects nonces this manager
    /// has already used, and every later send would wait behind the hole.
    pub async fn forget(&self) {
        *self.inner.next.lock().await = None;
    }

    /// Checks the lease before re-sending a nonce this manager already used
    /// (a fee bump): the same fence as a reservation, without a new nonce.
    pub async fn check_fence(&self) -> Result<(), ChainError> {
        self.inner.ensure_held()?;
        self.inner.fence(None).await
    }

    /// Stops renewing and deletes the lease row so another replica can take
    /// the signer at once.
    pub async fn release(self) -> Result<(), ChainError> {
        self.inner.lost.cancel();
        self.inner
            .store
            .release(&self.inner.key, &self.inner.holder)
            .await?;
        tracing::info!(signer = %self.inner.address, "signer lease released");
        Ok(())
    }
}

/// One locked nonce. Finish it with [`NonceSlot::sent`] once the node
/// accepted the transaction; dropping it unsent leaves the nonce for the
/// next send, [`NonceSlot::unknown`] makes the next send re-read the chain.
#[derive(Debug)]
pub struct NonceSlot<'a> {
    next: tokio::sync::MutexGuard<'a, Option<u64>>,
    nonce: u64,
    address: Address,
}

impl<'a> NonceSlot<'a> {
    /// A slot of a signer with no lease (see `sender::DirectNonces`).
    pub(crate) fn direct(
        next: tokio::sync::MutexGuard<'a, Option<u64>>,
        nonce: u64,
        address: Address,
    ) -> Self {
        Self {
            next,
            nonce,
            address,
        }
    }

    /// The nonce to sign with.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The signer's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The node accepted the transaction: the next send uses the next nonce.
    pub fn sent(mut self) {
        *self.next = Some(self.nonce.saturating_add(1));
    }

    /// Whether the node got the transaction is unknown: the next send
    /// re-reads the pending count, which tells.
    pub fn unknown(mut self) {
        *self.next = None;
    }
}

impl Inner {
    fn is_held(&self) -> bool {
        !self.lost.is_cancelled() && Instant::now() < *lock(&self.send_until)
    }

    fn ensure_held(&self) -> Result<(), ChainError> {
        if self.is_held() {
            Ok(())
        } else {
            self.lost.cancel();
            Err(ChainError::LeaseLost {
                signer: self.address,
            })
        }
    }

    /// The fenced write: records `next_nonce` (or only touches the row)
    /// if and only if this holder's lease is in the store and unexpired.
    async fn fence(&self, next_nonce: Option<u64>) -> Result<(), ChainError> {
        let fenced = tokio::time::timeout(
            self.timing.margin,
            self.store
                .fence(self.chain_id, &self.key, &self.holder, next_nonce),
        )
        .await;
        match fenced {
            Ok(Ok(true)) => {
                // The DB round trip may have eaten into the window.
                self.ensure_held()
            }
            Ok(Ok(false)) => {
                tracing::error!(signer = %self.address, holder = %self.holder, "signer lease taken over by another replica");
                self.lost.cancel();
                Err(ChainError::LeaseLost {
                    signer: self.address,
                })
            }
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(ChainError::LeaseLost {
                signer: self.address,
            }),
        }
    }
}

async fn renew_loop(inner: Arc<Inner>, stop: CancellationToken) {
    let timing = inner.timing;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = inner.lost.cancelled() => return,
            () = tokio::time::sleep(timing.renew_every) => {}
        }
        let started = Instant::now();
        let renewed = tokio::time::timeout(
            timing.renew_every,
            inner.store.renew(&inner.key, &inner.holder, timing.ttl),
        )
        .await;
        match renewed {
            Ok(Ok(true)) => {
                *lock(&inner.send_until) = started + timing.ttl - timing.margin;
            }
            Ok(Ok(false)) => {
                tracing::error!(signer = %inner.address, holder = %inner.holder, "signer lease lost: expired or taken over");
                inner.lost.cancel();
                return;
            }
            Ok(Err(err)) => {
                // The chain, not the bare wrapper: "storage unavailable" alone says little.
                tracing::warn!(signer = %inner.address, error = %ErrorChain(&err), "could not renew the signer lease");
            }
            Err(_) => {
                tracing::warn!(signer = %inner.address, "renewing the signer lease timed out");
            }
        }
        if !inner.is_held() {
            tracing::error!(signer = %inner.address, "signer lease window passed without renewal; stopping");
            inner.lost.cancel();
            return;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain timestamps: a panic elsewhere cannot
    // leave them half-written.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn rand_offset(len: usize) -> usize {
    if len <= 1 {
        return 0;
    }
    // A UUIDv4 is 122 random bits; no need for a second RNG dependency.
    (uuid::Uuid::new_v4().as_u128() % len as u128) as usize
}

/// Lease timing on paused time: an in-memory store, a mocked node, and
/// `tokio::time::sleep` moving the clock (the renewal task runs as it would).
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use alloy::signers::local::PrivateKeySigner;
    use alloy::transports::mock::Asserter;

    use super::*;
    use crate::store::{MemoryLeaseStore, StorageError};

    const CHAIN: u64 = 31337;
    const TTL: Duration = Duration::from_secs(30);

    /// Anvil's development account 5 (not `testing::dev_key`: that module
    /// reaches back here through `deploy` and `sender`).
    fn signer() -> PrivateKeySigner {
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba"
            .parse()
            .unwrap()
    }

    /// A memory store that can be cut off, as a database behind a dead link.
    #[derive(Debug, Default)]
    struct Cuttable {
        inner: MemoryLeaseStore,
        down: AtomicBool,
    }

    impl Cuttable {
        fn check(&self) -> Result<(), StorageError> {
            if self.down.load(Ordering::SeqCst) {
                Err(StorageError::transient("cut off"))
            } else {
                Ok(())
            }
        }
    }

    #[async_trait::async_trait]
    impl LeaseStore for Cuttable {
        async fn take(&self, s: &str, h: &str, ttl: Duration) -> Result<bool, StorageError> {
            self.check()?;
            self.inner.take(s, h, ttl).await
        }
        async fn renew(&self, s: &str, h: &str, ttl: Duration) -> Result<bool, StorageError> {
            self.check()?;
            self.inner.renew(s, h, ttl).await
        }
        async fn release(&self, s: &str, h: &str) -> Result<(), StorageError> {
            self.check()?;
            self.inner.release(s, h).await
        }
        async fn fence(
            &self,
            c: u64,
            s: &str,
            h: &str,
            n: Option<u64>,
        ) -> Result<bool, StorageError> {
            self.check()?;
            self.inner.fence(c, s, h, n).await
        }
        async fn read_nonce(&self, c: u64, s: &str) -> Result<Option<u64>, StorageError> {
            self.check()?;
            self.inner.read_nonce(c, s).await
        }
        async fn record_nonce(&self, c: u64, s: &str, n: u64) -> Result<(), StorageError> {
            self.check()?;
            self.inner.record_nonce(c, s, n).await
        }
    }

    fn leases(store: &Arc<Cuttable>, node: &Asserter, name: &str) -> SignerLeases {
        SignerLeases::new(
            Arc::clone(store) as Arc<dyn LeaseStore>,
            Rpc::mocked(node.clone()),
            SignerPool::new(vec![signer()]).unwrap(),
            CHAIN,
            TTL,
            name,
        )
        .unwrap()
    }

    /// The node's answer to `eth_getTransactionCount(.., "pending")`.
    fn pending(node: &Asserter, count: u64) {
        node.push_success(&format!("{count:#x}"));
    }

    fn key() -> String {
        signer().address().to_checksum(None)
    }

    #[tokio::test(start_paused = true)]
    async fn renewal_keeps_the_lease_far_past_its_ttl() {
        let store = Arc::new(Cuttable::default());
        let node = Asserter::new();
        let (a, b) = (leases(&store, &node, "a"), leases(&store, &node, "b"));
        pending(&node, 5);
        let manager = a.acquire().await.unwrap();
        assert!(matches!(b.acquire().await, Err(ChainError::NoFreeSigner)));

        tokio::time::sleep(TTL * 4).await;
        assert!(manager.is_held());
        assert!(matches!(b.acquire().await, Err(ChainError::NoFreeSigner)));
        let slot = manager.next_slot().await.unwrap();
        assert_eq!(slot.nonce(), 5);
        slot.sent();
        assert_eq!(
            store.inner.read_nonce(CHAIN, &key()).await.unwrap(),
            Some(6)
        );

        // Released: the other replica takes it at once, from the chain's count.
        manager.release().await.unwrap();
        pending(&node, 6);
        let taken = b.acquire().await.unwrap();
        assert_eq!(taken.next_nonce(), Some(6));
        assert_eq!(store.inner.holder_of(&key()).as_deref(), Some("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_holder_cut_off_from_storage_stops_before_its_lease_expires() {
        let store = Arc::new(Cuttable::default());
        let node = Asserter::new();
        let (a, b) = (leases(&store, &node, "a"), leases(&store, &node, "b"));
        pending(&node, 0);
        let start = Instant::now();
        let manager = a.acquire().await.unwrap();
        let lost = manager.lost();

        store.down.store(true, Ordering::SeqCst);
        // Inside the window (ttl - margin = 20 s) the holder may still send;
        // its fenced reservation fails while storage is away, though.
        tokio::time::sleep(Duration::from_secs(19)).await;
        assert!(manager.is_held());
        assert!(matches!(
            manager.next_slot().await,
            Err(ChainError::Storage(err)) if err.is_transient()
        ));
        // The window closes a whole margin before the stored lease expires.
        lost.cancelled().await;
        let stopped = start.elapsed();
        assert!(stopped >= TTL - TTL / 3 && stopped < TTL, "{stopped:?}");
        assert!(!manager.is_held());

        // Storage back: the lease is still a's until it expires, then b's.
        store.down.store(false, Ordering::SeqCst);
        assert!(matches!(b.acquire().await, Err(ChainError::NoFreeSigner)));
        pending(&node, 0);
        let taken = b
            .acquire_wait(Duration::from_secs(1), &CancellationToken::new())
            .await
            .unwrap()
            .unwrap();
        assert!(start.elapsed() >= TTL);
        assert_eq!(taken.holder(), "b");
        // The old holder can reserve nothing any more.
        assert!(matches!(
            manager.next_slot().await,
            Err(ChainError::LeaseLost { .. })
        ));
        assert!(matches!(
            manager.check_fence().await,
            Err(ChainError::LeaseLost { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_taken_over_fails_the_old_holders_fence() {
        let store = Arc::new(Cuttable::default());
        let node = Asserter::new();
        let a = leases(&store, &node, "a");
        pending(&node, 0);
        let manager = a.acquire().await.unwrap();
        // Another replica overwrites the lease behind a's back (a clock
        // jump, an operator): the next fenced reservation notices.
        store.inner.release(&key(), "a").await.unwrap();
        assert!(store.inner.take(&key(), "intruder", TTL).await.unwrap());
        assert!(matches!(
            manager.next_slot().await,
            Err(ChainError::LeaseLost { .. })
        ));
        assert!(manager.lost().is_cancelled());
        assert!(!manager.is_held());
    }
}
