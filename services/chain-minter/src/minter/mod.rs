//! The minter: coalesces mint requests into `batchMintWithRefs`, sends burns
//! one by one with `burnFromWithRef`, confirms, records, and only then lets
//! the consumer ack.
//!
//! - [`batcher`]: groups mints by reason, up to `MINT_BATCH_SIZE` or
//!   `MINT_BATCH_MAX_WAIT`.
//! - [`lease`]: holds a signer lease of the pool and the [`TxSender`] over it.
//! - [`record`]: the database side (claim, sent, confirmed, failed).
//! - [`reconcile`]: finishes, at start, what a previous run sent.
//!
//! Every request carries the 32-byte reference of its token transaction,
//! fixed when the row was written. A batch resent after a crash or an
//! unknown send outcome skips the references already used on chain, and a
//! burn's reference is checked before it is sent, so nothing is minted or
//! burned twice whatever fails in between.

pub mod batcher;
pub mod lease;
pub mod reconcile;
pub mod record;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use haven_chain::contract::{HAVEN, encode_reason};
use haven_chain::error::{ChainError, RevertReason};
use haven_chain::sender::{ConfirmedTx, SentTx, TxRequest, TxSender};
use haven_common::amqp::Outcome;
use haven_common::retry::RetryPolicy;
use haven_common::telemetry::{self, ErrorChain, TraceHeaders};
use haven_entity::chain_deployments;
use haven_entity::token_transactions::{self, TxStatus};
use haven_messages::TxType;
use haven_outbox::OutboxNotifier;
use sea_orm::DatabaseConnection;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::metrics::Metrics;
use record::Landed;

/// One chain request, as the queue carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Mint to a custodial wallet.
    Mint {
        /// `token_transactions.id`.
        tx_id: Uuid,
        /// The partners' id of the user.
        user_id: String,
        /// The wallet.
        to: Address,
        /// Wei.
        amount: u128,
        /// Why (the on-chain reason code).
        reason: String,
    },
    /// Burn from a custodial wallet.
    Burn {
        /// `token_transactions.id`.
        tx_id: Uuid,
        /// The partners' id of the user.
        user_id: String,
        /// The wallet.
        from: Address,
        /// Wei.
        amount: u128,
        /// Why.
        reason: String,
        /// The redemption it belongs to.
        redemption_id: Option<Uuid>,
    },
}

impl Request {
    /// `token_transactions.id`.
    pub fn tx_id(&self) -> Uuid {
        match self {
            Self::Mint { tx_id, .. } | Self::Burn { tx_id, .. } => *tx_id,
        }
    }

    /// The user's partner id.
    pub fn user_id(&self) -> &str {
        match self {
            Self::Mint { user_id, .. } | Self::Burn { user_id, .. } => user_id,
        }
    }

    /// Wei.
    pub fn amount_wei(&self) -> u128 {
        match self {
            Self::Mint { amount, .. } | Self::Burn { amount, .. } => *amount,
        }
    }

    /// The reason code.
    pub fn reason(&self) -> &str {
        match self {
            Self::Mint { reason, .. } | Self::Burn { reason, .. } => reason,
        }
    }

    /// Mint or burn.
    pub fn tx_type(&self) -> TxType {
        match self {
            Self::Mint { .. } => TxType::Mint,
            Self::Burn { .. } => TxType::Burn,
        }
    }

    /// The redemption of a burn.
    pub fn redemption_id(&self) -> Option<Uuid> {
        match self {
            Self::Burn { redemption_id, .. } => *redemption_id,
            Self::Mint { .. } => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Mint { .. } => "mint",
            Self::Burn { .. } => "burn",
        }
    }
}

/// A request and where its outcome goes (the consumer acks on it).
#[derive(Debug)]
pub struct Job {
    /// What to do.
    pub request: Request,
    /// The handler waiting for the outcome.
    pub reply: oneshot::Sender<Outcome>,
    /// When the token transaction was recorded (for the end-to-end latency).
    pub recorded_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the request it carries out was accepted from outside (the
    /// partner's webhook, the operator's command), if anyone is waiting.
    pub accepted_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The on-chain reference stored with the token transaction; read from
    /// the row when the job is claimed, before anything is sent.
    pub reference: B256,
    /// The span of the handler waiting for it (a child of the message's
    /// consumer span): the chain transaction's span continues its trace,
    /// and so does the event announcing the outcome.
    pub span: tracing::Span,
}

impl Job {
    /// A job for `request` whose outcome goes to `reply`, in the trace of
    /// the current span (the handler's); its row's recording time and
    /// reference are filled in when it is claimed.
    pub fn new(request: Request, reply: oneshot::Sender<Outcome>) -> Self {
        Self {
            request,
            reply,
            recorded_at: None,
            accepted_at: None,
            reference: B256::ZERO,
            span: tracing::Span::current(),
        }
    }

    fn answer(self, outcome: Outcome) {
        // The handler may be gone (shutdown); the message is then redelivered.
        let _ = self.reply.send(outcome);
    }
}

/// The token transactions whose request this process is handling now (a
/// count per id: a redelivered copy may be handled beside the first); the
/// stuck-transaction sweep leaves them alone.
#[derive(Debug, Clone, Default)]
pub struct Handling(Arc<std::sync::Mutex<std::collections::HashMap<Uuid, u32>>>);

impl Handling {
    /// Marks `id` handled until the guard is dropped.
    pub fn enter(&self, id: Uuid) -> HandlingGuard {
        *self.map().entry(id).or_default() += 1;
        HandlingGuard {
            owner: self.clone(),
            id,
        }
    }

    /// Whether a request of `id` is being handled.
    pub fn contains(&self, id: Uuid) -> bool {
        self.map().contains_key(&id)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Uuid, u32>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Held while one request is handled.
#[derive(Debug)]
pub struct HandlingGuard {
    owner: Handling,
    id: Uuid,
}

impl Drop for HandlingGuard {
    fn drop(&mut self) {
        let mut map = self.owner.map();
        if let Some(n) = map.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.id);
            }
        }
    }
}

/// Shared by the batcher and every batch in flight.
#[derive(Debug)]
pub struct Minter {
    db: DatabaseConnection,
    contract: Address,
    sender: watch::Receiver<Option<Arc<TxSender>>>,
    in_flight: Arc<Semaphore>,
    metrics: Metrics,
    outbox: OutboxNotifier,
    shutdown: CancellationToken,
    /// The contract's deployment block, once read.
    first_block: std::sync::OnceLock<u64>,
    /// The requests being handled now.
    handling: Handling,
    /// `CHAIN_FINALITY_DEPTH` is 0: a confirmation is final at once.
    final_when_confirmed: bool,
}

/// Pause between attempts while the chain or the database is away.
const BACKOFF: RetryPolicy = RetryPolicy {
    name: "chain-minter",
    base: Duration::from_millis(250),
    cap: Duration::from_secs(10),
    factor: 2.0,
    max_attempts: u32::MAX,
};

/// Contract errors that say nothing about the request itself: the whole
/// contract refuses (paused) or this signer lacks a role. Waiting helps;
/// dead-lettering would lose good requests.
const GLOBAL_REVERTS: &[&str] = &["EnforcedPause", "AccessControlUnauthorizedAccount"];

impl Minter {
    /// A minter sending to `contract` with whatever signer `sender` holds.
    /// What it confirms is final at once; see [`Minter::with_finality_depth`].
    pub fn new(
        db: DatabaseConnection,
        contract: Address,
        sender: watch::Receiver<Option<Arc<TxSender>>>,
        max_in_flight: usize,
        metrics: Metrics,
        outbox: OutboxNotifier,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            db,
            contract,
            sender,
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            metrics,
            outbox,
            shutdown,
            first_block: std::sync::OnceLock::new(),
            handling: Handling::default(),
            final_when_confirmed: true,
        }
    }

    /// With a finality depth above 0, what this minter confirms waits for
    /// the finality watcher to be final.
    pub fn with_finality_depth(mut self, depth: u64) -> Self {
        self.final_when_confirmed = depth == 0;
        self
    }

    /// Makes the current signer read its next nonce from the chain before
    /// its next send (a reorganisation took back nonces it had used).
    pub async fn forget_nonce(&self) {
        let sender = self.sender.borrow().clone();
        if let Some(sender) = sender {
            sender.nonces().forget().await;
        }
    }

    /// The requests this process is handling now.
    pub fn handling(&self) -> &Handling {
        &self.handling
    }

    /// Processes a batch of mints sharing one reason (from the batcher), in
    /// a span of the first job's trace linked to the others' (one chain
    /// transaction answers them all).
    pub async fn mint_batch(self: Arc<Self>, jobs: Vec<Job>) {
        let span = batch_span("mint_batch", &jobs);
        self.mint_batch_traced(jobs).instrument(span).await
    }

    async fn mint_batch_traced(self: Arc<Self>, jobs: Vec<Job>) {
        let Ok(_permit) = self.in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(jobs) = self.claim(jobs).await else {
            return;
        };
        if !jobs.is_empty() {
            self.send_mints(jobs).await;
        }
    }

    /// Processes one burn, in its request's trace.
    pub async fn burn(self: Arc<Self>, job: Job) {
        let span = batch_span("burn", std::slice::from_ref(&job));
        self.burn_traced(job).instrument(span).await
    }

    async fn burn_traced(self: Arc<Self>, job: Job) {
        let Ok(_permit) = self.in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(mut jobs) = self.claim(vec![job]).await else {
            return;
        };
        let Some(job) = jobs.pop() else {
            return;
        };
        // A burn's reference is refused when reused: if it is used, an
        // earlier run's burn landed and only its recording is missing.
        let reference = job.reference;
        match self.ref_used(reference).await {
            Ok(true) => {
                tracing::info!(tx_id = %job.request.tx_id(), "burn already on chain; recording it");
                let landed = self.landed_elsewhere(job.request.tx_id()).await;
                self.finish(vec![job], &landed, None).await;
            }
            Ok(false) => self.send_burn(job).await,
            Err(reason) => job.answer(Outcome::Retry(reason)),
        }
    }

    /// Claims the jobs' rows; answers those that must not be sent (cancelled,
    /// failed, already confirmed, unknown) and returns the rest. `None` on
    /// shutdown (every job answered).
    async fn claim(&self, jobs: Vec<Job>) -> Option<Vec<Job>> {
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.request.tx_id()).collect();
        let mut attempt = 0;
        let rows = loop {
            match record::claim(&self.db, &ids).await {
                Ok(rows) => break rows,
                Err(err) => {
                    self.metrics.retry("database");
                    tracing::warn!(error = %ErrorChain(&err), "could not claim token transactions; retrying");
                    if !self.pause(&mut attempt).await {
                        answer_all(jobs, Outcome::Retry("shutting down".into()));
                        return None;
                    }
                }
            }
        };
        let mut ready = Vec::with_capacity(jobs.len());
        for mut job in jobs {
            let Some(row) = rows.iter().find(|r| r.id == job.request.tx_id()) else {
                let id = job.request.tx_id();
                job.answer(Outcome::DeadLetter(format!(
                    "token transaction {id} does not exist"
                )));
                continue;
            };
            job.recorded_at = Some(row.created_at);
            job.accepted_at = row.accepted_at;
            if row.chain_reference.len() != 32 {
                let id = row.id;
                job.answer(Outcome::DeadLetter(format!(
                    "token transaction {id} has no 32-byte chain reference"
                )));
                continue;
            }
            job.reference = B256::from_slice(&row.chain_reference);
            match row.status {
                TxStatus::Submitted => ready.push(job),
                TxStatus::Pending => ready.push(job), // claimed by a racing copy; send anyway
                TxStatus::Cancelled => {
                    tracing::info!(tx_id = %row.id, "cancelled before it was sent; skipping");
                    self.metrics.finished(job.request.kind(), "cancelled", 1);
                    job.answer(Outcome::Ack);
                }
                TxStatus::Confirmed | TxStatus::Failed => job.answer(Outcome::Ack),
            }
        }
        Some(ready)
    }

    /// Sends mints as one batch; a reverted batch is split in halves until
    /// the request that cannot succeed is alone, and it alone fails.
    fn send_mints(self: &Arc<Self>, jobs: Vec<Job>) -> futures::future::BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            let reason = jobs
                .first()
                .map(|j| j.request.reason().to_owned())
                .unwrap_or_default();
            let Ok(reason_code) = encode_reason(&reason) else {
                for job in jobs {
                    this.fail(
                        job,
                        &format!("reason `{reason}` is not a valid on-chain reason code"),
                    )
                    .await;
                }
                return;
            };
            let mut recipients = Vec::with_capacity(jobs.len());
            let mut amounts = Vec::with_capacity(jobs.len());
            let mut refs = Vec::with_capacity(jobs.len());
            for job in &jobs {
                if let Request::Mint { to, amount, .. } = &job.request {
                    recipients.push(*to);
                    amounts.push(U256::from(*amount));
                    refs.push(job.reference);
                }
            }
            let call = HAVEN::batchMintWithRefsCall {
                recipients,
                amounts,
                refs,
                reason: reason_code,
            };
            let request = TxRequest::call(this.contract, &call);
            this.metrics.batch(jobs.len());
            match this.send_and_confirm(&jobs, request).await {
                Sent::Confirmed(confirmed, started) => {
                    this.finish(jobs, confirmed.as_ref(), Some(started)).await
                }
                Sent::Reverted(reason) if jobs.len() > 1 => {
                    this.metrics.retry("reverted_batch_split");
                    tracing::warn!(size = jobs.len(), %reason, "batch reverted; splitting it");
                    let mut jobs = jobs;
                    let right = jobs.split_off(jobs.len() / 2);
                    futures::join!(this.send_mints(jobs), this.send_mints(right));
                }
                Sent::Reverted(reason) => {
                    for job in jobs {
                        this.fail(job, &reason).await;
                    }
                }
                Sent::GaveUp(reason) => answer_all(jobs, Outcome::Retry(reason)),
            }
        })
    }

    async fn send_burn(self: &Arc<Self>, job: Job) {
        let Request::Burn { from, amount, .. } = &job.request else {
            return;
        };
        let Ok(reason_code) = encode_reason(job.request.reason()) else {
            let reason = format!(
                "reason `{}` is not a valid on-chain reason code",
                job.request.reason()
            );
            self.fail(job, &reason).await;
            return;
        };
        let call = HAVEN::burnFromWithRefCall {
            from: *from,
            amount: U256::from(*amount),
            r#ref: job.reference,
            reason: reason_code,
        };
        let request = TxRequest::call(self.contract, &call);
        let jobs = vec![job];
        match self.send_and_confirm(&jobs, request).await {
            Sent::Confirmed(confirmed, started) => {
                self.finish(jobs, confirmed.as_ref(), Some(started)).await
            }
            Sent::Reverted(reason) if reason.contains("RefAlreadyUsed") => {
                let landed = self.landed_elsewhere(jobs[0].request.tx_id()).await;
                self.finish(jobs, &landed, None).await;
            }
            Sent::Reverted(reason) => {
                for job in jobs {
                    self.fail(job, &reason).await;
                }
            }
            Sent::GaveUp(reason) => answer_all(jobs, Outcome::Retry(reason)),
        }
    }

    /// Sends `request` and waits for its confirmation, through RPC outages,
    /// lost leases and nonces taken by others (each resend carries the same
    /// references). Records the hash once broadcast.
    async fn send_and_confirm(&self, jobs: &[Job], request: TxRequest) -> Sent {
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.request.tx_id()).collect();
        let mut attempt = 0;
        loop {
            let Some(sender) = self.current_sender().await else {
                return Sent::GaveUp("shutting down".into());
            };
            let started = Instant::now();
            let mut sent: SentTx = match sender.send(request.clone()).await {
                Ok(sent) => sent,
                Err(err) => match self.classify(err, &mut attempt).await {
                    Next::Again => continue,
                    Next::Stop(sent) => return sent,
                },
            };
            let hash = sent.hash().to_string();
            if let Err(err) = record::sent(&self.db, &ids, &hash).await {
                // Only bookkeeping: the reference still protects a resend.
                tracing::warn!(error = %ErrorChain(&err), tx_hash = %hash, "could not record the sent hash");
            }
            self.metrics.in_flight(1);
            // `Next::Again` out of this loop: the lease was lost or the nonce
            // taken, send again (same references).
            let confirmed = loop {
                match sender.confirm(&mut sent).await {
                    Ok(confirmed) => break Ok(confirmed),
                    Err(err)
                        if err.is_retryable() && !matches!(err, ChainError::LeaseLost { .. }) =>
                    {
                        self.metrics.retry("transport");
                        tracing::warn!(error = %ErrorChain(&err), tx_hash = %sent.hash(), "confirmation interrupted; watching again");
                        if !self.pause(&mut attempt).await {
                            break Err(Next::Stop(Sent::GaveUp("shutting down".into())));
                        }
                    }
                    Err(err) => break Err(self.classify(err, &mut attempt).await),
                }
            };
            self.metrics.in_flight(-1);
            match confirmed {
                Ok(confirmed) => {
                    self.metrics.replaced(confirmed.replacements);
                    return Sent::Confirmed(Box::new(confirmed), started);
                }
                Err(Next::Again) => continue,
                Err(Next::Stop(stop)) => return stop,
            }
        }
    }

    /// Decides what a send or confirm error means.
    async fn classify(&self, err: ChainError, attempt: &mut u32) -> Next {
        if let Some(reason) = err.revert_reason() {
            let name = reason.contract_error_name().unwrap_or_default();
            if GLOBAL_REVERTS.contains(&name) {
                self.metrics.retry("contract_refuses");
                tracing::error!(error = %ErrorChain(&err), "the contract refuses every request; waiting");
            } else if matches!(reason, RevertReason::NoData) {
                // A revert that says nothing is not the request's fault: the
                // contract names every refusal. It is the gas estimate made
                // on other state (a batch estimated while its references
                // were used, mined after a reorganisation freed them, runs
                // out of gas) or a state the replay could not reach. Sent
                // again, it is estimated anew; the references keep it once.
                self.metrics.retry("reverted_without_reason");
                tracing::warn!(error = %ErrorChain(&err), "reverted without a reason; the request goes back to its queue");
                return Next::Stop(Sent::GaveUp(format!("reverted without a reason: {err}")));
            } else {
                return Next::Stop(Sent::Reverted(reason.to_string()));
            }
        } else if matches!(
            err,
            ChainError::NonceTaken { .. } | ChainError::LeaseLost { .. }
        ) {
            self.metrics.retry("nonce");
            tracing::warn!(error = %ErrorChain(&err), "sending again with a fresh nonce");
        } else if err.is_retryable() {
            self.metrics.retry("transport");
            tracing::warn!(error = %ErrorChain(&err), "chain unavailable; retrying");
        } else {
            // Rejected by the node, misconfigured: not this request's fault,
            // but not fixable here either; the consumer's retry policy decides.
            return Next::Stop(Sent::GaveUp(ErrorChain(&err).to_string()));
        }
        if self.pause(attempt).await {
            Next::Again
        } else {
            Next::Stop(Sent::GaveUp("shutting down".into()))
        }
    }

    /// Records confirmed jobs (retrying through database trouble) and acks them.
    async fn finish(&self, jobs: Vec<Job>, confirmed: &impl AsLanded, started: Option<Instant>) {
        let landed = confirmed.landed();
        let mut requests = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let reference = job.reference;
            let here = confirmed.landed_here(reference);
            let at = match here {
                Some(true) => landed.clone(),
                // Skipped in this transaction: an earlier one used the
                // reference, and that is the one to record.
                _ => match self.landing_of(reference).await {
                    Some(elsewhere) => elsewhere,
                    None => landed.clone(),
                },
            };
            requests.push((&job.request, at, TraceHeaders::of(&job.span)));
        }
        let mut attempt = 0;
        loop {
            match record::confirmed(&self.db, &requests, self.final_when_confirmed).await {
                Ok(recorded) => {
                    if recorded.announced > 0 {
                        self.outbox.notify();
                    }
                    break;
                }
                Err(err) => {
                    self.metrics.retry("database");
                    tracing::error!(error = %ErrorChain(&err), tx_hash = %landed.tx_hash, "could not record a confirmed transaction; retrying");
                    if !self.pause(&mut attempt).await {
                        answer_all(
                            jobs,
                            Outcome::Retry("shutting down before recording".into()),
                        );
                        return;
                    }
                }
            }
        }
        if let Some(started) = started {
            self.metrics
                .confirmed_after(started.elapsed().as_secs_f64());
        }
        let now = chrono::Utc::now();
        let seconds_since = |at: chrono::DateTime<chrono::Utc>| {
            (now - at).num_milliseconds().max(0) as f64 / 1000.0
        };
        for job in &jobs {
            if let Some(at) = job.recorded_at {
                self.metrics.end_to_end(seconds_since(at));
            }
            // What the guest waits: from the webhook (or command) to the
            // confirmed mint, queues and retries included.
            if let (Request::Mint { .. }, Some(at)) = (&job.request, job.accepted_at) {
                self.metrics.since_acceptance(seconds_since(at));
            }
        }
        if let Some(first) = jobs.first() {
            self.metrics
                .finished(first.request.kind(), "confirmed", jobs.len() as u64);
        }
        tracing::info!(count = jobs.len(), tx_hash = %landed.tx_hash, block = landed.block_number, "confirmed and recorded");
        answer_all(jobs, Outcome::Ack);
    }

    /// Marks a request failed for good and dead-letters it (in its own
    /// request's trace: the failure event continues it).
    async fn fail(&self, job: Job, reason: &str) {
        let span = job.span.clone();
        self.fail_traced(job, reason).instrument(span).await
    }

    async fn fail_traced(&self, job: Job, reason: &str) {
        tracing::error!(tx_id = %job.request.tx_id(), %reason, "request can never succeed; dead-lettering it");
        if let Err(err) = record::failed(&self.db, &job.request, reason).await {
            tracing::warn!(error = %ErrorChain(&err), "could not mark the request failed; it will be retried");
            job.answer(Outcome::Retry(format!(
                "could not record the failure: {reason}"
            )));
            return;
        }
        self.outbox.notify();
        self.metrics.finished(job.request.kind(), "failed", 1);
        job.answer(Outcome::DeadLetter(reason.to_owned()));
    }

    /// Whether `reference` is used on chain, waiting out transport trouble;
    /// `Err` (why) on shutdown or when the node refuses the call (as for a
    /// send, the consumer's retry policy then decides).
    async fn ref_used(&self, reference: B256) -> Result<bool, String> {
        let mut attempt = 0;
        loop {
            let sender = self
                .current_sender()
                .await
                .ok_or_else(|| "shutting down".to_owned())?;
            match sender
                .rpc()
                .view(self.contract, &HAVEN::refUsedCall { r#ref: reference })
                .await
            {
                Ok(used) => return Ok(used),
                Err(err) if !err.is_retryable() => {
                    tracing::warn!(error = %ErrorChain(&err), "the node refuses to read a reference; leaving the request to the retry policy");
                    return Err(ErrorChain(&err).to_string());
                }
                Err(err) => {
                    self.metrics.retry("transport");
                    tracing::warn!(error = %ErrorChain(&err), "could not read a reference; retrying");
                    if !self.pause(&mut attempt).await {
                        return Err("shutting down".to_owned());
                    }
                }
            }
        }
    }

    /// Where a request that an earlier run sent landed, as far as the row knows.
    async fn landed_elsewhere(&self, tx_id: Uuid) -> Landed {
        let row = token_transactions::Entity::find_by_id(tx_id)
            .one(&self.db)
            .await
            .ok()
            .flatten();
        Landed {
            tx_hash: row
                .as_ref()
                .and_then(|r| r.tx_hash.clone())
                .unwrap_or_default(),
            block_number: row
                .and_then(|r| r.block_number)
                .and_then(|b| u64::try_from(b).ok())
                .unwrap_or_default(),
        }
    }

    /// Where the chain says `reference` was used; `None` when it cannot tell
    /// now (the caller keeps what it knows).
    async fn landing_of(&self, reference: B256) -> Option<Landed> {
        let sender = self.sender.borrow().clone()?;
        let from = self.first_block().await;
        match reconcile::landing_of(sender.rpc(), self.contract, from, reference).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(error = %ErrorChain(&err), "could not look up where a reference landed");
                None
            }
        }
    }

    /// The block the contract was deployed in, as `haven-deploy` recorded it
    /// (where searches for its events start); 0 while no record is found.
    async fn first_block(&self) -> u64 {
        if let Some(block) = self.first_block.get() {
            return *block;
        }
        let address = self.contract.to_checksum(None);
        match chain_deployments::find_by_address(&self.db, &address).await {
            Ok(Some(record)) => {
                let block = u64::try_from(record.block_number).unwrap_or_default();
                *self.first_block.get_or_init(|| block)
            }
            Ok(None) => 0,
            Err(err) => {
                tracing::debug!(error = %ErrorChain(&err), "cannot read the deployment block");
                0
            }
        }
    }

    /// The sender of the leased signer, waiting for a lease; `None` on shutdown.
    async fn current_sender(&self) -> Option<Arc<TxSender>> {
        let mut rx = self.sender.clone();
        loop {
            if let Some(sender) = rx.borrow_and_update().clone() {
                return Some(sender);
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                changed = rx.changed() => if changed.is_err() { return None },
            }
        }
    }

    /// Sleeps the next backoff step; `false` when shutting down.
    async fn pause(&self, attempt: &mut u32) -> bool {
        let delay = BACKOFF.delay_for_attempt(*attempt);
        *attempt = attempt.saturating_add(1);
        tokio::select! {
            () = self.shutdown.cancelled() => false,
            () = tokio::time::sleep(delay) => true,
        }
    }
}

use sea_orm::EntityTrait as _;

/// How a send ended.
#[derive(Debug)]
enum Sent {
    Confirmed(Box<ConfirmedTx>, Instant),
    /// Reverted for a reason of the request(s): split or fail.
    Reverted(String),
    /// Stopped without an answer (shutdown, node refusal): retry the messages.
    GaveUp(String),
}

enum Next {
    Again,
    Stop(Sent),
}

/// A confirmation, or where an earlier run's transaction landed.
trait AsLanded {
    fn landed(&self) -> Landed;

    /// Whether this transaction used `reference` (`None`: unknown).
    fn landed_here(&self, reference: B256) -> Option<bool>;
}

impl AsLanded for ConfirmedTx {
    fn landed(&self) -> Landed {
        Landed {
            tx_hash: self.tx_hash.to_string(),
            block_number: self.block_number,
        }
    }

    fn landed_here(&self, reference: B256) -> Option<bool> {
        use alloy::sol_types::SolEvent as _;
        // topic0 is the event, topic1 the indexed reference.
        Some(self.receipt.inner.logs().iter().any(|log| {
            let topics = log.topics();
            topics.len() > 1
                && topics[1] == reference
                && (topics[0] == HAVEN::Minted::SIGNATURE_HASH
                    || topics[0] == HAVEN::Burned::SIGNATURE_HASH)
        }))
    }
}

impl AsLanded for Landed {
    fn landed(&self) -> Landed {
        self.clone()
    }

    fn landed_here(&self, _reference: B256) -> Option<bool> {
        None
    }
}

/// The span of one chain transaction answering `jobs`: a child of the
/// first job's span, linked to every other's, as OpenTelemetry models a
/// batch; the sender's `send` and `confirm` spans are its children.
fn batch_span(name: &'static str, jobs: &[Job]) -> tracing::Span {
    let parent = jobs.first().map(|job| job.span.clone());
    let span = tracing::info_span!(
        parent: parent.as_ref().and_then(tracing::Span::id),
        "chain_tx",
        otel.name = name,
        size = jobs.len(),
    );
    for job in jobs.iter().skip(1) {
        telemetry::add_link(&span, &job.span);
    }
    span
}

fn answer_all(jobs: Vec<Job>, outcome: Outcome) {
    for job in jobs {
        job.answer(outcome.clone());
    }
}

#[cfg(test)]
mod handling_tests {
    use super::*;

    #[test]
    fn a_request_is_handled_until_its_last_copy_is_done() {
        let handling = Handling::default();
        let id = Uuid::now_v7();
        let first = handling.enter(id);
        let second = handling.enter(id);
        assert!(handling.contains(id));
        drop(first);
        assert!(handling.contains(id), "a redelivered copy is still handled");
        drop(second);
        assert!(!handling.contains(id));
        assert!(handling.map().is_empty(), "no entry is left behind");
    }
}
