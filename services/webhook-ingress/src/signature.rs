//! Partner webhook signatures: the three schemes of SPEC.md, every comparison
//! in constant time, several active secrets per partner for rotation.
//!
//! 1. `X-Aurora-Signature` / `X-Tribe-Signature`: hex HMAC-SHA256 of the raw body.
//! 2. The same header over the canonical JSON the seed guide's senders sign:
//!    `json.dumps(payload, sort_keys=True)` in Python, reproduced byte for byte
//!    by [`python_canonical_json`].
//! 3. Standard Webhooks: `webhook-id`, `webhook-timestamp` (within
//!    [`STANDARD_TOLERANCE_SECS`] either way) and `webhook-signature`, a
//!    space-separated list of `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a Standard Webhooks timestamp may be from now, either way.
pub const STANDARD_TOLERANCE_SECS: i64 = 300;

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

    fn macs(&self) -> impl Iterator<Item = HmacSha256> + '_ {
        self.0
            .iter()
            .filter_map(|key| HmacSha256::new_from_slice(key).ok())
    }

    /// Whether `header` (hex, optionally `sha256=`-prefixed) is the HMAC of
    /// the raw body, or of its canonical JSON, under any active secret.
    pub fn verify_hex(&self, header: &str, raw_body: &[u8]) -> bool {
        let header = header.trim();
        let header = header.strip_prefix("sha256=").unwrap_or(header);
        let Ok(expected) = hex::decode(header) else {
            return false;
        };
        // Every secret is tried (non-short-circuiting `|`), so the time taken
        // does not tell which secret matched. The canonical form is only
        // computed when the raw body matched none: the sender already knows
        // which form it signed, so that branch reveals nothing, and the
        // common raw-body case skips a JSON parse.
        let mut ok = false;
        for mac in self.macs() {
            ok |= verify(mac, raw_body, &expected);
        }
        if ok {
            return true;
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(raw_body) else {
            return false;
        };
        let canonical = python_canonical_json(&value);
        for mac in self.macs() {
            ok |= verify(mac, canonical.as_bytes(), &expected);
        }
        ok
    }

    /// Verifies a Standard Webhooks delivery at unix time `now`.
    pub fn verify_standard(
        &self,
        id: &str,
        timestamp: &str,
        signatures: &str,
        raw_body: &[u8],
        now: i64,
    ) -> Result<(), StandardError> {
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| StandardError::BadTimestamp)?;
        if (now - ts).abs() > STANDARD_TOLERANCE_SECS {
            return Err(StandardError::OutsideTolerance);
        }
        let mut signed = Vec::with_capacity(id.len() + timestamp.len() + raw_body.len() + 2);
        signed.extend_from_slice(id.as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(timestamp.trim().as_bytes());
        signed.push(b'.');
        signed.extend_from_slice(raw_body);
        let candidates: Vec<Vec<u8>> = signatures
            .split_whitespace()
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| BASE64.decode(b64).ok())
            .collect();
        let mut ok = false;
        for mac in self.macs() {
            for candidate in &candidates {
                ok |= verify(mac.clone(), &signed, candidate);
            }
        }
        if ok {
            Ok(())
        } else {
            Err(StandardError::NoMatch)
        }
    }
}

/// The HMAC key of one secret entry: the base64-decoded key of a `whsec_`
/// entry (`None` when that is not base64), else the entry's bytes.
fn key_of(entry: &str) -> Option<Vec<u8>> {
    match entry.strip_prefix(WHSEC_PREFIX) {
        Some(b64) => BASE64.decode(b64).ok(),
        None => Some(entry.as_bytes().to_vec()),
    }
}

/// The sending side of the three schemes: how a partner signs what this
/// service verifies. For load tests, tools and tests; `secret` is one entry
/// as it is configured (raw, or `whsec_<base64>`).
pub mod sender {
    use base64::Engine as _;
    use hmac::Mac as _;

    use super::{
        BASE64, HmacSha256, SecretsError, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
    };

    fn mac(secret: &str) -> Result<HmacSha256, SecretsError> {
        let key = super::key_of(secret).ok_or(SecretsError::BadBase64(1))?;
        HmacSha256::new_from_slice(&key).map_err(|_| SecretsError::Empty)
    }

    /// Schemes 1 and 2: the hex HMAC-SHA256 of `message` (the raw body, or
    /// its [`python_canonical_json`](super::python_canonical_json) form),
    /// the value of `X-Aurora-Signature` / `X-Tribe-Signature`.
    pub fn hex_signature(secret: &str, message: &[u8]) -> Result<String, SecretsError> {
        let mut mac = mac(secret)?;
        mac.update(message);
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// Scheme 3: the Standard Webhooks headers (`webhook-id`,
    /// `webhook-timestamp`, `webhook-signature: v1,<base64>`) of `body`
    /// sent as delivery `id` at unix time `timestamp`.
    pub fn standard_headers(
        secret: &str,
        id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Result<[(&'static str, String); 3], SecretsError> {
        let mut mac = mac(secret)?;
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        let signature = BASE64.encode(mac.finalize().into_bytes());
        Ok([
            (WEBHOOK_ID, id.to_owned()),
            (WEBHOOK_TIMESTAMP, timestamp.to_string()),
            (WEBHOOK_SIGNATURE, format!("v1,{signature}")),
        ])
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

/// A body whose signature holds. The only way to get one is [`verify_request`],
/// so code that takes a `Verified` cannot run on an unsigned body.
#[derive(Debug)]
pub struct Verified {
    /// The raw body, exactly as signed.
    pub body: axum::body::Bytes,
    /// The Standard Webhooks `webhook-id`, the sender's delivery id, when
    /// that scheme was used.
    pub delivery_id: Option<String>,
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

/// Constant-time HMAC check (`verify_slice` compares without early exit).
fn verify(mut mac: HmacSha256, message: &[u8], expected: &[u8]) -> bool {
    mac.update(message);
    mac.verify_slice(expected).is_ok()
}

/// `json.dumps(value, sort_keys=True)` as CPython writes it: `", "` and
/// `": "` separators, keys sorted by code point, non-ASCII and control
/// characters escaped as `\uXXXX` (surrogate pairs above the BMP), floats in
/// Python's `repr` form (`100.0`, `1e+16`, `1.5e-05`).
pub fn python_canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

fn write_value(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&python_float_repr(f));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // serde_json's default map is a BTreeMap: UTF-8 byte order, which
            // is code-point order, which is how Python sorts str keys.
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(key, out);
                out.push_str(": ");
                write_value(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed
/// notation when the decimal exponent is in -4..16, else scientific with a
/// signed two-digit-minimum exponent.
fn python_float_repr(f: f64) -> String {
    // Rust's `{:e}` gives the same shortest round-trip digits: `1.5e16`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{exp_sign}{:02}", exp.abs());
    }
    if exp < 0 {
        let zeros = "0".repeat(usize::try_from(-exp - 1).unwrap_or(0));
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = usize::try_from(exp + 1).unwrap_or(1);
    if digits.len() <= int_len {
        format!("{sign}{digits}{}.0", "0".repeat(int_len - digits.len()))
    } else {
        let (int, frac) = digits.split_at(int_len);
        format!("{sign}{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated with CPython 3.11:
    /// `json.dumps(p, sort_keys=True)` and `hmac.new(b"aurora_secret_key", m.encode(), hashlib.sha256).hexdigest()`.
    const PY_BODY: &str = r#"{"id": "booking_123", "guest_id": "guest_456", "total_price": 100.0, "name": "Caf\u00e9 \u2713 \ud83d\ude00", "n": [1, 2.5, 1e+16, 1.5e-05, 0.0001, -0.0, 123456789.125, true, null], "z": {"b": 1, "a": "x\"y\\\n\t\u007f\u0001"}}"#;
    const PY_CANONICAL: &str = r#"{"guest_id": "guest_456", "id": "booking_123", "n": [1, 2.5, 1e+16, 1.5e-05, 0.0001, -0.0, 123456789.125, true, null], "name": "Caf\u00e9 \u2713 \ud83d\ude00", "total_price": 100.0, "z": {"a": "x\"y\\\n\t\u007f\u0001", "b": 1}}"#;
    const PY_CANONICAL_HMAC: &str =
        "a8f7f3fd1f10c75873aed1230d31603e91c93fdc2c42e0f59fbaecca5eca101e";

    fn secrets(list: &str) -> PartnerSecrets {
        PartnerSecrets::parse(list).unwrap()
    }

    fn hex_hmac(key: &[u8], body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn what_the_sender_signs_verifies_under_all_three_schemes() {
        let whsec = format!("whsec_{}", BASE64.encode(b"rotated key"));
        for secret in ["aurora_secret_key", whsec.as_str()] {
            let active = secrets(&format!("older,{secret}"));
            let value: serde_json::Value = serde_json::from_str(PY_BODY).unwrap();
            let raw = PY_BODY.as_bytes();
            let over_raw = sender::hex_signature(secret, raw).unwrap();
            assert!(active.verify_hex(&over_raw, raw));
            let canonical = python_canonical_json(&value);
            let over_canonical = sender::hex_signature(secret, canonical.as_bytes()).unwrap();
            assert!(active.verify_hex(&over_canonical, raw));
            let [id, ts, sig] =
                sender::standard_headers(secret, "msg_1", 1_700_000_000, raw).unwrap();
            assert_eq!(
                (id.0, ts.0, sig.0),
                (WEBHOOK_ID, WEBHOOK_TIMESTAMP, WEBHOOK_SIGNATURE)
            );
            assert_eq!(
                active.verify_standard(&id.1, &ts.1, &sig.1, raw, 1_700_000_010),
                Ok(())
            );
            assert!(!secrets("older").verify_hex(&over_raw, raw));
        }
        assert_eq!(
            sender::hex_signature(PY_BODY, b"x").unwrap(),
            hex_hmac(PY_BODY.as_bytes(), b"x")
        );
        assert_eq!(
            sender::hex_signature("aurora_secret_key", PY_CANONICAL.as_bytes()).unwrap(),
            PY_CANONICAL_HMAC
        );
        assert_eq!(
            sender::hex_signature("whsec_not base64!", b"x"),
            Err(SecretsError::BadBase64(1))
        );
    }

    #[test]
    fn canonical_json_matches_python_byte_for_byte() {
        let value: serde_json::Value = serde_json::from_str(PY_BODY).unwrap();
        assert_eq!(python_canonical_json(&value), PY_CANONICAL);
    }

    #[test]
    fn float_repr_matches_python() {
        for (f, py) in [
            (100.0, "100.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (-2.5, "-2.5"),
            (1e300, "1e+300"),
            (123.456, "123.456"),
        ] {
            assert_eq!(python_float_repr(f), py, "{f}");
        }
    }

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
}
