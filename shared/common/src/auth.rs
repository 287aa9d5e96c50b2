//! API keys, shared by the services that take them (webhook-ingress's token
//! commands, read-api's reads), and the throttle on guessing them.
//!
//! Every key has a name the operator chooses (`name:key` in the list): the
//! name is what is recorded as who asked (`requested_by`, `decided_by`) and
//! logged, never the key. Keys are kept as SHA-256 digests and compared in
//! constant time with every active key. Wrong keys are counted per client
//! address ([`GuessThrottle`]): past the limit the address gets 429 before
//! its key is even looked at, so keys cannot be guessed at line rate.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Header carrying the API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Longest key name.
pub const MAX_KEY_NAME_LEN: usize = 32;

/// What a key listed without a name is called: `unnamed-<position>`. The
/// prefix is refused as a chosen name, so the two never mix.
pub const UNNAMED_PREFIX: &str = "unnamed-";

/// Shortest key.
pub const MIN_KEY_LEN: usize = 8;

/// One active key: its name and the SHA-256 digest of the key.
#[derive(Clone)]
struct NamedKey {
    name: String,
    digest: [u8; 32],
}

/// The active API keys, each with its name, kept as SHA-256 digests.
/// `Debug` prints the names and never a key.
#[derive(Clone)]
pub struct ApiKeys(Arc<Vec<NamedKey>>);

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiKeys")
            .field(&self.0.iter().map(|k| k.name.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

/// Why a key list is unusable. The message names the entry by its
/// position and never holds a key, nor the text before a `:` that is not a
/// valid name (it may be part of a key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeysError {
    /// No key in the list.
    #[error("at least one API key is required")]
    Empty,
    /// A key shorter than [`MIN_KEY_LEN`] characters.
    #[error("API key #{0} is shorter than 8 characters")]
    TooShort(usize),
    /// The text before the `:` is not a name.
    #[error(
        "API key #{0}: the name before `:` must be 1 to 32 characters of a-z, 0-9, `_` and `-`, not starting with `unnamed-` (entries are `name:key`)"
    )]
    BadName(usize),
    /// Two entries with the same name.
    #[error("API key #{0} has the name of an earlier entry; names must be unique")]
    DuplicateName(usize),
}

/// Whether `name` is a key name an operator may choose.
pub fn is_valid_key_name(name: &str) -> bool {
    (1..=MAX_KEY_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && !name.starts_with(UNNAMED_PREFIX)
}

impl ApiKeys {
    /// Parses a comma-separated list of `name:key` entries (several during
    /// a rotation). An entry without a `:` is a key listed before keys had
    /// names: it is accepted and called `unnamed-<position>`. A key that
    /// itself contains `:` must therefore be given a name.
    pub fn parse(list: &str) -> Result<Self, ApiKeysError> {
        let mut keys: Vec<NamedKey> = Vec::new();
        for (i, entry) in list.split(',').map(str::trim).enumerate() {
            let position = i + 1;
            if entry.is_empty() {
                continue;
            }
            let (name, key) = match entry.split_once(':') {
                Some((name, key)) => {
                    let name = name.trim();
                    if !is_valid_key_name(name) {
                        return Err(ApiKeysError::BadName(position));
                    }
                    (name.to_owned(), key.trim())
                }
                None => (format!("{UNNAMED_PREFIX}{position}"), entry),
            };
            if key.len() < MIN_KEY_LEN {
                return Err(ApiKeysError::TooShort(position));
            }
            if keys.iter().any(|k| k.name == name) {
                return Err(ApiKeysError::DuplicateName(position));
            }
            keys.push(NamedKey {
                name,
                digest: Sha256::digest(key.as_bytes()).into(),
            });
        }
        if keys.is_empty() {
            return Err(ApiKeysError::Empty);
        }
        Ok(Self(Arc::new(keys)))
    }

    /// The name of key `index`: what is recorded as who asked and logged.
    /// Never the key.
    pub fn name(&self, index: usize) -> &str {
        self.0.get(index).map_or("", |key| key.name.as_str())
    }

    /// The names of the keys listed without one (`unnamed-<position>`), for
    /// a warning at start.
    pub fn unnamed(&self) -> Vec<&str> {
        self.0
            .iter()
            .map(|key| key.name.as_str())
            .filter(|name| name.starts_with(UNNAMED_PREFIX))
            .collect()
    }

    /// Warns at start about the keys of `setting` listed without a name:
    /// their commands are recorded as asked by `unnamed-<position>`, which
    /// a reordered list gives to another key.
    pub fn warn_unnamed(&self, setting: &str) {
        let unnamed = self.unnamed();
        if !unnamed.is_empty() {
            tracing::warn!(
                setting,
                keys = ?unnamed,
                "API keys listed without a name are known by their position; list each as `name:key`"
            );
        }
    }

    /// The position of `presented` among the active keys, compared in
    /// constant time against every one of them.
    pub fn identify(&self, presented: &[u8]) -> Option<usize> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for (i, key) in self.0.iter().enumerate() {
            if bool::from(key.digest.ct_eq(&digest)) {
                found = Some(i);
            }
        }
        found
    }
}

/// Why a request's API key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// No `X-API-Key` header: 403.
    Missing,
    /// A key that is none of the active ones: 401.
    Invalid,
    /// Too many wrong keys from this address lately: 429, retry after
    /// this many seconds.
    Throttled {
        /// Whole seconds until the address may try again.
        retry_after_secs: u64,
    },
}

impl KeyRefusal {
    /// A bounded metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing_api_key",
            Self::Invalid => "invalid_api_key",
            Self::Throttled { .. } => "throttled",
        }
    }
}

/// The keys of a route group with the throttle in front of them.
#[derive(Debug, Clone)]
pub struct KeyGuard {
    keys: ApiKeys,
    throttle: Arc<GuessThrottle>,
    proxies: TrustedProxies,
}

impl KeyGuard {
    /// `keys` checked behind `throttle`; client addresses are read through
    /// `proxies`.
    pub fn new(keys: ApiKeys, throttle: Arc<GuessThrottle>, proxies: TrustedProxies) -> Self {
        Self {
            keys,
            throttle,
            proxies,
        }
    }

    /// [`ApiKeys::name`] of key `index`.
    pub fn name(&self, index: usize) -> &str {
        self.keys.name(index)
    }

    /// The position of the request's key among the active ones. An address
    /// past its limit is refused before its key is looked at, even a right
    /// one: otherwise the answer would tell a guesser when it hit.
    pub fn check(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<usize, KeyRefusal> {
        let client = peer.map(|peer| self.proxies.client(peer.ip(), headers));
        if let Some(client) = client {
            self.throttle.check(client)?;
        }
        let presented = headers.get(API_KEY_HEADER).ok_or(KeyRefusal::Missing)?;
        self.keys.identify(presented.as_bytes()).ok_or_else(|| {
            if let Some(client) = client {
                self.throttle.failed(client);
            }
            KeyRefusal::Invalid
        })
    }
}

/// Proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`). Empty
/// by default: the TCP peer is the client, and a header a client writes
/// itself is ignored.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<IpNet>>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses or CIDR blocks.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for (i, entry) in list.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let net = IpNet::from_str(entry)
                .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "entry #{} `{entry}` is not an IP address or CIDR block",
                        i + 1
                    )
                })?;
            nets.push(net);
        }
        Ok(Self(Arc::new(nets)))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`: `peer` itself, unless it is a trusted
    /// proxy, in which case the right-most address of `X-Forwarded-For`
    /// that is not a trusted proxy (the left part is the client's to write).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(text) = value.to_str() else {
                return client;
            };
            for hop in text.rsplit(',') {
                let Ok(ip) = IpAddr::from_str(hop.trim()) else {
                    return client;
                };
                client = ip;
                if !self.trusts(ip) {
                    return client;
                }
            }
        }
        client
    }
}

/// Wrong API keys counted per client address in fixed windows. Bounded:
/// at most `capacity` addresses are tracked (an IPv6 client counts per /64,
/// the block one host is usually given); when full, expired entries are
/// dropped, then the oldest, so an attacker spraying addresses costs a fixed
/// amount of memory. Successful requests only read the table.
#[derive(Debug)]
pub struct GuessThrottle {
    limit: u32,
    window: Duration,
    capacity: usize,
    entries: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl GuessThrottle {
    /// Addresses tracked at most: about 64 bytes each, so a few MiB.
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// `limit` wrong keys per address per `window`; 0 turns it off.
    pub fn new(limit: u32, window: Duration, capacity: usize) -> Self {
        Self {
            limit,
            window,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `limit` wrong keys per address per minute.
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60), Self::DEFAULT_CAPACITY)
    }

    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Window>> {
        // A panic while holding the lock leaves counts, never a broken
        // invariant: go on with them.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err` with the seconds to wait when `client` used up its wrong keys.
    pub fn check(&self, client: IpAddr) -> Result<(), KeyRefusal> {
        if self.limit == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let entries = self.entries();
        match entries.get(&Self::key(client)) {
            Some(window) if window.failures >= self.limit => {
                let left = self
                    .window
                    .saturating_sub(now.duration_since(window.started));
                if left.is_zero() {
                    return Ok(());
                }
                Err(KeyRefusal::Throttled {
                    retry_after_secs: left.as_secs() + u64::from(left.subsec_nanos() > 0),
                })
            }
            _ => Ok(()),
        }
    }

    /// Counts one wrong key from `client`.
    pub fn failed(&self, client: IpAddr) {
        if self.limit == 0 {
            return;
        }
        let now = Instant::now();
        let key = Self::key(client);
        let mut entries = self.entries();
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            let window = self.window;
            entries.retain(|_, w| now.duration_since(w.started) < window);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        let window = entries.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(window.started) >= self.window {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.entries().len()
    }
}

/// Settings of the API-key guess throttle and of client addresses.
#[derive(clap::Args, Debug, Clone)]
pub struct ThrottleConfig {
    /// Wrong API keys allowed per client address per minute before that
    /// address gets 429 (even with a right key) until the minute is over;
    /// 0 turns the throttle off.
    #[arg(long, env = "API_KEY_FAILURES_PER_MINUTE", default_value_t = 10)]
    pub api_key_failures_per_minute: u32,

    /// Proxies whose X-Forwarded-For names the client (comma-separated IPs
    /// or CIDR blocks). Empty: the TCP peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "",
          value_parser = TrustedProxies::parse)]
    pub trusted_proxies: TrustedProxies,
}

impl ThrottleConfig {
    /// The throttle these settings describe.
    pub fn throttle(&self) -> Arc<GuessThrottle> {
        Arc::new(GuessThrottle::per_minute(self.api_key_failures_per_minute))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys_are_found_and_named_but_never_printed() {
        let keys = ApiKeys::parse("front-desk:first-key-123, ops_2:second-key-456").unwrap();
        assert_eq!(keys.identify(b"first-key-123"), Some(0));
        assert_eq!(keys.identify(b"second-key-456"), Some(1));
        assert_eq!(keys.identify(b"second-key-45"), None);
        assert_eq!(keys.identify(b"ops_2:second-key-456"), None);
        assert_eq!(keys.identify(b""), None);
        assert_eq!(keys.name(0), "front-desk");
        assert_eq!(keys.name(1), "ops_2");
        let debug = format!("{keys:?}");
        assert!(
            !debug.contains("key-123") && !debug.contains("key-456"),
            "{debug}"
        );
        assert!(debug.contains("front-desk"), "{debug}");
        assert!(keys.unnamed().is_empty());
    }

    #[test]
    fn a_bare_key_is_accepted_as_unnamed_by_position() {
        let keys = ApiKeys::parse("crm:named-key-123,bare-key-456").unwrap();
        assert_eq!(keys.identify(b"bare-key-456"), Some(1));
        assert_eq!(keys.name(1), "unnamed-2");
        assert_eq!(keys.unnamed(), ["unnamed-2"]);
    }

    #[test]
    fn bad_key_lists_are_refused_by_position_without_their_text() {
        assert_eq!(ApiKeys::parse(" , ").unwrap_err(), ApiKeysError::Empty);
        assert_eq!(
            ApiKeys::parse("long-enough,short").unwrap_err(),
            ApiKeysError::TooShort(2)
        );
        assert_eq!(
            ApiKeys::parse("a:long-enough,b:short").unwrap_err(),
            ApiKeysError::TooShort(2)
        );
        for bad in [
            "Front:long-enough-key",
            ":long-enough-key",
            "has space:long-enough-key",
            "unnamed-1:long-enough-key",
            "dot.name:long-enough-key",
            &format!("{}:long-enough-key", "n".repeat(33)),
        ] {
            let err = ApiKeys::parse(&format!("ok:long-enough-key,{bad}")).unwrap_err();
            assert_eq!(err, ApiKeysError::BadName(2), "{bad}");
            let text = err.to_string();
            assert!(!text.contains("long-enough"), "{text}");
        }
        assert_eq!(
            ApiKeys::parse("ops:long-enough-key,ops:another-long-key").unwrap_err(),
            ApiKeysError::DuplicateName(2)
        );
        assert!(is_valid_key_name(&"n".repeat(32)));
        assert!(is_valid_key_name("a-b_c9"));
    }

    #[test]
    fn an_address_past_its_limit_waits_and_others_do_not() {
        let throttle = GuessThrottle::new(3, Duration::from_secs(60), 16);
        let a = ip("10.0.0.1");
        for _ in 0..3 {
            throttle.check(a).unwrap();
            throttle.failed(a);
        }
        let Err(KeyRefusal::Throttled { retry_after_secs }) = throttle.check(a) else {
            panic!("throttled after 3 wrong keys")
        };
        assert!((1..=60).contains(&retry_after_secs), "{retry_after_secs}");
        throttle.check(ip("10.0.0.2")).unwrap();
        // One IPv6 host is its /64.
        throttle.failed(ip("2001:db8::1"));
        throttle.failed(ip("2001:db8::2"));
        throttle.failed(ip("2001:db8::3"));
        assert!(throttle.check(ip("2001:db8::ffff")).is_err());
        assert!(throttle.check(ip("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn the_window_ends() {
        let throttle = GuessThrottle::new(1, Duration::from_millis(30), 16);
        let a = ip("10.0.0.1");
        throttle.failed(a);
        assert!(throttle.check(a).is_err());
        std::thread::sleep(Duration::from_millis(40));
        throttle.check(a).unwrap();
    }

    #[test]
    fn spraying_addresses_never_grows_the_table_past_its_capacity() {
        let throttle = GuessThrottle::new(2, Duration::from_secs(60), 100);
        for i in 0..10_000u32 {
            throttle.failed(IpAddr::V4(i.into()));
            assert!(throttle.tracked() <= 100);
        }
        // The newest addresses are the ones kept.
        throttle.failed(IpAddr::V4(9_999u32.into()));
        assert!(throttle.check(IpAddr::V4(9_999u32.into())).is_err());
    }

    #[test]
    fn zero_is_off() {
        let throttle = GuessThrottle::per_minute(0);
        for _ in 0..100 {
            throttle.failed(ip("10.0.0.1"));
        }
        throttle.check(ip("10.0.0.1")).unwrap();
        assert_eq!(throttle.tracked(), 0);
    }

    #[test]
    fn forwarded_for_is_only_believed_from_a_trusted_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.0.0.5".parse().unwrap(),
        );
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.9"), &headers), ip("10.0.0.9"));
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The right-most untrusted hop; the spoofable left part is ignored.
        assert_eq!(proxies.client(ip("10.0.0.9"), &headers), ip("1.2.3.4"));
        assert_eq!(proxies.client(ip("8.8.8.8"), &headers), ip("8.8.8.8"));
        headers.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(proxies.client(ip("10.0.0.9"), &headers), ip("10.0.0.9"));
        assert!(TrustedProxies::parse("10.0.0.1, ::1, 192.168.0.0/16").is_ok());
        assert!(TrustedProxies::parse("nope").is_err());
    }
}
