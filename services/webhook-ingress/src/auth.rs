//! API-key authentication and the per-key rate limit of the token commands.
//!
//! [`Operator`] is an extractor: a handler that takes one only runs for a
//! caller with a valid `X-API-Key` that is within its rate limit, from an
//! address that has not used up its wrong keys. The keys and the guess
//! throttle are `haven_common::auth`'s, shared with read-api.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use haven_common::auth::{KeyGuard, KeyRefusal};

use crate::error::Error;
use crate::metrics::Metrics;

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
#[derive(Debug, Clone)]
pub struct Operator {
    /// Position of the key in `API_KEYS` (the rate limit's key).
    pub key_index: usize,
    /// The key's name ([`KeyGuard::name`]): logged, and recorded as who
    /// asked (`requested_by`, `decided_by`). Never the key.
    pub name: String,
}

// Generic over the state, so this module needs only the three parts it reads
// and never the router's state type (which would import it back).
impl<S> FromRequestParts<S> for Operator
where
    S: Send + Sync,
    KeyGuard: FromRef<S>,
    RateLimit: FromRef<S>,
    Metrics: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let metrics = Metrics::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| *peer);
        let guard = KeyGuard::from_ref(state);
        let key_index = guard.check(&parts.headers, peer).map_err(|refusal| {
            metrics.auth_failure(refusal.reason());
            match refusal {
                KeyRefusal::Missing => Error::MissingApiKey,
                KeyRefusal::Invalid => Error::InvalidApiKey,
                KeyRefusal::Throttled { retry_after_secs } => {
                    Error::TooManyWrongKeys { retry_after_secs }
                }
            }
        })?;
        RateLimit::from_ref(state)
            .check(key_index)
            .map_err(|retry_after_secs| {
                metrics.rate_limited();
                Error::RateLimited { retry_after_secs }
            })?;
        Ok(Self {
            key_index,
            name: guard.name(key_index).to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
