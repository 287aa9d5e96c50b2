//! [`Rpc`]: the node connection every other module goes through. Each call
//! has a timeout, transport failures are retried with backon (capped
//! exponential backoff with jitter), reverts and rejections never are.

use std::future::Future;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::network::Ethereum;
use alloy::primitives::{Address, B256, Bytes, TxHash, U256};
use alloy::providers::{Provider, ProviderBuilder, RootProvider};
use alloy::rpc::types::{FeeHistory, TransactionReceipt, TransactionRequest};
use alloy::sol_types::SolCall;
use alloy::transports::TransportError;
use backon::{ExponentialBuilder, Retryable};

use crate::config::RpcConfig;
use crate::error::{ChainError, ErrorClass, RevertReason, classify, without_urls};

/// Blocks of history the fee estimate looks at.
pub const FEE_HISTORY_BLOCKS: u64 = 10;
/// Percentile of each block's tips the fee estimate uses.
pub const FEE_HISTORY_PERCENTILE: f64 = 50.0;

/// A JSON-RPC connection with per-call timeouts and transport retries.
#[derive(Clone)]
pub struct Rpc {
    provider: RootProvider<Ethereum>,
    timeout: Duration,
    retries: usize,
    poll_interval: Duration,
}

impl std::fmt::Debug for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry an API key: never print it.
        f.debug_struct("Rpc")
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// Why one attempt failed, before the retry decision.
enum Attempt {
    Timeout,
    Rpc(TransportError),
}

impl Attempt {
    fn is_transient(&self) -> bool {
        match self {
            Attempt::Timeout => true,
            Attempt::Rpc(err) => classify(err) == ErrorClass::Transient,
        }
    }
}

impl Rpc {
    /// Builds the connection (no network traffic yet). Fails only on a URL
    /// that is not an http(s) URL.
    pub fn new(config: &RpcConfig) -> Result<Self, ChainError> {
        let url: reqwest_url::Url = config
            .rpc_url
            .expose()
            .parse()
            .map_err(|_| ChainError::Config("RPC_URL is not a valid http(s) URL".to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ChainError::Config(
                "RPC_URL must be an http:// or https:// URL".to_owned(),
            ));
        }
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(url);
        Ok(Self {
            provider,
            timeout: config.rpc_timeout,
            retries: config.rpc_retries,
            poll_interval: config.poll_interval,
        })
    }

    /// A connection answered from `asserter`'s queue instead of a node: no
    /// sockets, so tests of lease timing can run on paused time (a real
    /// node's answers would race the auto-advancing clock).
    #[cfg(any(test, feature = "test-util"))]
    pub fn mocked(asserter: alloy::transports::mock::Asserter) -> Self {
        Self {
            provider: ProviderBuilder::new()
                .disable_recommended_fillers()
                .connect_mocked_client(asserter),
            timeout: Duration::from_secs(1),
            retries: 0,
            poll_interval: Duration::from_millis(10),
        }
    }

    /// The underlying alloy provider, for calls this wrapper does not cover
    /// (tests use it for anvil's own methods).
    pub fn provider(&self) -> &RootProvider<Ethereum> {
        &self.provider
    }

    /// How often callers should poll for blocks and receipts.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .with_max_times(self.retries)
    }

    /// Runs one RPC call with the timeout and the retry policy. Reverts
    /// become [`ChainError::Reverted`], with the reason decoded.
    pub async fn call<T, F, Fut>(&self, method: &'static str, mut f: F) -> Result<T, ChainError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, TransportError>>,
    {
        let timeout = self.timeout;
        let attempt = || {
            let fut = f();
            async move {
                match tokio::time::timeout(timeout, fut).await {
                    Ok(Ok(value)) => Ok(value),
                    // Scrubbed here, the one place every RPC error passes,
                    // before it is logged, classified or kept as a reason.
                    Ok(Err(err)) => Err(Attempt::Rpc(without_urls(err))),
                    Err(_) => Err(Attempt::Timeout),
                }
            }
        };
        attempt
            .retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(Attempt::is_transient)
            .notify(|err, delay| match err {
                Attempt::Timeout => {
                    tracing::warn!(method, ?delay, "chain RPC call timed out; retrying")
                }
                Attempt::Rpc(err) => {
                    tracing::warn!(method, ?delay, error = %err, "chain RPC call failed; retrying")
                }
            })
            .await
            .map_err(|err| match err {
                Attempt::Timeout => ChainError::Timeout {
                    method,
                    after: timeout,
                },
                Attempt::Rpc(source) => {
                    if let Some(reason) = RevertReason::from_rpc_error(&source) {
                        return ChainError::Reverted {
                            reason: Box::new(reason),
                            tx_hash: None,
                        };
                    }
                    match classify(&source) {
                        ErrorClass::Transient if source.is_transport_error() => {
                            ChainError::Unreachable { method, source }
                        }
                        _ => ChainError::Rpc { method, source },
                    }
                }
            })
    }

    /// `eth_chainId`.
    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        self.call("eth_chainId", || self.provider.get_chain_id().into_future())
            .await
    }

    /// `eth_blockNumber`.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.call("eth_blockNumber", || {
            self.provider.get_block_number().into_future()
        })
        .await
    }

    /// `eth_getCode` at the latest block.
    pub async fn code_at(&self, address: Address) -> Result<Bytes, ChainError> {
        self.call("eth_getCode", || {
            self.provider.get_code_at(address).latest().into_future()
        })
        .await
    }

    /// `eth_getTransactionCount` at `pending`: the next nonce the node
    /// expects, counting transactions in its pool.
    pub async fn pending_nonce(&self, address: Address) -> Result<u64, ChainError> {
        self.call("eth_getTransactionCount", || {
            self.provider
                .get_transaction_count(address)
                .pending()
                .into_future()
        })
        .await
    }

    /// `eth_getBalance` at `latest`: the account's ETH, in wei.
    pub async fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.call("eth_getBalance", || {
            self.provider.get_balance(address).latest().into_future()
        })
        .await
    }

    /// `eth_getTransactionCount` at `latest`: transactions mined so far.
    pub async fn mined_nonce(&self, address: Address) -> Result<u64, ChainError> {
        self.call("eth_getTransactionCount", || {
            self.provider
                .get_transaction_count(address)
                .latest()
                .into_future()
        })
        .await
    }

    /// `eth_feeHistory` over the last [`FEE_HISTORY_BLOCKS`] blocks.
    pub async fn fee_history(&self) -> Result<FeeHistory, ChainError> {
        self.call("eth_feeHistory", || {
            self.provider.get_fee_history(
                FEE_HISTORY_BLOCKS,
                BlockNumberOrTag::Latest,
                &[FEE_HISTORY_PERCENTILE],
            )
        })
        .await
    }

    /// `eth_estimateGas`; a revert comes back as [`ChainError::Reverted`].
    pub async fn estimate_gas(&self, tx: &TransactionRequest) -> Result<u64, ChainError> {
        self.call("eth_estimateGas", || {
            self.provider.estimate_gas(tx.clone()).into_future()
        })
        .await
    }

    /// `eth_call` at `block` (latest when `None`).
    pub async fn eth_call(
        &self,
        tx: &TransactionRequest,
        block: Option<u64>,
    ) -> Result<Bytes, ChainError> {
        let block = block.map_or(BlockNumberOrTag::Latest, BlockNumberOrTag::Number);
        self.call("eth_call", || {
            self.provider
                .call(tx.clone())
                .block(block.into())
                .into_future()
        })
        .await
    }

    /// A typed view call on a contract, encoded and decoded by the `sol!` bindings.
    pub async fn view<C: SolCall>(
        &self,
        contract: Address,
        call: &C,
    ) -> Result<C::Return, ChainError> {
        let tx = TransactionRequest::default()
            .to(contract)
            .input(Bytes::from(call.abi_encode()).into());
        let out = self.eth_call(&tx, None).await?;
        C::abi_decode_returns(&out).map_err(|err| {
            ChainError::Config(format!(
                "contract at {contract} answered {} with undecodable data ({err}): is it the HAVEN contract?",
                C::SIGNATURE
            ))
        })
    }

    /// `eth_sendRawTransaction` of signed bytes. Resending the same bytes is
    /// harmless, so transport failures are retried here too; the node's
    /// "already known" is then reported as an error the sender treats as success.
    pub async fn send_raw(&self, raw: &[u8]) -> Result<TxHash, ChainError> {
        self.call("eth_sendRawTransaction", || async {
            Ok(*self.provider.send_raw_transaction(raw).await?.tx_hash())
        })
        .await
    }

    /// `eth_getTransactionReceipt`.
    pub async fn receipt(&self, hash: TxHash) -> Result<Option<TransactionReceipt>, ChainError> {
        self.call("eth_getTransactionReceipt", || {
            self.provider.get_transaction_receipt(hash).into_future()
        })
        .await
    }

    /// `eth_getStorageAt`-free role check helper: whether `account` holds `role`.
    pub async fn has_role(
        &self,
        contract: Address,
        role: B256,
        account: Address,
    ) -> Result<bool, ChainError> {
        self.view(
            contract,
            &crate::contract::HAVEN::hasRoleCall { role, account },
        )
        .await
    }
}

/// The URL type alloy's HTTP transport takes.
mod reqwest_url {
    pub(super) use alloy::transports::http::reqwest::Url;
}
