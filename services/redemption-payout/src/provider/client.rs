//! [`PayoutClient`]: the HTTP client of the payout provider, with its
//! timeouts, its immediate retries and the error classes the saga acts on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use haven_common::config::Redacted;
use haven_common::telemetry::ErrorChain;
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{Payout, PayoutLookup, PayoutRequest};
use crate::config::ProviderConfig;
use crate::metrics::Metrics;

/// Longest pause between two immediate retries.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Longest error body kept for a log line or a `failure_reason`.
const MAX_DETAIL: usize = 300;
/// The header the provider dedupes creations on.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Why a call to the provider failed, by what the caller should do about it
/// (also the `class` label of `haven_payout_provider_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// No answer within the timeout: retried.
    Timeout,
    /// No connection: retried.
    Connect,
    /// 5xx: retried.
    Server,
    /// 408, 409 (a request with the same key in progress), 425, 429: retried.
    Throttled,
    /// 401 or 403: our credentials are wrong. Retried later, never a
    /// refusal of the payout (a bad token must not refund every redemption).
    Auth,
    /// Any other 4xx: the provider refuses this payout for good.
    Rejected,
    /// A 2xx whose body is not the contract's JSON: retried later.
    InvalidResponse,
    /// Anything else that went wrong on the way (a broken body): retried.
    Other,
}

impl ErrorClass {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connect => "connect",
            ErrorClass::Server => "server",
            ErrorClass::Throttled => "throttled",
            ErrorClass::Auth => "auth",
            ErrorClass::Rejected => "rejected",
            ErrorClass::InvalidResponse => "invalid_response",
            ErrorClass::Other => "other",
        }
    }

    /// The class of an HTTP status that is not a success.
    pub fn of_status(status: StatusCode) -> ErrorClass {
        match status.as_u16() {
            401 | 403 => ErrorClass::Auth,
            408 | 409 | 425 | 429 => ErrorClass::Throttled,
            400..=499 => ErrorClass::Rejected,
            500..=599 => ErrorClass::Server,
            // 1xx/3xx (redirects are not followed): not the contract.
            _ => ErrorClass::InvalidResponse,
        }
    }

    /// Whether an immediate retry with the same idempotency key may succeed.
    pub fn retry_now(self) -> bool {
        matches!(
            self,
            ErrorClass::Timeout
                | ErrorClass::Connect
                | ErrorClass::Server
                | ErrorClass::Throttled
                | ErrorClass::Other
        )
    }

    /// Whether a creation that failed this way may still have created the
    /// payout: it may have been received and acted on before the answer was
    /// lost (a timeout, a 5xx, a 409 "in progress", a broken answer). Only
    /// a refused connection, our credentials and a plain refusal prove that
    /// nothing was created.
    pub fn may_have_created(self) -> bool {
        !matches!(
            self,
            ErrorClass::Connect | ErrorClass::Auth | ErrorClass::Rejected
        )
    }
}

/// A payout creation that did not end with a payout.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct CreateFailure {
    /// How the last attempt failed.
    pub error: ProviderError,
    /// Whether any attempt of the call may have created the payout (see
    /// [`ErrorClass::may_have_created`]): then even a refusal at the end
    /// proves nothing about the payout.
    pub may_exist: bool,
}

impl CreateFailure {
    /// The provider refused, and nothing can have been created: the only
    /// creation failure a refund may follow.
    pub fn is_clean_refusal(&self) -> bool {
        self.error.is_rejection() && !self.may_exist
    }
}

/// A failed call to the provider. Never holds the URL or the token.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// No answer within the timeout, or no connection.
    #[error("the payout provider is unreachable ({})", .class.as_str())]
    Unreachable {
        /// [`ErrorClass::Timeout`], [`ErrorClass::Connect`] or [`ErrorClass::Other`].
        class: ErrorClass,
        /// What reqwest said (without the URL).
        detail: String,
    },
    /// The provider answered a status that is not a success.
    #[error("the payout provider answered {status}: {detail}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body (the provider's `detail` when it sent one).
        detail: String,
    },
    /// A success whose body is not a [`Payout`].
    #[error("the payout provider's answer is not a payout: {0}")]
    InvalidResponse(String),
}

impl ProviderError {
    /// What kind of failure it is.
    pub fn class(&self) -> ErrorClass {
        match self {
            ProviderError::Unreachable { class, .. } => *class,
            ProviderError::Status { status, .. } => StatusCode::from_u16(*status)
                .map(ErrorClass::of_status)
                .unwrap_or(ErrorClass::InvalidResponse),
            ProviderError::InvalidResponse(_) => ErrorClass::InvalidResponse,
        }
    }

    /// The provider refused the payout for good (a 4xx that is not about
    /// credentials or pacing).
    pub fn is_rejection(&self) -> bool {
        self.class() == ErrorClass::Rejected
    }

    fn from_reqwest(err: reqwest::Error) -> Self {
        let class = if err.is_timeout() {
            ErrorClass::Timeout
        } else if err.is_connect() {
            ErrorClass::Connect
        } else {
            ErrorClass::Other
        };
        // Without the URL: it may carry credentials.
        let detail = ErrorChain(&err.without_url()).to_string();
        ProviderError::Unreachable { class, detail }
    }
}

/// Which call, the `operation` label of the request duration histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Create,
    Status,
    Lookup,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Status => "status",
            Operation::Lookup => "lookup",
        }
    }
}

/// The payout provider's client; cheap to clone.
#[derive(Clone)]
pub struct PayoutClient {
    http: reqwest::Client,
    base: Redacted<Url>,
    token: Option<Redacted<String>>,
    retries: usize,
    retry_delay: Duration,
    metrics: Metrics,
}

impl std::fmt::Debug for PayoutClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayoutClient")
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl PayoutClient {
    /// A client for the configured provider.
    pub fn new(config: &ProviderConfig, metrics: Metrics) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.payout_provider_timeout)
            .connect_timeout(config.payout_provider_connect_timeout)
            // A redirect would resend the token elsewhere; the contract has none.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "haven-redemption-payout/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Self {
            http,
            base: config.payout_provider_url.clone(),
            token: config.payout_provider_token.clone(),
            retries: config.payout_provider_retries as usize,
            retry_delay: config.payout_provider_retry_delay,
            metrics,
        })
    }

    /// `POST /payouts` with `Idempotency-Key: <key>`: creates the payout or
    /// returns the one the provider already has under `key`. Retried
    /// immediately (same key, same body) on timeouts, connection failures,
    /// 5xx and 408/409/425/429. A failure says whether any attempt may
    /// have created the payout.
    #[tracing::instrument(skip_all, fields(idempotency_key = %key, method = request.method.as_str()))]
    pub async fn create(
        &self,
        key: Uuid,
        request: &PayoutRequest,
    ) -> Result<Payout, CreateFailure> {
        let url = self.url(&["payouts"]);
        let key = key.to_string();
        let may_exist = AtomicBool::new(false);
        self.with_retries(Operation::Create, Some(&may_exist), || {
            self.authorized(
                self.http
                    .post(url.clone())
                    .header(IDEMPOTENCY_KEY, key.as_str())
                    .json(request),
            )
        })
        .await
        .map_err(|error| CreateFailure {
            may_exist: may_exist.load(Ordering::Relaxed),
            error,
        })
    }

    /// `GET /payouts/{id}`: the payout's current status.
    #[tracing::instrument(skip_all, fields(payout_id = %id))]
    pub async fn status(&self, id: &str) -> Result<Payout, ProviderError> {
        let url = self.url(&["payouts", id]);
        self.with_retries(Operation::Status, None, || {
            self.authorized(self.http.get(url.clone()))
        })
        .await
    }

    /// `GET /payouts?reference=...`: the payout created for `reference`
    /// (`Some`), or the provider's word that there is none (`None`). Every
    /// other answer is an error, never a "none": a bare 404 (a wrong URL),
    /// an answer about another reference, or several payouts for one.
    #[tracing::instrument(skip_all, fields(reference = %reference))]
    pub async fn lookup(&self, reference: &str) -> Result<Option<Payout>, ProviderError> {
        let mut url = self.url(&["payouts"]);
        url.query_pairs_mut().append_pair("reference", reference);
        let found: PayoutLookup = self
            .with_retries(Operation::Lookup, None, || {
                self.authorized(self.http.get(url.clone()))
            })
            .await?;
        if found.reference != reference {
            return Err(ProviderError::InvalidResponse(
                "the lookup answered about another reference".to_owned(),
            ));
        }
        if found.payouts.len() > 1 {
            return Err(ProviderError::InvalidResponse(format!(
                "the lookup found {} payouts for one reference",
                found.payouts.len()
            )));
        }
        Ok(found.payouts.into_iter().next())
    }

    /// `builder` with the bearer token, when one is configured.
    fn authorized(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => builder.bearer_auth(token.expose()),
            None => builder,
        }
    }

    /// `base` with `segments` appended (each percent-encoded).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.expose().clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(self.retry_delay.min(MAX_RETRY_DELAY))
            .with_max_delay(MAX_RETRY_DELAY)
            .with_jitter()
            .with_max_times(self.retries)
    }

    /// Sends `build()` until it succeeds or fails in a way an immediate
    /// retry cannot mend; `may_exist` (for a creation) is set when any
    /// attempt failed in a way that may have created the payout.
    async fn with_retries<T, F>(
        &self,
        operation: Operation,
        may_exist: Option<&AtomicBool>,
        build: F,
    ) -> Result<T, ProviderError>
    where
        T: DeserializeOwned,
        F: Fn() -> reqwest::RequestBuilder,
    {
        let attempt = || async {
            let started = Instant::now();
            let result = self.send_once(build()).await;
            self.metrics
                .provider_request(operation.as_str(), started.elapsed());
            if let Err(err) = &result {
                self.metrics.provider_error(err.class());
                if let Some(flag) = may_exist
                    && err.class().may_have_created()
                {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            result
        };
        attempt
            .retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(|err: &ProviderError| err.class().retry_now())
            .notify(|err, delay| {
                tracing::warn!(
                    operation = operation.as_str(),
                    class = err.class().as_str(),
                    error = %err,
                    ?delay,
                    "payout provider call failed; retrying with the same idempotency key"
                );
            })
            .await
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ProviderError> {
        let response = request.send().await.map_err(ProviderError::from_reqwest)?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(ProviderError::from_reqwest)?;
        if !status.is_success() {
            return Err(ProviderError::Status {
                status: status.as_u16(),
                detail: detail_of(&body),
            });
        }
        serde_json::from_slice::<T>(&body)
            .map_err(|err| ProviderError::InvalidResponse(err.to_string()))
    }
}

/// The provider's `detail` (or `error`/`message`) when the body is JSON,
/// else the start of the body, cut to [`MAX_DETAIL`] characters.
fn detail_of(body: &[u8]) -> String {
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            ["detail", "error", "message"]
                .iter()
                .find_map(|key| value.get(key).map(ToString::to_string))
        })
        .map(|text| text.trim_matches('"').to_owned())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    text.chars().take(MAX_DETAIL).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_once() {
        let class = |code| ErrorClass::of_status(StatusCode::from_u16(code).unwrap());
        assert_eq!(class(500), ErrorClass::Server);
        assert_eq!(class(503), ErrorClass::Server);
        assert_eq!(class(400), ErrorClass::Rejected);
        assert_eq!(class(422), ErrorClass::Rejected);
        assert_eq!(class(404), ErrorClass::Rejected);
        assert_eq!(class(401), ErrorClass::Auth);
        assert_eq!(class(403), ErrorClass::Auth);
        assert_eq!(class(429), ErrorClass::Throttled);
        assert_eq!(class(409), ErrorClass::Throttled);
        assert_eq!(class(302), ErrorClass::InvalidResponse);
        assert!(class(500).retry_now());
        assert!(class(429).retry_now());
        assert!(!class(422).retry_now());
        assert!(!class(401).retry_now());
        assert!(ErrorClass::Timeout.retry_now());
        assert!(ErrorClass::Connect.retry_now());
    }

    #[test]
    fn only_a_refused_connection_credentials_or_a_refusal_prove_nothing_was_created() {
        assert!(!ErrorClass::Connect.may_have_created());
        assert!(!ErrorClass::Auth.may_have_created());
        assert!(!ErrorClass::Rejected.may_have_created());
        for class in [
            ErrorClass::Timeout,
            ErrorClass::Server,
            ErrorClass::Throttled,
            ErrorClass::InvalidResponse,
            ErrorClass::Other,
        ] {
            assert!(class.may_have_created(), "{class:?}");
        }
        let refusal = |may_exist| CreateFailure {
            error: ProviderError::Status {
                status: 422,
                detail: String::new(),
            },
            may_exist,
        };
        assert!(refusal(false).is_clean_refusal());
        assert!(
            !refusal(true).is_clean_refusal(),
            "a refusal after a lost answer"
        );
    }

    #[test]
    fn only_a_plain_4xx_is_a_rejection() {
        let status = |status| ProviderError::Status {
            status,
            detail: String::new(),
        };
        assert!(status(422).is_rejection());
        assert!(!status(401).is_rejection());
        assert!(!status(503).is_rejection());
        assert!(!ProviderError::InvalidResponse("x".into()).is_rejection());
    }

    #[test]
    fn error_details_prefer_the_json_detail_and_are_short() {
        assert_eq!(
            detail_of(br#"{"detail":"account closed"}"#),
            "account closed"
        );
        assert_eq!(
            detail_of(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(detail_of(b""), "(empty body)");
        assert_eq!(detail_of(&[b'x'; 1000]).len(), MAX_DETAIL);
    }
}
