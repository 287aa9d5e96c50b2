//! Retry policy: named backoff profiles, the delay before each retry, and the
//! fixed delay tiers the broker topology offers.
//!
//! A failed message is not slept on in the consumer (that would hold a
//! prefetch slot and a handler for minutes); it is republished to a TTL
//! "tier" queue that dead-letters it back into its work queue when the TTL
//! expires. RabbitMQ only expires messages at the head of a queue, so one
//! queue per delay is needed: a 5 s message behind a 10 min one would wait
//! 10 min. The computed delay is therefore mapped onto the nearest of a few
//! fixed [`RETRY_TIERS`].

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// One fixed delay the broker topology offers for retries (a TTL queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryTier {
    /// Short label used in exchange and queue names, e.g. `"30s"`.
    pub label: &'static str,
    /// How long a message waits in the tier queue before it returns to its work queue.
    pub ttl: Duration,
}

/// Every retry delay tier, shortest first. Adding one adds a queue and an exchange.
pub const RETRY_TIERS: &[RetryTier] = &[
    RetryTier {
        label: "1s",
        ttl: Duration::from_secs(1),
    },
    RetryTier {
        label: "5s",
        ttl: Duration::from_secs(5),
    },
    RetryTier {
        label: "30s",
        ttl: Duration::from_secs(30),
    },
    RetryTier {
        label: "2m",
        ttl: Duration::from_secs(120),
    },
    RetryTier {
        label: "10m",
        ttl: Duration::from_secs(600),
    },
];

/// Iterating the backoff beyond this many steps cannot change the result for
/// any sane profile (the cap is reached long before), and it bounds the work a
/// forged attempt header can cause.
const MAX_STEPS: u32 = 256;

/// A named backoff profile: capped exponential delays with jitter and a
/// limit on how many times a message is handled before it is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Name used in logs.
    pub name: &'static str,
    /// Lower bound of the first retry delay.
    pub base: Duration,
    /// No delay is ever longer than this.
    pub cap: Duration,
    /// Growth of the delay per attempt (2.0 doubles it).
    pub factor: f32,
    /// Total handling attempts (first delivery included) before a message is dead-lettered.
    pub max_attempts: u32,
}

impl RetryPolicy {
    /// Default for workers: 1 s, 2 s, 4 s, ... up to 10 min, 12 attempts
    /// (about half an hour of retries in total).
    pub const STANDARD: RetryPolicy = RetryPolicy {
        name: "standard",
        base: Duration::from_secs(1),
        cap: Duration::from_secs(600),
        factor: 2.0,
        max_attempts: 12,
    };

    /// For work that waits on slow outside systems (chain RPC, payout
    /// providers): starts at 5 s and keeps trying for several hours.
    pub const PATIENT: RetryPolicy = RetryPolicy {
        name: "patient",
        base: Duration::from_secs(5),
        cap: Duration::from_secs(600),
        factor: 2.0,
        max_attempts: 40,
    };

    /// The backon builder behind [`Self::delay_for_attempt`].
    ///
    /// backon's jitter adds up to 100% of the current delay, so its
    /// `max_delay` is half the cap: a jittered delay stays in `[d, 2d)` and
    /// below the cap. The base is clamped to half the cap too, otherwise
    /// backon would start above its own maximum and the second delay would
    /// be shorter than the first.
    pub fn backoff(&self) -> ExponentialBuilder {
        let half_cap = self.cap / 2;
        ExponentialBuilder::new()
            .with_min_delay(self.base.min(half_cap))
            .with_max_delay(half_cap)
            .with_factor(self.factor)
            .with_jitter()
            .without_max_times()
    }

    /// Delay before the retry that follows failed attempt `attempt`
    /// (0 = the first delivery failed). Never longer than [`Self::cap`].
    pub fn delay_for_attempt(&self, attempt: u32) -> Duration {
        let steps = attempt.min(MAX_STEPS) as usize;
        self.backoff()
            .build()
            .nth(steps)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The tier queue a message that failed attempt `attempt` is parked in.
    pub fn tier_for_attempt(&self, attempt: u32) -> RetryTier {
        nearest_tier(self.delay_for_attempt(attempt), self.cap)
    }

    /// True when attempt `attempt` (0-based) was the last one allowed, so a
    /// further failure dead-letters the message instead of retrying it.
    pub fn exhausted(&self, attempt: u32) -> bool {
        attempt.saturating_add(1) >= self.max_attempts
    }
}

/// The tier closest to `delay` on a logarithmic scale (so 3 s goes to 5 s
/// rather than 1 s), among the tiers not longer than `cap`; the shortest tier
/// when every tier is longer than the cap.
pub fn nearest_tier(delay: Duration, cap: Duration) -> RetryTier {
    let shortest = RETRY_TIERS[0];
    // Ratios are compared as floats: this is time, not money, and only the
    // ordering matters.
    let target = delay.as_secs_f64().max(f64::MIN_POSITIVE);
    let distance = |tier: &RetryTier| {
        let ttl = tier.ttl.as_secs_f64();
        if ttl > target {
            ttl / target
        } else {
            target / ttl
        }
    };
    RETRY_TIERS
        .iter()
        .filter(|tier| tier.ttl <= cap)
        .min_by(|a, b| distance(a).total_cmp(&distance(b)))
        .copied()
        .unwrap_or(shortest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn standard_delays_grow_within_jitter_bounds() {
        let p = RetryPolicy::STANDARD;
        for (attempt, base_secs) in [(0u32, 1u64), (1, 2), (2, 4), (3, 8), (6, 64)] {
            for _ in 0..50 {
                let d = p.delay_for_attempt(attempt);
                let base = Duration::from_secs(base_secs);
                assert!(d >= base && d < base * 2, "attempt {attempt}: {d:?}");
            }
        }
        // Past the cap the delay sits in [cap/2, cap].
        for _ in 0..50 {
            let d = p.delay_for_attempt(30);
            assert!(d >= p.cap / 2 && d <= p.cap, "{d:?}");
        }
    }

    #[test]
    fn forged_huge_attempts_are_cheap_and_capped() {
        let d = RetryPolicy::STANDARD.delay_for_attempt(u32::MAX);
        assert!(d <= RetryPolicy::STANDARD.cap);
    }

    #[test]
    fn tiers_map_to_the_nearest_on_a_log_scale() {
        let cap = Duration::from_secs(600);
        let tier = |secs: f64| nearest_tier(Duration::from_secs_f64(secs), cap).label;
        assert_eq!(tier(0.0), "1s");
        assert_eq!(tier(1.5), "1s");
        assert_eq!(tier(3.0), "5s");
        assert_eq!(tier(12.0), "5s");
        assert_eq!(tier(13.0), "30s");
        assert_eq!(tier(100.0), "2m");
        assert_eq!(tier(400.0), "10m");
        assert_eq!(tier(100_000.0), "10m");
        // A tier longer than the cap is never chosen...
        assert_eq!(
            nearest_tier(Duration::from_secs(500), Duration::from_secs(500)).label,
            "2m"
        );
        // ...unless every tier is.
        assert_eq!(
            nearest_tier(Duration::from_millis(300), Duration::from_millis(300)).label,
            "1s"
        );
    }

    #[test]
    fn attempts_are_counted_from_zero() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::STANDARD
        };
        assert!(!p.exhausted(0));
        assert!(!p.exhausted(1));
        assert!(p.exhausted(2));
        assert!(p.exhausted(u32::MAX));
    }

    #[test]
    fn tiers_are_sorted_and_uniquely_labelled() {
        assert!(RETRY_TIERS.windows(2).all(|w| w[0].ttl < w[1].ttl));
        let mut labels: Vec<_> = RETRY_TIERS.iter().map(|t| t.label).collect();
        labels.dedup();
        assert_eq!(labels.len(), RETRY_TIERS.len());
    }

    fn policy() -> impl Strategy<Value = RetryPolicy> {
        (1u64..60_000, 1u64..3_600_000, 11u32..40).prop_map(|(base_ms, cap_ms, factor10)| {
            let base = Duration::from_millis(base_ms);
            RetryPolicy {
                name: "prop",
                base,
                cap: base.max(Duration::from_millis(cap_ms)),
                factor: factor10 as f32 / 10.0,
                max_attempts: 10,
            }
        })
    }

    fn mean(p: &RetryPolicy, attempt: u32, samples: u32) -> f64 {
        (0..samples)
            .map(|_| p.delay_for_attempt(attempt).as_secs_f64())
            .sum::<f64>()
            / f64::from(samples)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn delays_never_exceed_the_cap(p in policy(), attempt in 0u32..300) {
            let d = p.delay_for_attempt(attempt);
            prop_assert!(d <= p.cap, "{d:?} > {:?}", p.cap);
            let tier = p.tier_for_attempt(attempt);
            prop_assert!(tier.ttl <= p.cap.max(RETRY_TIERS[0].ttl));
        }

        #[test]
        fn delays_are_monotone_in_expectation(p in policy(), attempt in 0u32..40) {
            // Jitter is uniform in [d, 2d): 400 samples put the sample mean
            // within a few percent, far inside the 10% slack allowed here.
            let now = mean(&p, attempt, 400);
            let next = mean(&p, attempt + 1, 400);
            prop_assert!(next >= now * 0.9, "attempt {attempt}: {now} then {next}");
        }
    }
}
