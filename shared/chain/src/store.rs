//! Where signer leases and nonces are kept, and the error every store of
//! this crate reports (deployment records: [`crate::deploy::DeploymentStore`]).
//!
//! The chain crate only states what it needs from storage; the database
//! versions live in `haven-entity` (so this crate needs no ORM), and
//! [`MemoryLeaseStore`] serves tests that drive lease timing with
//! `tokio::time::pause()`. The traits are object-safe (`async_trait`, as
//! openzeppelin-relayer's repositories) so the nonce manager holds an
//! `Arc<dyn LeaseStore>` instead of spreading a type parameter through
//! `TxSender` and every service.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A storage failure, and whether trying again later may succeed.
#[derive(Debug, thiserror::Error)]
#[error("{}", if self.transient { "storage unavailable" } else { "storage refused the operation" })]
pub struct StorageError {
    transient: bool,
    #[source]
    source: BoxError,
}

impl StorageError {
    /// The store could not be reached or answered with an error that may
    /// clear up (a dropped connection, a timeout, a busy database).
    pub fn transient(source: impl Into<BoxError>) -> Self {
        Self {
            transient: true,
            source: source.into(),
        }
    }

    /// Retrying cannot help: a value the store cannot hold, a malformed
    /// record.
    pub fn permanent(source: impl Into<BoxError>) -> Self {
        Self {
            transient: false,
            source: source.into(),
        }
    }

    /// Whether the same operation may succeed later.
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

/// Signer leases (one holder per signer at a time) and each signer's next
/// nonce. Every method is one atomic step of the store: the safety argument
/// in [`crate::nonce`] rests on `take` and `fence` never interleaving with
/// another replica's.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync + std::fmt::Debug {
    /// Gives `signer` to `holder` for `ttl` when nobody holds it or the
    /// previous lease has expired. `true` when taken.
    async fn take(&self, signer: &str, holder: &str, ttl: Duration) -> Result<bool, StorageError>;

    /// Extends `holder`'s unexpired lease on `signer` to `ttl` from now.
    /// `false` when the lease expired or another holder has it.
    async fn renew(&self, signer: &str, holder: &str, ttl: Duration) -> Result<bool, StorageError>;

    /// Drops `holder`'s lease on `signer` (nothing when it is not theirs).
    async fn release(&self, signer: &str, holder: &str) -> Result<(), StorageError>;

    /// The fence: records `next_nonce` (or, with `None`, only touches the
    /// nonce row) if and only if `holder` still holds an unexpired lease
    /// on `signer`, in one step. `false` when the lease is gone.
    async fn fence(
        &self,
        chain_id: u64,
        signer: &str,
        holder: &str,
        next_nonce: Option<u64>,
    ) -> Result<bool, StorageError>;

    /// The last recorded next nonce of `signer` on `chain_id`.
    async fn read_nonce(&self, chain_id: u64, signer: &str) -> Result<Option<u64>, StorageError>;

    /// Records `next` as the next nonce of `signer` on `chain_id`
    /// (unconditionally: called right after taking the lease).
    async fn record_nonce(
        &self,
        chain_id: u64,
        signer: &str,
        next: u64,
    ) -> Result<(), StorageError>;
}

/// Leases and nonces in process memory, on tokio's clock: with
/// `tokio::time::pause()` a test moves expiry and renewal forward without
/// waiting. Shared by cloning an `Arc` of it between "replicas".
#[derive(Debug, Default)]
pub struct MemoryLeaseStore {
    state: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    /// signer -> (holder, expiry)
    leases: HashMap<String, (String, Instant)>,
    nonces: HashMap<(u64, String), u64>,
}

impl MemoryLeaseStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current holder of `signer`'s unexpired lease.
    pub fn holder_of(&self, signer: &str) -> Option<String> {
        let state = self.lock();
        state
            .leases
            .get(signer)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(holder, _)| holder.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        // Every step below writes whole values: a panic elsewhere cannot
        // leave the maps half-updated.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Memory {
    fn held_by(&self, signer: &str, holder: &str, now: Instant) -> bool {
        self.leases
            .get(signer)
            .is_some_and(|(h, expires)| h == holder && *expires > now)
    }
}

#[async_trait::async_trait]
impl LeaseStore for MemoryLeaseStore {
    async fn take(&self, signer: &str, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let now = Instant::now();
        let mut state = self.lock();
        if state
            .leases
            .get(signer)
            .is_some_and(|(_, expires)| *expires > now)
        {
            return Ok(false);
        }
        state
            .leases
            .insert(signer.to_owned(), (holder.to_owned(), now + ttl));
        Ok(true)
    }

    async fn renew(&self, signer: &str, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let now = Instant::now();
        let mut state = self.lock();
        if !state.held_by(signer, holder, now) {
            return Ok(false);
        }
        state
            .leases
            .insert(signer.to_owned(), (holder.to_owned(), now + ttl));
        Ok(true)
    }

    async fn release(&self, signer: &str, holder: &str) -> Result<(), StorageError> {
        let mut state = self.lock();
        if state.leases.get(signer).is_some_and(|(h, _)| h == holder) {
            state.leases.remove(signer);
        }
        Ok(())
    }

    async fn fence(
        &self,
        chain_id: u64,
        signer: &str,
        holder: &str,
        next_nonce: Option<u64>,
    ) -> Result<bool, StorageError> {
        let mut state = self.lock();
        let key = (chain_id, signer.to_owned());
        // Like the database's UPDATE: no nonce row, nothing fenced.
        if !state.held_by(signer, holder, Instant::now()) || !state.nonces.contains_key(&key) {
            return Ok(false);
        }
        if let Some(next) = next_nonce {
            state.nonces.insert(key, next);
        }
        Ok(true)
    }

    async fn read_nonce(&self, chain_id: u64, signer: &str) -> Result<Option<u64>, StorageError> {
        Ok(self
            .lock()
            .nonces
            .get(&(chain_id, signer.to_owned()))
            .copied())
    }

    async fn record_nonce(
        &self,
        chain_id: u64,
        signer: &str,
        next: u64,
    ) -> Result<(), StorageError> {
        self.lock()
            .nonces
            .insert((chain_id, signer.to_owned()), next);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_exclusive_until_it_expires() {
        let store = MemoryLeaseStore::new();
        assert!(store.take("s", "a", TTL).await.unwrap());
        assert!(!store.take("s", "b", TTL).await.unwrap());
        tokio::time::advance(TTL - Duration::from_millis(1)).await;
        assert!(!store.take("s", "b", TTL).await.unwrap());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(store.take("s", "b", TTL).await.unwrap());
        assert_eq!(store.holder_of("s").as_deref(), Some("b"));
        // The old holder can neither renew nor release the new lease.
        assert!(!store.renew("s", "a", TTL).await.unwrap());
        store.release("s", "a").await.unwrap();
        assert_eq!(store.holder_of("s").as_deref(), Some("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn renewing_moves_the_expiry_from_now() {
        let store = MemoryLeaseStore::new();
        assert!(store.take("s", "a", TTL).await.unwrap());
        tokio::time::advance(TTL / 2).await;
        assert!(store.renew("s", "a", TTL).await.unwrap());
        tokio::time::advance(TTL - Duration::from_secs(1)).await;
        assert!(!store.take("s", "b", TTL).await.unwrap(), "still a's");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!store.renew("s", "a", TTL).await.unwrap(), "expired");
        assert!(store.take("s", "b", TTL).await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_only_lets_the_live_holder_write() {
        let store = MemoryLeaseStore::new();
        assert!(store.take("s", "a", TTL).await.unwrap());
        store.record_nonce(1, "s", 5).await.unwrap();
        assert!(store.fence(1, "s", "a", Some(6)).await.unwrap());
        assert!(!store.fence(1, "s", "b", Some(7)).await.unwrap());
        assert_eq!(store.read_nonce(1, "s").await.unwrap(), Some(6));
        tokio::time::advance(TTL).await;
        assert!(!store.fence(1, "s", "a", Some(7)).await.unwrap());
        assert!(!store.fence(1, "s", "a", None).await.unwrap());
        assert_eq!(store.read_nonce(1, "s").await.unwrap(), Some(6));
        // Another chain's row is another row.
        assert_eq!(store.read_nonce(2, "s").await.unwrap(), None);
    }
}
