//! The crate's one error type, and the one place RPC failures are classified
//! into "retry" (transport trouble) and "never retry" (reverts, rejections).

use std::fmt;
use std::time::Duration;

use alloy::primitives::{Address, Bytes, TxHash};
use alloy::sol_types::{Panic, Revert, SolError, SolInterface};
use alloy::transports::{RpcError, TransportError, TransportErrorKind};

use crate::contract::HAVEN::HAVENErrors;

/// Everything that can go wrong talking to the chain (or to the storage of
/// its leases and deployments).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A setting is malformed or inconsistent (names the setting).
    #[error("invalid chain configuration: {0}")]
    Config(String),

    /// The RPC endpoint did not answer at all (after retries).
    #[error("cannot reach the chain RPC endpoint (RPC_URL) in {method}")]
    Unreachable {
        /// JSON-RPC method that failed.
        method: &'static str,
        /// Last transport error.
        #[source]
        source: TransportError,
    },

    /// An RPC call did not answer in time (after retries).
    #[error("chain RPC call {method} timed out after {after:?} (RPC_URL, RPC_TIMEOUT)")]
    Timeout {
        /// JSON-RPC method that timed out.
        method: &'static str,
        /// The per-call timeout.
        after: Duration,
    },

    /// The node answered with an error that is not a revert.
    #[error("chain RPC call {method} failed")]
    Rpc {
        /// JSON-RPC method that failed.
        method: &'static str,
        /// The error as returned by the node.
        #[source]
        source: TransportError,
    },

    /// The endpoint serves another chain than the configured one.
    #[error("wrong chain: RPC_URL serves chain id {actual}, CHAIN_ID is {expected}")]
    WrongChainId {
        /// `CHAIN_ID`.
        expected: u64,
        /// What `eth_chainId` answered.
        actual: u64,
    },

    /// Nothing is deployed at the configured contract address.
    #[error("no contract code at CONTRACT_ADDRESS {address} on chain {chain_id}")]
    NoContractCode {
        /// The configured address.
        address: Address,
        /// The chain that was asked.
        chain_id: u64,
    },

    /// A configured signer lacks a role the service needs.
    #[error("signer {signer} lacks {role} on the HAVEN contract at {contract}")]
    MissingRole {
        /// The signer's address.
        signer: Address,
        /// Role name, e.g. `MINTER_ROLE`.
        role: &'static str,
        contract: Address,
    },

    /// The call or transaction reverted; never retried as is.
    #[error("transaction reverted: {reason}")]
    Reverted {
        /// Decoded revert reason (boxed: the contract's error enum is large).
        reason: Box<RevertReason>,
        /// The mined transaction, when it got that far (None: refused by gas estimation).
        tx_hash: Option<TxHash>,
    },

    /// The node refused a signed transaction for a reason that resending
    /// the same bytes cannot fix (insufficient funds, gas limit, ...).
    #[error("the node rejected the transaction: {message}")]
    Rejected {
        /// The node's message.
        message: String,
    },

    /// The network asks for more than the configured maximum fee.
    #[error("network fees need {needed} wei/gas, above MAX_FEE_PER_GAS {max}")]
    FeeAboveMaximum {
        /// Base fee plus minimum tip, in wei per gas.
        needed: u128,
        /// The configured maximum.
        max: u128,
    },

    /// Another transaction (not one of ours) was mined with our nonce.
    #[error("nonce {nonce} of {signer} was used by a transaction this sender did not send")]
    NonceTaken { signer: Address, nonce: u64 },

    /// This process no longer holds the signer's lease: it must stop sending.
    #[error("the lease on signer {signer} was lost")]
    LeaseLost { signer: Address },

    /// Every signer of the pool is leased by another replica.
    #[error("every signer of the pool is leased by another replica")]
    NoFreeSigner,

    /// A signer key or mnemonic could not be used.
    #[error("signer error: {0}")]
    Signer(String),

    /// The signer did not sign this time (a KMS or remote signer that did
    /// not answer, throttled, or refused); nothing was sent, no nonce used.
    #[error("the signer did not sign: {0}")]
    SignerUnavailable(String),

    /// Signer leases, nonces or deployment records could not be read or
    /// written; the store says whether that may clear up.
    #[error("lease or deployment storage failed")]
    Storage(#[from] crate::store::StorageError),
}

impl ChainError {
    /// Whether trying the same operation again later may succeed: transport
    /// trouble, timeouts, fee spikes, a lost lease (another replica carries
    /// on). Reverts, rejections and bad configuration are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            ChainError::Unreachable { .. }
            | ChainError::Timeout { .. }
            | ChainError::FeeAboveMaximum { .. }
            | ChainError::LeaseLost { .. }
            | ChainError::NoFreeSigner
            | ChainError::SignerUnavailable(_) => true,
            ChainError::Storage(err) => err.is_transient(),
            ChainError::Rpc { source, .. } => classify(source) == ErrorClass::Transient,
            ChainError::Config(_)
            | ChainError::WrongChainId { .. }
            | ChainError::NoContractCode { .. }
            | ChainError::MissingRole { .. }
            | ChainError::Reverted { .. }
            | ChainError::Rejected { .. }
            | ChainError::NonceTaken { .. }
            | ChainError::Signer(_) => false,
        }
    }

    /// The decoded revert, when this is one.
    pub fn revert_reason(&self) -> Option<&RevertReason> {
        match self {
            ChainError::Reverted { reason, .. } => Some(reason.as_ref()),
            _ => None,
        }
    }
}

/// What to do about a failed RPC call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Connection refused or reset, timeouts, 5xx, rate limits, a node that
    /// returned garbage: the same call may succeed in a moment.
    Transient,
    /// The EVM reverted: the same call reverts again, never retry.
    Revert,
    /// The node refused the request itself (bad params, nonce too low,
    /// underpriced, insufficient funds...): retrying the same request is useless.
    Permanent,
}

/// `err` with every URL in its transport error's text replaced. reqwest's
/// errors read "error sending request for url (https://host/<api key>)", and
/// an RPC URL often carries its provider's key in the path or as user info;
/// once scrubbed the error can be logged, become a retry reason or be
/// stored. Only a transport failure's own text is rebuilt; the node's
/// answers (reverts, error payloads) are kept as they are, and the class
/// [`classify`] gives is unchanged.
pub fn without_urls(err: TransportError) -> TransportError {
    match err {
        RpcError::Transport(TransportErrorKind::Custom(inner)) => {
            let text = inner.to_string();
            if text.contains("://") {
                TransportErrorKind::custom_str(&scrub_urls(&text))
            } else {
                RpcError::Transport(TransportErrorKind::Custom(inner))
            }
        }
        other => other,
    }
}

/// `text` with each `scheme://...` replaced by `[url redacted]` (up to the
/// next space, quote or closing bracket).
pub fn scrub_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let scheme_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | ']' | '"' | '\'' | '>' | ','))
            .map_or(rest.len(), |i| at + i);
        out.push_str(&rest[..scheme_start]);
        out.push_str("[url redacted]");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Classifies an RPC failure. The only place retry decisions are made.
pub fn classify(err: &TransportError) -> ErrorClass {
    match err {
        RpcError::Transport(kind) => match kind {
            TransportErrorKind::NonRetryable(_) | TransportErrorKind::PubsubUnavailable => {
                ErrorClass::Permanent
            }
            TransportErrorKind::HttpError(http) => http_class(http.status),
            TransportErrorKind::HttpErrorWithRetryAfter { error, .. } => http_class(error.status),
            // Connection refused/reset, DNS, reqwest timeouts, a backend that went away.
            _ => ErrorClass::Transient,
        },
        RpcError::ErrorResp(payload) => {
            if payload.as_revert_data().is_some()
                || payload.code == 3
                || payload.message.to_ascii_lowercase().contains("revert")
            {
                ErrorClass::Revert
            } else if payload.is_retry_err() {
                ErrorClass::Transient
            } else {
                ErrorClass::Permanent
            }
        }
        // A lagging node behind a load balancer answers null or garbage now
        // and then; the next call usually reaches a healthy one.
        RpcError::NullResp | RpcError::DeserError { .. } => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

fn http_class(status: u16) -> ErrorClass {
    match status {
        408 | 425 | 429 | 500..=599 => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

/// Why the node refused `eth_sendRawTransaction`, for the cases the sender
/// handles itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRejection {
    /// The node already has this exact transaction: a resend succeeded.
    AlreadyKnown,
    /// The nonce is below the account's: someone used it (or our earlier send landed).
    NonceTooLow,
    /// A transaction with this nonce is pending and ours does not pay enough more.
    Underpriced,
}

/// Recognises the node messages of [`SendRejection`] (geth, reth, anvil,
/// erigon and nethermind wordings).
pub fn send_rejection(err: &TransportError) -> Option<SendRejection> {
    let payload = err.as_error_resp()?;
    let msg = payload.message.to_ascii_lowercase();
    if msg.contains("already known")
        || msg.contains("already imported")
        || msg.contains("known transaction")
        || msg.contains("transaction already exists")
    {
        Some(SendRejection::AlreadyKnown)
    } else if msg.contains("nonce too low") || msg.contains("nonce is too low") {
        Some(SendRejection::NonceTooLow)
    } else if msg.contains("underpriced") || msg.contains("fee too low") {
        Some(SendRejection::Underpriced)
    } else {
        None
    }
}

/// A decoded revert.
#[derive(Clone, PartialEq, Eq)]
pub enum RevertReason {
    /// A custom error of the HAVEN contract or the OpenZeppelin code it
    /// inherits, e.g. `AccessControlUnauthorizedAccount`.
    Contract(HAVENErrors),
    /// `revert("...")` / `require(cond, "...")`.
    Message(String),
    /// A Solidity panic (`Panic(uint256)`): overflow, division by zero, ...
    Panic(String),
    /// Revert data no known error matches.
    Unknown(Bytes),
    /// The node said the call reverted but gave no data.
    NoData,
}

impl RevertReason {
    /// Decodes revert data: the contract's errors first, then `Error(string)`
    /// and `Panic(uint256)`.
    pub fn decode(data: &[u8]) -> Self {
        if data.is_empty() {
            return RevertReason::NoData;
        }
        if let Ok(err) = HAVENErrors::abi_decode(data) {
            return RevertReason::Contract(err);
        }
        if let Ok(revert) = Revert::abi_decode(data) {
            return RevertReason::Message(revert.reason().to_owned());
        }
        if let Ok(panic) = Panic::abi_decode(data) {
            return RevertReason::Panic(panic.to_string());
        }
        RevertReason::Unknown(Bytes::copy_from_slice(data))
    }

    /// Decodes the revert carried by an RPC error, if it is one.
    pub fn from_rpc_error(err: &TransportError) -> Option<Self> {
        if classify(err) != ErrorClass::Revert {
            return None;
        }
        let payload = err.as_error_resp()?;
        Some(match payload.as_revert_data() {
            Some(data) => Self::decode(&data),
            None => RevertReason::Message(payload.message.to_string()),
        })
    }

    /// Name of the contract error, e.g. `"AccessControlUnauthorizedAccount"`.
    pub fn contract_error_name(&self) -> Option<&'static str> {
        match self {
            RevertReason::Contract(err) => HAVENErrors::name_by_selector(err.selector()),
            _ => None,
        }
    }
}

impl fmt::Display for RevertReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevertReason::Contract(err) => write!(f, "{err:?}"),
            RevertReason::Message(msg) => write!(f, "revert: {msg}"),
            RevertReason::Panic(panic) => f.write_str(panic),
            RevertReason::Unknown(data) => write!(f, "unknown revert data {data}"),
            RevertReason::NoData => f.write_str("reverted without data"),
        }
    }
}

impl fmt::Debug for RevertReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Whether `err` is a SolError of type `E` (helper for callers matching a
/// specific contract error without naming the enum variant).
pub fn is_contract_error<E: SolError>(reason: &RevertReason) -> bool {
    matches!(reason, RevertReason::Contract(err) if err.selector() == E::SELECTOR)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message
mod tests {
    use super::*;
    use crate::contract::HAVEN;
    use alloy::primitives::{B256, address};
    use alloy::rpc::json_rpc::ErrorPayload;
    use alloy::sol_types::SolError;

    fn resp(code: i64, message: &str, data: Option<&str>) -> TransportError {
        let data = data.map(|d| serde_json::value::to_raw_value(d).unwrap());
        RpcError::ErrorResp(ErrorPayload {
            code,
            message: message.to_owned().into(),
            data,
        })
    }

    #[test]
    fn transport_failures_are_transient() {
        assert_eq!(
            classify(&TransportErrorKind::custom_str("connection refused")),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(&TransportErrorKind::backend_gone()),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(&TransportErrorKind::http_error(503, String::new())),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(&TransportErrorKind::http_error(429, String::new())),
            ErrorClass::Transient
        );
        assert_eq!(classify(&RpcError::NullResp), ErrorClass::Transient);
        assert_eq!(
            classify(&resp(-32005, "limit exceeded", None)),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(&resp(-32000, "header not found", None)),
            ErrorClass::Transient
        );
    }

    #[test]
    fn bad_requests_are_permanent() {
        assert_eq!(
            classify(&TransportErrorKind::http_error(401, "unauthorized".into())),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify(&TransportErrorKind::http_error(404, String::new())),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify(&TransportErrorKind::non_retryable_str("malformed")),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify(&resp(-32000, "nonce too low", None)),
            ErrorClass::Permanent
        );
        assert_eq!(
            classify(&resp(-32601, "method not found", None)),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn reverts_are_never_transient() {
        let data = HAVEN::EnforcedPause {}.abi_encode();
        let hex = format!("0x{}", hex::encode(&data));
        assert_eq!(
            classify(&resp(3, "execution reverted", Some(&hex))),
            ErrorClass::Revert
        );
        assert_eq!(
            classify(&resp(-32603, "execution reverted", None)),
            ErrorClass::Revert
        );
        // Even a revert whose message mentions a rate limit is a revert.
        assert_eq!(
            classify(&resp(-32000, "execution reverted: rate limit", None)),
            ErrorClass::Revert
        );
    }

    #[test]
    fn revert_data_decodes_to_the_contract_error() {
        let account = address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
        let role = B256::repeat_byte(7);
        let data = HAVEN::AccessControlUnauthorizedAccount {
            account,
            neededRole: role,
        }
        .abi_encode();
        let hex = format!("0x{}", hex::encode(&data));
        let reason = RevertReason::from_rpc_error(&resp(3, "execution reverted", Some(&hex)))
            .expect("a revert");
        assert_eq!(
            reason.contract_error_name(),
            Some("AccessControlUnauthorizedAccount")
        );
        assert!(is_contract_error::<HAVEN::AccessControlUnauthorizedAccount>(&reason));
        match reason {
            RevertReason::Contract(HAVENErrors::AccessControlUnauthorizedAccount(e)) => {
                assert_eq!(e.account, account);
                assert_eq!(e.neededRole, role);
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn string_panics_and_garbage_decode() {
        let msg = Revert::from("nope").abi_encode();
        assert_eq!(
            RevertReason::decode(&msg),
            RevertReason::Message("nope".into())
        );
        let panic = Panic::from(0x11u64).abi_encode();
        assert!(
            matches!(RevertReason::decode(&panic), RevertReason::Panic(p) if p.contains("overflow"))
        );
        assert!(matches!(
            RevertReason::decode(&[1, 2, 3, 4, 5]),
            RevertReason::Unknown(_)
        ));
        assert_eq!(RevertReason::decode(&[]), RevertReason::NoData);
        assert!(RevertReason::from_rpc_error(&resp(-32000, "nonce too low", None)).is_none());
    }

    #[test]
    fn send_rejections_are_recognised() {
        assert_eq!(
            send_rejection(&resp(-32000, "already known", None)),
            Some(SendRejection::AlreadyKnown)
        );
        assert_eq!(
            send_rejection(&resp(
                -32003,
                "nonce too low: next nonce 5, tx nonce 4",
                None
            )),
            Some(SendRejection::NonceTooLow)
        );
        assert_eq!(
            send_rejection(&resp(-32000, "replacement transaction underpriced", None)),
            Some(SendRejection::Underpriced)
        );
        assert_eq!(
            send_rejection(&resp(
                -32000,
                "insufficient funds for gas * price + value",
                None
            )),
            None
        );
        assert_eq!(
            send_rejection(&TransportErrorKind::custom_str("already known")),
            None
        );
    }

    #[test]
    fn retryability_follows_the_classification() {
        let transient = ChainError::Rpc {
            method: "eth_call",
            source: TransportErrorKind::http_error(502, String::new()),
        };
        assert!(transient.is_retryable());
        let permanent = ChainError::Rpc {
            method: "eth_call",
            source: resp(-32602, "invalid params", None),
        };
        assert!(!permanent.is_retryable());
        let reverted = ChainError::Reverted {
            reason: Box::new(RevertReason::NoData),
            tx_hash: None,
        };
        assert!(!reverted.is_retryable());
        assert!(
            ChainError::LeaseLost {
                signer: Address::ZERO
            }
            .is_retryable()
        );
    }

    #[test]
    fn urls_are_scrubbed_from_transport_errors_and_their_class_kept() {
        let text = "error sending request for url (https://user:pa55@rpc.example.com/v3/0123456789abcdef): connection refused";
        assert_eq!(
            scrub_urls(text),
            "error sending request for url ([url redacted]): connection refused"
        );
        assert_eq!(scrub_urls("no url here"), "no url here");
        assert_eq!(
            scrub_urls("a http://x/1 and \"wss://y/2\"."),
            "a [url redacted] and \"[url redacted]\"."
        );
        let err = without_urls(TransportErrorKind::custom_str(text));
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("pa55") && !shown.contains("0123456789abcdef"),
            "{shown}"
        );
        assert!(shown.contains("connection refused"), "{shown}");
        assert_eq!(classify(&err), ErrorClass::Transient);
        // The node's own answers are not touched.
        let revert = resp(3, "execution reverted", None);
        assert_eq!(classify(&without_urls(revert)), ErrorClass::Revert);
    }

    /// A real reqwest error from a refused connection names the URL; the
    /// scrubbed one does not.
    #[tokio::test]
    async fn a_refused_connection_error_is_scrubbed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://user:s3cret@127.0.0.1:{port}/key-abc123");
        let err = reqwest::Client::new().post(&url).send().await.unwrap_err();
        assert!(format!("{err}").contains("key-abc123"), "{err}");
        let transport = without_urls(TransportErrorKind::custom(err));
        let shown = format!("{transport} {transport:?}");
        assert!(
            !shown.contains("key-abc123") && !shown.contains("s3cret"),
            "{shown}"
        );
    }
}
