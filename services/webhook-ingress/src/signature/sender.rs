//! The sending side of the three schemes: how a partner signs what this
//! service verifies. For load tests, tools and tests; `secret` is one entry
//! as it is configured (raw, or `whsec_<base64>`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac as _;

use super::verify::{
    HmacSha256, SecretsError, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, key_of,
};

fn mac(secret: &str) -> Result<HmacSha256, SecretsError> {
    let key = key_of(secret).ok_or(SecretsError::BadBase64(1))?;
    HmacSha256::new_from_slice(&key).map_err(|_| SecretsError::Empty)
}

/// Schemes 1 and 2: the hex HMAC-SHA256 of `message` (the raw body, or
/// its [`python_canonical_json`](crate::signature::python_canonical_json) form),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::canonical::python_canonical_json;
    use crate::signature::fixtures::{PY_BODY, PY_CANONICAL, PY_CANONICAL_HMAC, hex_hmac, secrets};

    #[test]
    fn what_the_sender_signs_verifies_under_all_three_schemes() {
        let whsec = format!("whsec_{}", BASE64.encode(b"rotated key"));
        for secret in ["aurora_secret_key", whsec.as_str()] {
            let active = secrets(&format!("older,{secret}"));
            let value: serde_json::Value = serde_json::from_str(PY_BODY).unwrap();
            let raw = PY_BODY.as_bytes();
            let over_raw = hex_signature(secret, raw).unwrap();
            assert!(active.verify_hex(&over_raw, raw));
            let canonical = python_canonical_json(&value);
            let over_canonical = hex_signature(secret, canonical.as_bytes()).unwrap();
            assert!(active.verify_hex(&over_canonical, raw));
            let [id, ts, sig] = standard_headers(secret, "msg_1", 1_700_000_000, raw).unwrap();
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
            hex_signature(PY_BODY, b"x").unwrap(),
            hex_hmac(PY_BODY.as_bytes(), b"x")
        );
        assert_eq!(
            hex_signature("aurora_secret_key", PY_CANONICAL.as_bytes()).unwrap(),
            PY_CANONICAL_HMAC
        );
        assert_eq!(
            hex_signature("whsec_not base64!", b"x"),
            Err(SecretsError::BadBase64(1))
        );
    }
}
