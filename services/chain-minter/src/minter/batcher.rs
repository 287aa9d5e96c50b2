//! Coalescing of mints: requests sharing a reason wait together until
//! `MINT_BATCH_SIZE` of them are there or the oldest has waited
//! `MINT_BATCH_MAX_WAIT`, then go out as one `batchMintWithRefs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Job, Minter};

/// Where handlers drop their mints.
#[derive(Debug, Clone)]
pub struct BatchQueue {
    tx: mpsc::Sender<Job>,
}

impl BatchQueue {
    /// Hands a mint to the batcher; gives it back if the batcher is gone.
    pub async fn push(&self, job: Job) -> Result<(), Job> {
        self.tx.send(job).await.map_err(|err| err.0)
    }
}

struct Pending {
    since: Instant,
    jobs: Vec<Job>,
}

/// The batcher's queue and its loop, for the caller to spawn; the loop runs
/// until `shutdown`, then flushes what waits.
pub fn start(
    minter: Arc<Minter>,
    batch_size: usize,
    max_wait: Duration,
    shutdown: CancellationToken,
) -> (BatchQueue, impl Future<Output = ()> + Send + 'static) {
    let (tx, rx) = mpsc::channel(batch_size.max(1) * 4);
    let batcher = run(minter, rx, batch_size.max(1), max_wait, shutdown);
    (BatchQueue { tx }, batcher)
}

async fn run(
    minter: Arc<Minter>,
    mut rx: mpsc::Receiver<Job>,
    batch_size: usize,
    max_wait: Duration,
    shutdown: CancellationToken,
) {
    let mut waiting: HashMap<String, Pending> = HashMap::new();
    loop {
        let deadline = waiting.values().map(|p| p.since + max_wait).min();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            job = rx.recv() => {
                let Some(job) = job else { break };
                let reason = job.request.reason().to_owned();
                let pending = waiting.entry(reason.clone()).or_insert_with(|| Pending {
                    since: Instant::now(),
                    jobs: Vec::with_capacity(batch_size),
                });
                pending.jobs.push(job);
                if pending.jobs.len() >= batch_size
                    && let Some(full) = waiting.remove(&reason)
                {
                    tokio::spawn(minter.clone().mint_batch(full.jobs));
                }
            }
            () = sleep_until(deadline) => {
                let now = Instant::now();
                let due: Vec<String> = waiting
                    .iter()
                    .filter(|(_, p)| p.since + max_wait <= now)
                    .map(|(reason, _)| reason.clone())
                    .collect();
                for reason in due {
                    if let Some(p) = waiting.remove(&reason) {
                        tokio::spawn(minter.clone().mint_batch(p.jobs));
                    }
                }
            }
        }
    }
    // Shutdown: whatever waits is answered by the minter (which sees the
    // shutdown and asks for a retry), so nothing is left unacked forever.
    for (_, p) in waiting.drain() {
        tokio::spawn(minter.clone().mint_batch(p.jobs));
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
