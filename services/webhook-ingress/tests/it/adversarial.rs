//! Property tests of the two parts that read attacker-controlled bytes
//! before anything is authenticated or stored: the signature verifier and
//! the payload parser. Whatever they are given, they answer (never panic),
//! refuse what is malformed, and accept what a partner really signed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use webhook_ingress::payloads::{self, WebhookKind};
use webhook_ingress::signature::{
    Partner, PartnerSecrets, Refusal, StandardError, sender, verify_request,
};

const SECRET: &str = "partner-secret";
const NOW: i64 = 1_700_000_000;

fn secrets() -> PartnerSecrets {
    PartnerSecrets::parse(&format!("older-secret,{SECRET}")).unwrap()
}

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
        }
    }
    map
}

fn kind() -> impl Strategy<Value = WebhookKind> {
    proptest::sample::select(WebhookKind::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Anything in the three Standard Webhooks headers and the body is an
    /// answer, and only the partner's signature is a yes.
    #[test]
    fn arbitrary_standard_headers_never_verify_or_panic(
        id in ".{0,64}",
        timestamp in prop_oneof![
            any::<i64>().prop_map(|t| t.to_string()),
            (NOW - 400..NOW + 400).prop_map(|t| t.to_string()),
            ".{0,24}",
        ],
        signatures in prop::collection::vec(
            prop_oneof![
                "v1,[A-Za-z0-9+/=]{0,60}",
                "v[0-9a-z]{0,3},[ -~]{0,50}",
                "[ -~]{0,40}",
            ],
            0..20,
        ),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let h = headers(&[
            ("webhook-id", id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signatures.join(" ")),
        ]);
        prop_assert!(verify_request(Partner::Aurora, &secrets(), &h, Bytes::from(body), NOW).is_err());
    }

    /// Every listed candidate costs nothing once the list is too long: the
    /// refusal comes before any HMAC, whatever the body.
    #[test]
    fn long_candidate_lists_are_refused_by_shape(
        count in 9usize..3_000,
        body_len in 0usize..200_000,
    ) {
        let body = vec![b'x'; body_len];
        let [id, ts, sig] = sender::standard_headers(SECRET, "msg_1", NOW, &body).unwrap();
        let listed = vec![sig.1.as_str(); count].join(" ");
        let result = secrets().verify_standard(&id.1, &ts.1, &listed, &body, NOW);
        prop_assert!(matches!(result, Err(StandardError::TooMany | StandardError::TooLong)), "{result:?}");
    }

    /// Hex headers of any shape are refused unless they are the signature.
    #[test]
    fn arbitrary_hex_headers_never_verify_or_panic(
        header in prop_oneof!["[0-9a-fA-F]{0,200}", "sha256=[ -~]{0,80}", "[ -~]{0,300}"],
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let h = headers(&[("x-tribe-signature", header)]);
        let result = verify_request(Partner::Tribe, &secrets(), &h, Bytes::from(body), NOW);
        prop_assert!(matches!(result, Err(Refusal::Invalid(_) | Refusal::Missing)), "{result:?}");
    }

    /// What a partner signs verifies, under both schemes, for any body.
    #[test]
    fn what_a_partner_signs_verifies(
        body in prop::collection::vec(any::<u8>(), 0..2_048),
        id in "[a-zA-Z0-9_]{1,40}",
        skew in -300i64..=300,
    ) {
        let signed = sender::standard_headers(SECRET, &id, NOW + skew, &body).unwrap();
        let h = headers(&signed.map(|(name, value)| (name, value)));
        let verified = verify_request(Partner::Aurora, &secrets(), &h, Bytes::from(body.clone()), NOW).unwrap();
        prop_assert_eq!(verified.delivery_id(), Some(id.as_str()));
        let hex = sender::hex_signature(SECRET, &body).unwrap();
        let h = headers(&[("x-aurora-signature", hex)]);
        prop_assert!(verify_request(Partner::Aurora, &secrets(), &h, Bytes::from(body), NOW).is_ok());
    }

    /// Any bytes as a body of any kind: a typed event or a named refusal.
    #[test]
    fn arbitrary_bodies_parse_or_are_refused(
        kind in kind(),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            "\\{(\"[a-z_A-Z]{1,16}\":(\"[ -~]{0,20}\"|-?[0-9]{1,30}(\\.[0-9]{0,25})?([eE][-+]?[0-9]{1,4})?|true|null|\\[\\]|\\{\\}),?){0,8}\\}"
                .prop_map(String::into_bytes),
        ],
    ) {
        if let Err(err) = payloads::parse(kind, &body) {
            prop_assert!(!err.to_string().is_empty());
        }
    }

    /// Numbers in every form: an amount is exact or refused, never rounded,
    /// and more than 18 decimals is always a refusal.
    #[test]
    fn amounts_in_every_number_form(
        int in "0|[1-9][0-9]{0,12}|0[0-9]{1,3}|[0-9]{30,60}",
        frac in "[0-9]{0,25}",
        exp in prop::option::of(-30i32..30),
    ) {
        let mut number = int.clone();
        if !frac.is_empty() {
            number.push('.');
            number.push_str(&frac);
        }
        if let Some(e) = exp {
            number.push_str(&format!("e{e}"));
        }
        let body = format!(r#"{{"id":"s","user_id":"u","amount":{number}}}"#);
        let decimals = i64::try_from(frac.len()).unwrap() - i64::from(exp.unwrap_or(0));
        match payloads::parse(WebhookKind::StakingStarted, body.as_bytes()) {
            Ok(_) => prop_assert!(decimals <= 18, "{number} has {decimals} decimals"),
            // Leading zeros are not JSON at all: refused as a body.
            Err(err) => prop_assert!(
                err.to_string().contains("amount") || err == payloads::ValidationError::NotAnObject,
                "{number}: {err}"
            ),
        }
    }
}

/// Nesting far deeper than any payload: refused, no stack overflow.
#[test]
fn deep_json_is_refused_without_overflowing_the_stack() {
    for kind in WebhookKind::ALL {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(payloads::parse(kind, deep.as_bytes()).is_err());
        let nested = format!(
            r#"{{"id":"b","guest_id":"g","x":{}1{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        // Deep inside a field no kind knows, it is skipped over without
        // recursion and never becomes part of the event; anywhere else it
        // is refused. Either way: an answer, not a stack overflow.
        let _ = payloads::parse(kind, nested.as_bytes());
    }
    // The verifier's canonical-JSON fallback parses the body too.
    let deep = format!("{}{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    let h = headers(&[("x-aurora-signature", "0".repeat(64))]);
    assert!(verify_request(Partner::Aurora, &secrets(), &h, Bytes::from(deep), NOW).is_err());
}
