//! Test vectors and helpers shared by the signature modules' tests.

use hmac::Mac as _;

use super::verify::{HmacSha256, PartnerSecrets};

/// Generated with CPython 3.11:
/// `json.dumps(p, sort_keys=True)` and `hmac.new(b"aurora_secret_key", m.encode(), hashlib.sha256).hexdigest()`.
pub(super) const PY_BODY: &str = r#"{"id": "booking_123", "guest_id": "guest_456", "total_price": 100.0, "name": "Caf\u00e9 \u2713 \ud83d\ude00", "n": [1, 2.5, 1e+16, 1.5e-05, 0.0001, -0.0, 123456789.125, true, null], "z": {"b": 1, "a": "x\"y\\\n\t\u007f\u0001"}}"#;
pub(super) const PY_CANONICAL: &str = r#"{"guest_id": "guest_456", "id": "booking_123", "n": [1, 2.5, 1e+16, 1.5e-05, 0.0001, -0.0, 123456789.125, true, null], "name": "Caf\u00e9 \u2713 \ud83d\ude00", "total_price": 100.0, "z": {"a": "x\"y\\\n\t\u007f\u0001", "b": 1}}"#;
pub(super) const PY_CANONICAL_HMAC: &str =
    "a8f7f3fd1f10c75873aed1230d31603e91c93fdc2c42e0f59fbaecca5eca101e";

pub(super) fn secrets(list: &str) -> PartnerSecrets {
    PartnerSecrets::parse(list).unwrap()
}

pub(super) fn hex_hmac(key: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
