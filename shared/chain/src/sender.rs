//! [`TxSender`]: estimate, sign, broadcast, watch, replace when stuck, and
//! confirm one transaction at a time per signer.

use std::sync::Arc;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSigner;
use alloy::primitives::{Address, Bytes, Signature, TxHash, TxKind, U256};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol_types::SolCall;

use crate::config::TxConfig;
use crate::error::{ChainError, ErrorClass, RevertReason, SendRejection, classify, send_rejection};
use crate::fees::{FeePolicy, Fees};
use crate::nonce::{NonceManager, NonceSlot};
use crate::rpc::Rpc;
use crate::signer::ChainSigner;

/// Gas estimates are raised by this many percent: the state may change
/// between estimate and inclusion (a first-time holder costs more).
const GAS_HEADROOM_PERCENT: u64 = 20;

/// How often a rejected nonce (too low, or taken by a pending transaction)
/// is re-read from the chain and the send tried again.
const NONCE_RESYNC_ATTEMPTS: usize = 3;

/// Polls [`TxSender::confirm`] waits, once the nonce is seen used without a
/// receipt of ours, before it reports [`ChainError::NonceTaken`].
const NONCE_TAKEN_AFTER_POLLS: u32 = 5;
/// Gas of a plain transfer (a nonce gap's filler).
const TRANSFER_GAS: u64 = 21_000;
/// Nonces one stuck transaction fills at most per round.
const MAX_GAP_FILL: u64 = 1_000;

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRequest {
    /// Recipient, or contract creation.
    pub to: TxKind,
    /// Calldata (or creation code).
    pub input: Bytes,
    /// Wei sent along.
    pub value: U256,
    /// Gas limit; estimated (plus headroom) when `None`.
    pub gas_limit: Option<u64>,
}

impl TxRequest {
    /// A contract call encoded by the `sol!` bindings.
    pub fn call<C: SolCall>(contract: Address, call: &C) -> Self {
        Self {
            to: TxKind::Call(contract),
            input: call.abi_encode().into(),
            value: U256::ZERO,
            gas_limit: None,
        }
    }

    /// A contract creation from creation code (constructor arguments appended).
    pub fn create(code: Bytes) -> Self {
        Self {
            to: TxKind::Create,
            input: code,
            value: U256::ZERO,
            gas_limit: None,
        }
    }

    /// A plain ether transfer.
    pub fn transfer(to: Address, value: U256) -> Self {
        Self {
            to: TxKind::Call(to),
            input: Bytes::new(),
            value,
            gas_limit: Some(21_000),
        }
    }

    /// The same request with a fixed gas limit (no estimate).
    pub fn with_gas_limit(mut self, gas: u64) -> Self {
        self.gas_limit = Some(gas);
        self
    }

    fn as_call(&self, from: Address) -> TransactionRequest {
        let mut tx = TransactionRequest::default()
            .from(from)
            .input(self.input.clone().into())
            .value(self.value);
        tx.to = Some(self.to);
        if let Some(gas) = self.gas_limit {
            tx.gas = Some(gas);
        }
        tx
    }
}

/// One broadcast of a transaction (the first, or a fee-bumped replacement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxAttempt {
    pub hash: TxHash,
    pub fees: Fees,
    /// Head block when it was broadcast (the stuck clock).
    pub sent_at_block: u64,
    /// The signed transaction as broadcast. Sent again as it is when the
    /// node may have dropped it: re-signing could give another hash, since
    /// a KMS or remote signer need not sign deterministically.
    pub raw: Bytes,
}

/// A broadcast transaction: every attempt shares the nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentTx {
    /// What was sent.
    pub request: TxRequest,
    /// The signer.
    pub from: Address,
    pub nonce: u64,
    /// The gas limit used.
    pub gas_limit: u64,
    /// Every broadcast, oldest first; never empty.
    pub attempts: Vec<TxAttempt>,
}

impl SentTx {
    /// The latest attempt's hash.
    pub fn hash(&self) -> TxHash {
        self.attempts.last().map(|a| a.hash).unwrap_or_default()
    }
}

/// A transaction mined and buried under the configured confirmations.
#[derive(Debug, Clone)]
pub struct ConfirmedTx {
    /// The attempt that was mined.
    pub tx_hash: TxHash,
    /// Its block.
    pub block_number: u64,
    /// Gas it used.
    pub gas_used: u64,
    /// The created contract, for a creation.
    pub contract_address: Option<Address>,
    /// How many fee-bumped replacements were sent before it was mined.
    pub replacements: usize,
    /// The full receipt (logs included).
    pub receipt: TransactionReceipt,
}

/// Where nonces come from.
#[derive(Debug)]
pub enum NonceSource {
    /// A leased signer of the pool (services).
    Leased(NonceManager),
    /// A signer nobody else sends with, its nonce read from the chain
    /// (operator tools such as `haven-deploy`). Boxed: it holds the key.
    Direct(Box<DirectNonces>),
}

/// Nonces of a signer with a single user, from the chain's pending count.
pub struct DirectNonces {
    signer: ChainSigner,
    next: tokio::sync::Mutex<Option<u64>>,
}

impl std::fmt::Debug for DirectNonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectNonces")
            .field("signer", &self.signer.address())
            .finish_non_exhaustive()
    }
}

impl DirectNonces {
    /// Nonces of `signer` (a local key or any [`TxSigner`]), first read
    /// from the chain on the first send.
    pub fn new(signer: impl TxSigner<Signature> + Send + Sync + 'static) -> Self {
        Self::shared(Arc::new(signer))
    }

    /// [`Self::new`] of a signer already shared.
    pub fn shared(signer: ChainSigner) -> Self {
        Self {
            signer,
            next: tokio::sync::Mutex::new(None),
        }
    }
}

impl NonceSource {
    fn signer(&self) -> &ChainSigner {
        match self {
            NonceSource::Leased(m) => m.signer(),
            NonceSource::Direct(d) => &d.signer,
        }
    }

    async fn next_slot(&self, rpc: &Rpc) -> Result<NonceSlot<'_>, ChainError> {
        match self {
            NonceSource::Leased(m) => m.next_slot().await,
            NonceSource::Direct(d) => {
                let mut next = d.next.lock().await;
                let nonce = match *next {
                    Some(n) => n,
                    None => rpc.pending_nonce(d.signer.address()).await?,
                };
                *next = Some(nonce);
                Ok(NonceSlot::direct(next, nonce, d.signer.address()))
            }
        }
    }

    /// Forgets the next nonce: the next send reads the chain's pending count.
    pub async fn forget(&self) {
        match self {
            NonceSource::Leased(m) => m.forget().await,
            NonceSource::Direct(d) => *d.next.lock().await = None,
        }
    }

    async fn check_fence(&self) -> Result<(), ChainError> {
        match self {
            NonceSource::Leased(m) => m.check_fence().await,
            NonceSource::Direct(_) => Ok(()),
        }
    }
}

/// Sends and confirms transactions of one signer.
#[derive(Debug)]
pub struct TxSender {
    rpc: Rpc,
    nonces: NonceSource,
    chain_id: u64,
    fees: FeePolicy,
    confirmations: u64,
    stuck_after_blocks: u64,
    /// The last nonce gap filled and the block it was tried at (one try per
    /// gap every `stuck_after_blocks`, however many transactions wait on it).
    last_fill: std::sync::Mutex<Option<(u64, u64)>>,
}

impl TxSender {
    /// A sender for `chain_id` with the fee, replacement and confirmation settings of `config`.
    pub fn new(
        rpc: Rpc,
        nonces: NonceSource,
        chain_id: u64,
        config: &TxConfig,
    ) -> Result<Self, ChainError> {
        Ok(Self {
            rpc,
            nonces,
            chain_id,
            fees: FeePolicy::from_config(config)?,
            confirmations: config.confirmations.max(1),
            stuck_after_blocks: config.stuck_after_blocks.max(1),
            last_fill: std::sync::Mutex::new(None),
        })
    }

    /// The signer's address.
    pub fn address(&self) -> Address {
        self.nonces.signer().address()
    }

    /// The nonce source (e.g. to watch a lease for loss).
    pub fn nonces(&self) -> &NonceSource {
        &self.nonces
    }

    /// The RPC connection.
    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }

    /// Gives the nonce source back (e.g. to release a lease).
    pub fn into_nonces(self) -> NonceSource {
        self.nonces
    }

    /// Sends and waits for the configured confirmations.
    pub async fn send_and_confirm(&self, request: TxRequest) -> Result<ConfirmedTx, ChainError> {
        let mut sent = self.send(request).await?;
        self.confirm(&mut sent).await
    }

    /// Estimates gas and fees, reserves a nonce, signs and broadcasts. A
    /// call that would revert is refused here ([`ChainError::Reverted`]
    /// with no hash) and uses no nonce.
    #[tracing::instrument(skip_all, fields(from = %self.address(), nonce, tx_hash))]
    pub async fn send(&self, request: TxRequest) -> Result<SentTx, ChainError> {
        let from = self.address();
        let gas_limit = match request.gas_limit {
            Some(gas) => gas,
            None => {
                let estimate = self.rpc.estimate_gas(&request.as_call(from)).await?;
                estimate.saturating_add(estimate.saturating_mul(GAS_HEADROOM_PERCENT) / 100)
            }
        };
        let fees = self.fees.estimate(&self.rpc.fee_history().await?)?;

        for _ in 0..NONCE_RESYNC_ATTEMPTS {
            let slot = self.nonces.next_slot(&self.rpc).await?;
            let nonce = slot.nonce();
            let head = self.rpc.block_number().await?;
            let (hash, raw) = self.sign(&request, nonce, gas_limit, fees).await?;
            match self.broadcast(&raw).await {
                Ok(()) => {
                    slot.sent();
                    let span = tracing::Span::current();
                    span.record("nonce", nonce);
                    span.record("tx_hash", tracing::field::display(hash));
                    tracing::info!(
                        max_fee_per_gas = fees.max_fee_per_gas,
                        max_priority_fee_per_gas = fees.max_priority_fee_per_gas,
                        gas_limit,
                        "transaction sent"
                    );
                    return Ok(SentTx {
                        request,
                        from,
                        nonce,
                        gas_limit,
                        attempts: vec![TxAttempt {
                            hash,
                            fees,
                            sent_at_block: head,
                            raw,
                        }],
                    });
                }
                Err(Broadcast::Rejected(rejection)) => {
                    // Our idea of the next nonce is behind the node's (an
                    // earlier send whose outcome was unknown landed, or the
                    // key was used elsewhere): re-read it and try again.
                    tracing::warn!(
                        nonce,
                        ?rejection,
                        "nonce already used; resyncing from the chain"
                    );
                    slot.unknown();
                }
                Err(Broadcast::Failed(err)) => {
                    if err.is_retryable() {
                        // The node may have the transaction: re-read next time.
                        slot.unknown();
                    }
                    return Err(err);
                }
            }
        }
        Err(ChainError::Rejected {
            message: format!(
                "nonce rejected {NONCE_RESYNC_ATTEMPTS} times in a row; is the key used elsewhere?"
            ),
        })
    }

    /// Waits until the transaction (or one of its replacements) is mined and
    /// buried under the configured confirmations, replacing it with raised
    /// fees every `stuck_after_blocks` blocks it stays unmined. A reverted
    /// transaction is reported as [`ChainError::Reverted`] with its decoded
    /// reason.
    ///
    /// Waits as long as it takes; callers bound it with a timeout and may
    /// call it again with the same `sent`, which keeps every attempt.
    #[tracing::instrument(skip_all, fields(from = %sent.from, nonce = sent.nonce))]
    pub async fn confirm(&self, sent: &mut SentTx) -> Result<ConfirmedTx, ChainError> {
        // Polls for which the nonce was seen used and no receipt of ours found.
        let mut unexplained = 0;
        loop {
            if let Some(receipt) = self.find_receipt(sent).await? {
                if let Some(confirmed) = self.bury(sent, receipt).await? {
                    return Ok(confirmed);
                }
                // Reorged out while waiting for confirmations: watch again.
                continue;
            }
            let head = self.rpc.block_number().await?;
            if self.rpc.mined_nonce(sent.from).await? > sent.nonce {
                // Mined between our receipt check and now, or taken by someone else.
                if let Some(receipt) = self.find_receipt(sent).await? {
                    if let Some(confirmed) = self.bury(sent, receipt).await? {
                        return Ok(confirmed);
                    }
                    continue;
                }
                // A node may count the block's nonces a moment before it
                // serves the block's receipts: look again before deciding
                // that someone else took the nonce (a wrong verdict costs a
                // resend of the whole batch).
                unexplained += 1;
                if unexplained < NONCE_TAKEN_AFTER_POLLS {
                    tokio::time::sleep(self.rpc.poll_interval()).await;
                    continue;
                }
                return Err(ChainError::NonceTaken {
                    signer: sent.from,
                    nonce: sent.nonce,
                });
            }
            let last_sent_at = sent.attempts.last().map_or(head, |a| a.sent_at_block);
            if head >= last_sent_at.saturating_add(self.stuck_after_blocks) {
                self.replace(sent, head).await?;
            }
            tokio::time::sleep(self.rpc.poll_interval()).await;
        }
    }

    /// Sends the replacement of a stuck transaction: same nonce, fees raised
    /// by at least 12.5% and never past the maximum.
    async fn replace(&self, sent: &mut SentTx, head: u64) -> Result<(), ChainError> {
        let Some(last) = sent.attempts.last().cloned() else {
            return Ok(());
        };
        self.nonces.check_fence().await?;
        let fresh = match self.rpc.fee_history().await {
            Ok(history) => self.fees.estimate(&history).ok(),
            Err(err) => {
                tracing::warn!(error = %err, "no fee history for the replacement; bumping the old fees");
                None
            }
        };
        let Some(fees) = self.fees.bump(last.fees, fresh) else {
            // At the ceiling. The node may have dropped the transaction (a
            // base fee above what it offers evicts it from the pool), and
            // then waiting alone waits for ever: send the same transaction
            // again, byte for byte (not signed again: a remote signer's new
            // signature would be another transaction with the same nonce).
            // Harmless when the node still has it ("already known").
            let resent = self.broadcast(&last.raw).await.is_ok();
            tracing::warn!(
                tx_hash = %last.hash,
                max_fee_per_gas = last.fees.max_fee_per_gas,
                resent,
                "transaction is stuck but its fees cannot be raised past MAX_FEE_PER_GAS; sent again as it was, waiting"
            );
            self.fill_gap(sent, head).await;
            if let Some(a) = sent.attempts.last_mut() {
                a.sent_at_block = head;
            }
            return Ok(());
        };
        let (hash, raw) = match self
            .sign(&sent.request, sent.nonce, sent.gas_limit, fees)
            .await
        {
            Ok(signed) => signed,
            Err(err) if err.is_retryable() => {
                // The attempts already sent are still watched.
                tracing::warn!(error = %err, "could not sign the replacement; will retry");
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        match self.broadcast(&raw).await {
            Ok(()) => {
                tracing::warn!(
                    replaced = %last.hash,
                    tx_hash = %hash,
                    max_fee_per_gas = fees.max_fee_per_gas,
                    max_priority_fee_per_gas = fees.max_priority_fee_per_gas,
                    "stuck transaction replaced with higher fees"
                );
                sent.attempts.push(TxAttempt {
                    hash,
                    fees,
                    sent_at_block: head,
                    raw,
                });
                Ok(())
            }
            // One of our attempts was mined meanwhile: the next poll finds it.
            Err(Broadcast::Rejected(SendRejection::NonceTooLow)) => Ok(()),
            Err(Broadcast::Rejected(rejection)) => {
                tracing::warn!(?rejection, "replacement refused by the node; waiting");
                if let Some(a) = sent.attempts.last_mut() {
                    a.sent_at_block = head;
                }
                Ok(())
            }
            Err(Broadcast::Failed(err)) if err.is_retryable() => {
                tracing::warn!(error = %err, "could not send the replacement; will retry");
                Ok(())
            }
            Err(Broadcast::Failed(err)) => Err(err),
        }
    }

    /// Nonces below `sent`'s that the chain has not used and no one will
    /// send (their transactions were dropped by the node after the jobs that
    /// sent them gave up) block `sent` and every later transaction for ever:
    /// each is filled with a transfer of nothing to the signer itself, at
    /// the network's current fees. Where a transaction does hold a nonce
    /// (stuck ones at the ceiling pay more), the node refuses the filler as
    /// an underpriced replacement; should a filler replace one, that
    /// transaction's job sees its nonce taken and sends it again. The
    /// references keep every mint and burn once either way.
    async fn fill_gap(&self, sent: &SentTx, head: u64) {
        let Ok(mined) = self.rpc.mined_nonce(sent.from).await else {
            return;
        };
        if mined >= sent.nonce {
            return;
        }
        {
            let mut last = self.last_fill.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((nonce, at)) = *last
                && nonce == mined
                && head < at.saturating_add(self.stuck_after_blocks)
            {
                return;
            }
            *last = Some((mined, head));
        }
        let Ok(Ok(fees)) = self
            .rpc
            .fee_history()
            .await
            .map(|history| self.fees.estimate(&history))
        else {
            return;
        };
        let filler = TxRequest::transfer(sent.from, U256::ZERO);
        let mut filled = 0u64;
        for nonce in mined..sent.nonce.min(mined.saturating_add(MAX_GAP_FILL)) {
            let Ok((_, raw)) = self.sign(&filler, nonce, TRANSFER_GAS, fees).await else {
                return;
            };
            match self.broadcast(&raw).await {
                Ok(()) => filled += 1,
                Err(Broadcast::Rejected(_)) => {} // held by a transaction: no gap
                Err(Broadcast::Failed(err)) => {
                    tracing::warn!(error = %err, nonce, "could not fill a nonce gap; will try again");
                    break;
                }
            }
        }
        if filled > 0 {
            tracing::warn!(
                from = mined,
                waiting = sent.nonce,
                filled,
                "nonces below a stuck transaction were never mined: filled with empty transfers"
            );
        }
    }

    /// The receipt of whichever attempt was mined, newest first.
    async fn find_receipt(&self, sent: &SentTx) -> Result<Option<TransactionReceipt>, ChainError> {
        for attempt in sent.attempts.iter().rev() {
            if let Some(receipt) = self.rpc.receipt(attempt.hash).await? {
                return Ok(Some(receipt));
            }
        }
        Ok(None)
    }

    /// Waits for the confirmations; `None` if the receipt vanished (reorg).
    async fn bury(
        &self,
        sent: &SentTx,
        receipt: TransactionReceipt,
    ) -> Result<Option<ConfirmedTx>, ChainError> {
        let Some(block) = receipt.block_number else {
            return Ok(None);
        };
        let target = block.saturating_add(self.confirmations - 1);
        while self.rpc.block_number().await? < target {
            tokio::time::sleep(self.rpc.poll_interval()).await;
        }
        let receipt = if self.confirmations > 1 {
            match self.rpc.receipt(receipt.transaction_hash).await? {
                Some(r) if r.block_hash == receipt.block_hash => r,
                _ => return Ok(None),
            }
        } else {
            receipt
        };
        let replacements = sent
            .attempts
            .iter()
            .position(|a| a.hash == receipt.transaction_hash)
            .unwrap_or(0);
        if !receipt.status() {
            let reason = self.revert_reason(sent, block).await;
            tracing::warn!(tx_hash = %receipt.transaction_hash, %reason, "transaction reverted");
            return Err(ChainError::Reverted {
                reason: Box::new(reason),
                tx_hash: Some(receipt.transaction_hash),
            });
        }
        tracing::info!(tx_hash = %receipt.transaction_hash, block, gas_used = receipt.gas_used, "transaction confirmed");
        Ok(Some(ConfirmedTx {
            tx_hash: receipt.transaction_hash,
            block_number: block,
            gas_used: receipt.gas_used,
            contract_address: receipt.contract_address,
            replacements,
            receipt,
        }))
    }

    /// A mined transaction's revert reason: receipts carry none, so the call
    /// is replayed on the state it ran on (the parent block), then on the
    /// latest state.
    async fn revert_reason(&self, sent: &SentTx, block: u64) -> RevertReason {
        let call = sent
            .request
            .clone()
            .with_gas_limit(sent.gas_limit)
            .as_call(sent.from);
        for at in [Some(block.saturating_sub(1)), None] {
            match self.rpc.eth_call(&call, at).await {
                Err(ChainError::Reverted { reason, .. }) => return *reason,
                Ok(_) => continue,
                Err(err) => {
                    tracing::warn!(error = %err, "could not replay the reverted transaction");
                    break;
                }
            }
        }
        RevertReason::NoData
    }

    /// Signs with the signer of the nonce source (a local key, or a KMS or
    /// remote signer: hence async) and encodes the transaction to broadcast.
    async fn sign(
        &self,
        request: &TxRequest,
        nonce: u64,
        gas_limit: u64,
        fees: Fees,
    ) -> Result<(TxHash, Bytes), ChainError> {
        let mut tx = TxEip1559 {
            chain_id: self.chain_id,
            nonce,
            gas_limit,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            to: request.to,
            value: request.value,
            access_list: Default::default(),
            input: request.input.clone(),
        };
        let signature = self
            .nonces
            .signer()
            .sign_transaction(&mut tx)
            .await
            .map_err(|err| match err {
                // What a KMS or remote signer reports when it did not sign
                // (unreachable, throttled, denied): worth another try later.
                alloy::signers::Error::Other(_) => ChainError::SignerUnavailable(err.to_string()),
                _ => ChainError::Signer(format!("cannot sign: {err}")),
            })?;
        let envelope = TxEnvelope::from(tx.into_signed(signature));
        Ok((*envelope.tx_hash(), envelope.encoded_2718().into()))
    }

    async fn broadcast(&self, raw: &[u8]) -> Result<(), Broadcast> {
        match self.rpc.send_raw(raw).await {
            Ok(_) => Ok(()),
            Err(ChainError::Rpc { source, method }) => match send_rejection(&source) {
                Some(SendRejection::AlreadyKnown) => Ok(()),
                Some(rejection) => Err(Broadcast::Rejected(rejection)),
                None if classify(&source) == ErrorClass::Transient => {
                    Err(Broadcast::Failed(ChainError::Rpc { method, source }))
                }
                None => Err(Broadcast::Failed(ChainError::Rejected {
                    message: source
                        .as_error_resp()
                        .map_or_else(|| source.to_string(), |p| p.message.to_string()),
                })),
            },
            Err(err) => Err(Broadcast::Failed(err)),
        }
    }
}

enum Broadcast {
    Rejected(SendRejection),
    Failed(ChainError),
}
