//! Verification: the active secrets of a partner, the three schemes checked
//! over the raw body in constant time, and [`verify_request`], the only
//! maker of a [`Verified`] body.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use super::canonical::python_canonical_json;

/// The MAC of every scheme; the sender signs with the same.
pub(super) type HmacSha256 = Hmac<Sha256>;

/// How far a Standard Webhooks timestamp may be from now, either way.
pub const STANDARD_TOLERANCE_SECS: i64 = 300;

/// Most entries a `webhook-signature` header may list. A Standard Webhooks
/// sender signs once per active key, a handful during a rotation; a longer
/// list is refused before any hashing.
pub const MAX_SIGNATURES: usize = 8;

/// Longest `webhook-signature` header accepted, in bytes: room for
/// [`MAX_SIGNATURES`] `v1,<base64 of 32 bytes>` entries and their spaces.
pub const MAX_SIGNATURE_HEADER_LEN: usize = 512;

/// Prefix of a Standard Webhooks secret whose key is base64.
const WHSEC_PREFIX: &str = "whsec_";

/// The active secrets of one partner. `Debug` never prints them.
#[derive(Clone)]
pub struct PartnerSecrets(Vec<Vec<u8>>);

impl fmt::Debug for PartnerSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartnerSecrets([{} redacted])", self.0.len())
    }
}

/// Why a secrets setting is unusable (the message never contains a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// No secret at all.
    #[error("no secret given")]
    Empty,
    /// A `whsec_` entry whose key is not base64.
    #[error("secret number {0} starts with whsec_ but is not valid base64")]
    BadBase64(usize),
}

impl PartnerSecrets {
    /// Parses a comma-separated list; each entry is used as raw bytes, or,
    /// with the `whsec_` prefix, as the base64-decoded key.
    pub fn parse(list: &str) -> Result<Self, SecretsError> {
        let mut secrets = Vec::new();
        for (i, entry) in list.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            secrets.push(key_of(entry).ok_or(SecretsError::BadBase64(i + 1))?);
        }
        if secrets.is_empty() {
            return Err(SecretsError::Empty);
        }
        Ok(Self(secrets))
    }

    /// Each active secret's HMAC of `message`: one per secret, whatever the
    /// number of candidate signatures a request lists.
    fn tags<'a>(&'a self, message: &'a [u8]) -> impl Iterator<Item = [u8; 32]> + 'a {
        self.0.iter().filter_map(move |key| {
            let mut mac = HmacSha256::new_from_slice(key).ok()?;
            mac.update(message);
            Some(mac.finalize().into_bytes().into())
        })
    }

    /// Whether any candidate equals any secret's tag of `message`. Every pair
    /// is compared in constant time and none short-circuits, so the time
    /// taken tells neither which secret nor which candidate matched.
    fn any_matches(&self, message: &[u8], candidates: &[[u8; 32]]) -> bool {
        let mut ok = Choice::from(0);
        for tag in self.tags(message) {
            for candidate in candidates {
                ok |= tag.ct_eq(candidate);
            }
        }
        ok.into()
    }

    /// Whether `header` (hex, optionally `sha256=`-prefixed) is the HMAC of
    /// the raw body, or of its canonical JSON, under any active secret.
    pub fn verify_hex(&self, header: &str, raw_body: &[u8]) -> bool {
        let header = header.trim();
        let header = header.strip_prefix("sha256=").unwrap_or(header);
        // A SHA-256 tag is 64 hex digits: anything else is refused before
        // any hashing, whatever its length.
        let mut expected = [0u8; 32];
        if header.len() != 64 || hex::decode_to_slice(header, &mut expected).is_err() {
            return false;
        }
        // The canonical form is only computed when the raw body matched
        // none: the sender already knows which form it signed, so that
        // branch reveals nothing, and the common raw-body case skips a JSON
        // parse.
        if self.any_matches(raw_body, &[expected]) {
            return true;
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(raw_body) else {
            return false;
        };
        let canonical = python_canonical_json(&value);
        self.any_matches(canonical.as_bytes(), &[expected])
    }

    /// Verifies a Standard Webhooks delivery at unix time `now`.
    ///
    /// Everything that can be refused without a key is refused first (the
    /// header's size, the number of candidates, the timestamp); then each
    /// secret's HMAC is computed once and compared with every candidate.
    pub fn verify_standard(
        &self,
        id: &str,
        timestamp: &str,
        signatures: &str,
        raw_body: &[u8],
        now: i64,
    ) -> Result<(), StandardError> {
        if signatures.len() > MAX_SIGNATURE_HEADER_LEN {
            return Err(StandardError::TooLong);
        }
        let entries: Vec<&str> = signatures.split_whitespace().collect();
        if entries.len() > MAX_SIGNATURES {
            return Err(StandardError::TooMany);
        }
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| StandardError::BadTimestamp)?;
        // `checked_sub`: `now - i64::MIN` overflows.
        let within = now
            .checked_sub(ts)
            .is_some_and(|age| age.unsigned_abs() <= STANDARD_TOLERANCE_SECS.unsigned_abs());
        if !within {
            return Err(StandardError::OutsideTolerance);
        }
        let candidates: Vec<[u8; 32]> = entries
            .iter()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| BASE64.decode(b64).ok())
            .filter_map(|tag| <[u8; 32]>::try_from(tag).ok())
            .collect();
        if candidates.is_empty() {
            return Err(StandardError::NoMatch);
        }
        let mut signed = Vec::with_capacity(id.len() + timestamp.len() + raw_body.len() + 2);
        signed.extend_from_slice(id.as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(timestamp.trim().as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(raw_body);
        if self.any_matches(&signed, &candidates) {
            Ok(())
        } else {
            Err(StandardError::NoMatch)
        }
    }
}

/// The HMAC key of one secret entry: the base64-decoded key of a `whsec_`
/// entry (`None` when that is not base64), else the entry's bytes.
pub(super) fn key_of(entry: &str) -> Option<Vec<u8>> {
    match entry.strip_prefix(WHSEC_PREFIX) {
        Some(b64) => BASE64.decode(b64).ok(),
        None => Some(entry.as_bytes().to_vec()),
    }
}

/// Why a Standard Webhooks delivery was refused (all answered 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StandardError {
    /// `webhook-timestamp` is not a unix time in seconds.
    #[error("webhook-timestamp is not a unix time")]
    BadTimestamp,
    /// The timestamp is more than 300 s from now.
    #[error("webhook-timestamp is outside the 300 s tolerance")]
    OutsideTolerance,
    /// No `v1` signature matches any active secret.
    #[error("no signature matches")]
    NoMatch,
    /// The header lists more than [`MAX_SIGNATURES`] signatures.
    #[error("webhook-signature lists more than 8 signatures")]
    TooMany,
    /// The header is longer than [`MAX_SIGNATURE_HEADER_LEN`].
    #[error("webhook-signature is longer than 512 bytes")]
    TooLong,
}

/// A partner and the header its hex signatures come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partner {
    /// Aurora PMS: `X-Aurora-Signature`.
    Aurora,
    /// Tribe: `X-Tribe-Signature`.
    Tribe,
}

impl Partner {
    /// `aurora` or `tribe`, as stored and used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aurora => "aurora",
            Self::Tribe => "tribe",
        }
    }

    /// The header of the hex HMAC scheme.
    pub fn signature_header(self) -> &'static str {
        match self {
            Self::Aurora => "x-aurora-signature",
            Self::Tribe => "x-tribe-signature",
        }
    }
}

/// Standard Webhooks headers.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks timestamp header.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks signature header.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// A body whose signature holds. The only way to get one is [`verify_request`]
/// (the fields are private), so code that takes a `Verified` cannot run on an
/// unsigned body.
#[derive(Debug)]
pub struct Verified {
    body: axum::body::Bytes,
    delivery_id: Option<String>,
}

impl Verified {
    /// The raw body, exactly as signed.
    pub fn body(&self) -> &axum::body::Bytes {
        &self.body
    }

    /// The Standard Webhooks `webhook-id`, the sender's delivery id, when
    /// that scheme was used.
    pub fn delivery_id(&self) -> Option<&str> {
        self.delivery_id.as_deref()
    }
}

/// Why a request's signature was refused (each a 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No header of any scheme.
    Missing,
    /// A header that does not verify; the reason, when it helps the sender.
    Invalid(Option<&'static str>),
}

/// Checks the signature of a request from `partner` over its raw body:
/// Standard Webhooks when `webhook-signature` is present, else the partner's
/// hex header. `now` is the unix time in seconds.
pub fn verify_request(
    partner: Partner,
    secrets: &PartnerSecrets,
    headers: &axum::http::HeaderMap,
    body: axum::body::Bytes,
    now: i64,
) -> Result<Verified, Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(signatures) = header(WEBHOOK_SIGNATURE) {
        let (Some(id), Some(timestamp)) = (header(WEBHOOK_ID), header(WEBHOOK_TIMESTAMP)) else {
            return Err(Refusal::Invalid(Some(
                "webhook-id and webhook-timestamp are required with webhook-signature",
            )));
        };
        return match secrets.verify_standard(id, timestamp, signatures, &body, now) {
            Ok(()) => Ok(Verified {
                delivery_id: Some(id.to_owned()),
                body,
            }),
            Err(StandardError::NoMatch) => Err(Refusal::Invalid(None)),
            Err(StandardError::BadTimestamp) => Err(Refusal::Invalid(Some(
                "webhook-timestamp is not a unix time in seconds",
            ))),
            Err(StandardError::OutsideTolerance) => Err(Refusal::Invalid(Some(
                "webhook-timestamp is more than 300 s from now",
            ))),
            Err(StandardError::TooMany) => Err(Refusal::Invalid(Some(
                "webhook-signature lists more than 8 signatures",
            ))),
            Err(StandardError::TooLong) => Err(Refusal::Invalid(Some(
                "webhook-signature is longer than 512 bytes",
            ))),
        };
    }
    match headers.get(partner.signature_header()) {
        None => Err(Refusal::Missing),
        Some(value) => match value.to_str() {
            Ok(signature) if secrets.verify_hex(signature, &body) => Ok(Verified {
                body,
                delivery_id: None,
            }),
            _ => Err(Refusal::Invalid(None)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::fixtures::{PY_BODY, PY_CANONICAL_HMAC, hex_hmac, secrets};

    #[test]
    fn seed_guide_sender_signature_is_accepted() {
        let s = secrets("aurora_secret_key");
        assert!(s.verify_hex(PY_CANONICAL_HMAC, PY_BODY.as_bytes()));
        // Same payload re-serialized differently by another client: same canonical form.
        let compact = r#"{"z":{"a":"x\"y\\\n\t\u007f\u0001","b":1},"total_price":100.0,"name":"Café ✓ 😀","n":[1,2.5,1e16,1.5e-5,0.0001,-0.0,123456789.125,true,null],"id":"booking_123","guest_id":"guest_456"}"#;
        assert!(s.verify_hex(PY_CANONICAL_HMAC, compact.as_bytes()));
    }

    #[test]
    fn raw_body_signature_is_accepted_and_tampering_is_not() {
        let s = secrets("k1");
        let body = br#"{"id":"booking_123","total_price":100.0}"#;
        let sig = hex_hmac(b"k1", body);
        assert!(s.verify_hex(&sig, body));
        assert!(s.verify_hex(&format!("sha256={sig}"), body));
        assert!(s.verify_hex(&sig.to_uppercase(), body));
        assert!(!s.verify_hex(&sig, br#"{"id":"booking_123","total_price":200.0}"#));
        assert!(!s.verify_hex("invalid_xyz_abc_123", body));
        assert!(!s.verify_hex("", body));
        assert!(!s.verify_hex(&sig[..10], body));
        assert!(!secrets("other").verify_hex(&sig, body));
    }

    #[test]
    fn any_active_secret_verifies_during_rotation() {
        let body = b"not even json";
        let s = secrets("old-secret, new-secret");
        assert!(s.verify_hex(&hex_hmac(b"old-secret", body), body));
        assert!(s.verify_hex(&hex_hmac(b"new-secret", body), body));
        assert!(!s.verify_hex(&hex_hmac(b"retired", body), body));
    }

    /// The Standard Webhooks specification's published test vector.
    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SW_TS: i64 = 1_614_265_330;
    const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn standard_webhooks_official_vector() {
        let s = secrets(SW_SECRET);
        let ts = SW_TS.to_string();
        assert_eq!(
            s.verify_standard(SW_ID, &ts, SW_SIG, SW_BODY, SW_TS),
            Ok(())
        );
        // Several signatures, the matching one last.
        let list = format!("v1,Zm9v v2,abc {SW_SIG}");
        assert_eq!(
            s.verify_standard(SW_ID, &ts, &list, SW_BODY, SW_TS + 10),
            Ok(())
        );
        assert_eq!(
            s.verify_standard(SW_ID, &ts, SW_SIG, br#"{"test": 2432232315}"#, SW_TS),
            Err(StandardError::NoMatch)
        );
        assert_eq!(
            s.verify_standard("msg_other", &ts, SW_SIG, SW_BODY, SW_TS),
            Err(StandardError::NoMatch)
        );
        assert_eq!(
            s.verify_standard(SW_ID, &ts, "", SW_BODY, SW_TS),
            Err(StandardError::NoMatch)
        );
    }

    #[test]
    fn standard_webhooks_timestamp_tolerance_is_300_seconds_either_way() {
        let s = secrets(SW_SECRET);
        let ts = SW_TS.to_string();
        for now in [SW_TS - 300, SW_TS + 300] {
            assert_eq!(s.verify_standard(SW_ID, &ts, SW_SIG, SW_BODY, now), Ok(()));
        }
        for now in [SW_TS - 301, SW_TS + 301] {
            assert_eq!(
                s.verify_standard(SW_ID, &ts, SW_SIG, SW_BODY, now),
                Err(StandardError::OutsideTolerance)
            );
        }
        assert_eq!(
            s.verify_standard(SW_ID, "yesterday", SW_SIG, SW_BODY, SW_TS),
            Err(StandardError::BadTimestamp)
        );
    }

    #[test]
    fn secrets_parse_and_never_print() {
        assert_eq!(
            PartnerSecrets::parse(" , ").unwrap_err(),
            SecretsError::Empty
        );
        assert_eq!(
            PartnerSecrets::parse("ok,whsec_***").unwrap_err(),
            SecretsError::BadBase64(2)
        );
        let s = secrets("hunter2,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(format!("{s:?}"), "PartnerSecrets([2 redacted])");
    }

    #[test]
    fn a_verified_request_carries_its_body_and_the_delivery_id_of_its_scheme() {
        let standard = secrets(SW_SECRET);
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(WEBHOOK_ID, SW_ID.parse().unwrap());
        headers.insert(WEBHOOK_TIMESTAMP, SW_TS.to_string().parse().unwrap());
        headers.insert(WEBHOOK_SIGNATURE, SW_SIG.parse().unwrap());
        let body = axum::body::Bytes::from_static(SW_BODY);
        let verified =
            verify_request(Partner::Aurora, &standard, &headers, body.clone(), SW_TS).unwrap();
        assert_eq!(
            (verified.body(), verified.delivery_id()),
            (&body, Some(SW_ID))
        );

        let hex = secrets("k1");
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            Partner::Tribe.signature_header(),
            hex_hmac(b"k1", SW_BODY).parse().unwrap(),
        );
        let verified = verify_request(Partner::Tribe, &hex, &headers, body.clone(), 0).unwrap();
        assert_eq!((verified.body(), verified.delivery_id()), (&body, None));
        // Aurora's header is not Tribe's.
        assert_eq!(
            verify_request(Partner::Aurora, &hex, &headers, body, 0).unwrap_err(),
            Refusal::Missing
        );
    }

    #[test]
    fn a_long_candidate_list_is_refused_before_any_hashing() {
        let s = secrets(SW_SECRET);
        let ts = SW_TS.to_string();
        // Eight entries, the matching one last: accepted.
        let eight = format!("{} {SW_SIG}", ["v1,Zm9v"; 7].join(" "));
        assert_eq!(
            s.verify_standard(SW_ID, &ts, &eight, SW_BODY, SW_TS),
            Ok(())
        );
        let nine = format!("v1,Zm9v {eight}");
        assert_eq!(
            s.verify_standard(SW_ID, &ts, &nine, SW_BODY, SW_TS),
            Err(StandardError::TooMany)
        );
        let thousands = vec![SW_SIG; 5_000].join(" ");
        assert_eq!(
            s.verify_standard(SW_ID, &ts, &thousands, SW_BODY, SW_TS),
            Err(StandardError::TooLong)
        );
        // Few entries but one of them huge: the header's length decides.
        let padded = format!("v1,{} {SW_SIG}", "A".repeat(600));
        assert_eq!(
            s.verify_standard(SW_ID, &ts, &padded, SW_BODY, SW_TS),
            Err(StandardError::TooLong)
        );
    }

    #[test]
    fn extreme_timestamps_are_outside_the_window_not_an_overflow() {
        let s = secrets(SW_SECRET);
        for (ts, now) in [
            (i64::MIN, SW_TS),
            (i64::MAX, SW_TS),
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MIN),
        ] {
            assert_eq!(
                s.verify_standard(SW_ID, &ts.to_string(), SW_SIG, SW_BODY, now),
                Err(StandardError::OutsideTolerance),
                "ts {ts}, now {now}"
            );
        }
    }

    #[test]
    fn a_hex_signature_of_the_wrong_length_is_refused_without_hashing() {
        let s = secrets("k1");
        let body = b"{}";
        let sig = hex_hmac(b"k1", body);
        assert!(s.verify_hex(&sig, body));
        assert!(!s.verify_hex(&format!("{sig}00"), body));
        assert!(!s.verify_hex(&sig.repeat(1_000), body));
    }
}
