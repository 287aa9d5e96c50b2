//! API-key authentication and the per-key rate limit of the token commands.
//!
//! [`Operator`] is an extractor: a handler that takes one only runs for a
//! caller with a valid `X-API-Key` that is within its rate limit. Keys are
//! compared in constant time through their SHA-256 digests, every active key
//! is tried, and a key is only ever named by its position in `API_KEYS`
//! (`key #2`), never by its value.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::metrics::Metrics;

/// Header carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The active API keys, kept as SHA-256 digests. `Debug` never prints them.
#[derive(Clone)]
pub struct ApiKeys(Arc<Vec<[u8; 32]>>);

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} active, [redacted])", self.0.len())
    }
}

/// Why the `API_KEYS` setting is unusable (the message never holds a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeysError {
    /// No key in the list.
    #[error("at least one API key is required")]
    Empty,
    /// A key shorter than 8 characters.
    #[error("API key #{0} is shorter than 8 characters")]
    TooShort(usize),
}

impl ApiKeys {
    /// Parses a comma-separated list of keys.
    pub fn parse(list: &str) -> Result<Self, ApiKeysError> {
        let mut digests = Vec::new();
        for (i, key) in list.split(',').map(str::trim).enumerate() {
            if key.is_empty() {
                continue;
            }
            if key.len() < 8 {
                return Err(ApiKeysError::TooShort(i + 1));
            }
            digests.push(Sha256::digest(key.as_bytes()).into());
        }
        if digests.is_empty() {
            return Err(ApiKeysError::Empty);
        }
        Ok(Self(Arc::new(digests)))
    }

    /// The position of `presented` among the active keys, compared in
    /// constant time against every one of them.
    pub fn identify(&self, presented: &[u8]) -> Option<usize> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for (i, key) in self.0.iter().enumerate() {
            if bool::from(key.ct_eq(&digest)) {
                found = Some(i);
            }
        }
        found
    }
}

/// Token commands allowed per API key, per minute.
#[derive(Debug, Clone)]
pub struct RateLimit(Option<Arc<DefaultKeyedRateLimiter<usize>>>);

impl RateLimit {
    /// `per_minute` requests per key per minute (bursts up to that many);
    /// 0 turns the limit off.
    pub fn per_minute(per_minute: u32) -> Self {
        Self(
            NonZeroU32::new(per_minute).map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n)))),
        )
    }

    /// Takes one request for key `key`; `Err(seconds)` says when to retry.
    pub fn check(&self, key: usize) -> Result<(), u64> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Retry-After is whole seconds; round up so a retry at that time passes.
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets keys that have been idle long enough to be full again.
    pub fn shrink(&self) {
        if let Some(limiter) = &self.0 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// A caller with a valid API key, within its rate limit.
#[derive(Debug, Clone, Copy)]
pub struct Operator {
    /// Position of the key in `API_KEYS`, for logs.
    pub key_index: usize,
}

// Generic over the state, so this module needs only the three parts it reads
// and never the router's state type (which would import it back).
impl<S> FromRequestParts<S> for Operator
where
    S: Send + Sync,
    ApiKeys: FromRef<S>,
    RateLimit: FromRef<S>,
    Metrics: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let metrics = Metrics::from_ref(state);
        let Some(presented) = parts.headers.get(API_KEY_HEADER) else {
            metrics.auth_failure("missing_api_key");
            return Err(Error::MissingApiKey);
        };
        let Some(key_index) = ApiKeys::from_ref(state).identify(presented.as_bytes()) else {
            metrics.auth_failure("invalid_api_key");
            return Err(Error::InvalidApiKey);
        };
        RateLimit::from_ref(state)
            .check(key_index)
            .map_err(|retry_after_secs| {
                metrics.rate_limited();
                Error::RateLimited { retry_after_secs }
            })?;
        Ok(Self { key_index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_position_and_never_printed() {
        let keys = ApiKeys::parse("first-key-123, second-key-456").unwrap();
        assert_eq!(keys.identify(b"first-key-123"), Some(0));
        assert_eq!(keys.identify(b"second-key-456"), Some(1));
        assert_eq!(keys.identify(b"second-key-45"), None);
        assert_eq!(keys.identify(b""), None);
        assert!(!format!("{keys:?}").contains("key-123"));
    }

    #[test]
    fn bad_key_lists_are_refused() {
        assert_eq!(ApiKeys::parse(" , ").unwrap_err(), ApiKeysError::Empty);
        assert_eq!(
            ApiKeys::parse("long-enough,short").unwrap_err(),
            ApiKeysError::TooShort(2)
        );
    }

    #[test]
    fn the_limit_refuses_past_the_burst_and_says_when_to_retry() {
        let limit = RateLimit::per_minute(3);
        for _ in 0..3 {
            limit.check(0).unwrap();
        }
        let retry = limit.check(0).unwrap_err();
        assert!((1..=20).contains(&retry), "{retry}");
        // Keys are limited separately.
        limit.check(1).unwrap();
        // 0 is off.
        let off = RateLimit::per_minute(0);
        for _ in 0..1000 {
            off.check(0).unwrap();
        }
    }
}
