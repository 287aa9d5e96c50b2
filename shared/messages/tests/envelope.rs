//! Round trips of every queue enum and the errors a consumer dead-letters on.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap freely

use haven_messages::*;
use proptest::prelude::*;
use uuid::Uuid;

fn booking() -> PartnerEvent {
    PartnerEvent::AuroraBookingCreated(Booking {
        booking_id: "booking_123".into(),
        guest_id: "guest_456".into(),
        guest_email: Some("guest@example.com".into()),
        total_price: "100.00".into(),
        nights: 2,
        check_in: Some("2026-12-01".into()),
        check_out: None,
    })
}

fn round_trip<P: QueueMessage + PartialEq + std::fmt::Debug>(payload: P) -> Envelope<P> {
    let env = Envelope::new(payload);
    let bytes = env.to_json().expect("serializes");
    let back = Envelope::<P>::decode(&bytes).expect("decodes");
    assert_eq!(back, env);
    back
}

#[test]
fn every_partner_event_round_trips() {
    let events = vec![
        booking(),
        PartnerEvent::AuroraBookingCompleted(BookingRef {
            booking_id: "b".into(),
            guest_id: "g".into(),
        }),
        PartnerEvent::AuroraBookingCancelled(BookingCancellation {
            booking_id: "b".into(),
            guest_id: "g".into(),
            cancellation_reason: Some("plans changed".into()),
        }),
        PartnerEvent::AuroraReviewSubmitted(Review {
            review_id: "r".into(),
            booking_id: None,
            guest_id: "g".into(),
            rating: 5,
        }),
        PartnerEvent::TribeEventAttendance(EventAttendance {
            event_id: "e".into(),
            attendee_id: "u".into(),
            event_name: Some("Wisdom Circle".into()),
            event_type: "wisdom_circle".into(),
            attended: true,
            timestamp: None,
        }),
        PartnerEvent::TribeContribution(Contribution {
            contribution_id: "c".into(),
            user_id: "u".into(),
            contribution_type: "guide".into(),
            quality_score: Some("1.5".into()),
        }),
        PartnerEvent::TribeStakingStarted(StakingStarted {
            stake_id: "s".into(),
            user_id: "u".into(),
            amount_wei: 1_000_000_000 * 10u128.pow(18),
        }),
        PartnerEvent::TribeCoachingMilestone(CoachingMilestone {
            user_id: "u".into(),
            milestone_name: "first".into(),
            tier: "advanced".into(),
        }),
        PartnerEvent::TribeReferralSuccess(ReferralSuccess {
            referrer_id: "a".into(),
            referred_id: "b".into(),
            tier: "gold".into(),
        }),
    ];
    let mut kinds: Vec<&str> = Vec::new();
    for event in events {
        let env = round_trip(event);
        assert!(env.routing_key().starts_with("partner."));
        assert_eq!(env.routing_key(), format!("partner.{}", env.kind()));
        kinds.push(env.kind());
    }
    kinds.sort_unstable();
    let mut known = PartnerEvent::KINDS.to_vec();
    known.sort_unstable();
    assert_eq!(kinds, known, "every declared kind is covered by a variant");
}

#[test]
fn chain_and_redemption_messages_round_trip() {
    let tx_id = Uuid::now_v7();
    round_trip(ChainRequest::Mint(MintRequest {
        tx_id,
        user_id: "u".into(),
        to_address: "0x742d35cc6634c0532925a3b844bc9e7595f10000".into(),
        amount_wei: 240 * 10u128.pow(18),
        reason: "booking".into(),
    }));
    round_trip(ChainRequest::Burn(BurnRequest {
        tx_id,
        user_id: "u".into(),
        from_address: "0x742d35cc6634c0532925a3b844bc9e7595f10000".into(),
        amount_wei: 1,
        reason: "redemption".into(),
        redemption_id: Some(Uuid::now_v7()),
    }));
    let confirmed = round_trip(ChainEvent::Confirmed(TxConfirmed {
        tx_id,
        tx_type: TxType::Burn,
        user_id: "u".into(),
        amount_wei: u128::MAX,
        tx_hash: "0xabc".into(),
        block_number: 7,
        redemption_id: None,
    }));
    assert_eq!(confirmed.routing_key(), "chain.event.confirmed");
    round_trip(ChainEvent::Failed(TxFailed {
        tx_id,
        tx_type: TxType::Mint,
        user_id: "u".into(),
        reason: "cap exceeded".into(),
        redemption_id: None,
    }));
    let redemption = round_trip(RedemptionCommand::Requested(RedemptionRequested {
        redemption_id: Uuid::now_v7(),
        user_id: "u".into(),
        amount_wei: 500 * 10u128.pow(18),
        payout_wei: 490 * 10u128.pow(18),
        withdrawal_method: WithdrawalMethod::Crypto,
        withdrawal_address: Some("0x742d35cc6634c0532925a3b844bc9e7595f10000".into()),
    }));
    assert_eq!(redemption.routing_key(), "redemption.requested");
}

#[test]
fn wire_format_is_flat_with_kind_and_payload() {
    let env = Envelope::new(booking());
    let value: serde_json::Value = serde_json::from_slice(&env.to_json().unwrap()).unwrap();
    assert_eq!(value["kind"], "aurora.booking_created");
    assert_eq!(value["schema_version"], 1);
    assert_eq!(value["payload"]["total_price"], "100.00");
    assert_eq!(value["message_id"], env.message_id.to_string());
    assert_eq!(
        env.message_id.get_version_num(),
        7,
        "message ids are UUIDv7"
    );
}

#[test]
fn caused_by_keeps_the_correlation_chain() {
    let parent = Envelope::new(booking());
    let child = Envelope::caused_by(
        &parent,
        ChainRequest::Mint(MintRequest {
            tx_id: Uuid::now_v7(),
            user_id: "guest_456".into(),
            to_address: "0x0".into(),
            amount_wei: 1,
            reason: "booking".into(),
        }),
    );
    assert_eq!(child.correlation_id, parent.correlation_id);
    assert_eq!(child.causation_id, Some(parent.message_id));
    assert_ne!(child.message_id, parent.message_id);
}

fn with_field(field: &str, value: serde_json::Value) -> Vec<u8> {
    let env = Envelope::new(booking());
    let mut json: serde_json::Value = serde_json::from_slice(&env.to_json().unwrap()).unwrap();
    json[field] = value;
    serde_json::to_vec(&json).unwrap()
}

#[test]
fn unknown_kind_is_rejected_by_name() {
    let bytes = with_field("kind", "aurora.booking_exploded".into());
    assert_eq!(
        Envelope::<PartnerEvent>::decode(&bytes),
        Err(DecodeError::UnknownKind {
            kind: "aurora.booking_exploded".into()
        })
    );
    // A kind of another queue is unknown here too.
    let bytes = with_field("kind", "mint".into());
    assert!(matches!(
        Envelope::<PartnerEvent>::decode(&bytes),
        Err(DecodeError::UnknownKind { .. })
    ));
}

#[test]
fn newer_schema_version_is_rejected() {
    let bytes = with_field("schema_version", 2.into());
    let err = Envelope::<PartnerEvent>::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "schema version 2 is newer than the supported version 1"
    );
}

#[test]
fn malformed_payloads_are_rejected_with_the_field() {
    let env = Envelope::new(booking());
    let mut json: serde_json::Value = serde_json::from_slice(&env.to_json().unwrap()).unwrap();
    json["payload"]["nights"] = "two".into();
    let err = Envelope::<PartnerEvent>::decode(&serde_json::to_vec(&json).unwrap()).unwrap_err();
    assert!(
        matches!(&err, DecodeError::Malformed(m) if m.contains("invalid type")),
        "{err}"
    );

    for bytes in [
        &b""[..],
        b"not json",
        b"{}",
        b"[]",
        b"{\"schema_version\":1}",
    ] {
        assert!(
            matches!(
                Envelope::<PartnerEvent>::decode(bytes),
                Err(DecodeError::Malformed(_))
            ),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn wei_amounts_must_be_digit_strings() {
    let make = |amount: serde_json::Value| {
        serde_json::json!({
            "message_id": Uuid::now_v7(), "schema_version": 1, "occurred_at": "2026-11-25T00:00:00Z",
            "correlation_id": Uuid::now_v7(), "causation_id": null, "kind": "mint",
            "payload": {"tx_id": Uuid::now_v7(), "user_id": "u", "to_address": "0x0", "amount_wei": amount, "reason": "r"}
        })
        .to_string()
    };
    assert!(Envelope::<ChainRequest>::decode(make("12".into()).as_bytes()).is_ok());
    for bad in [
        serde_json::json!(12),
        "-1".into(),
        "1.5".into(),
        "".into(),
        "1e3".into(),
        "340282366920938463463374607431768211456".into(),
    ] {
        assert!(
            matches!(
                Envelope::<ChainRequest>::decode(make(bad.clone()).as_bytes()),
                Err(DecodeError::Malformed(_))
            ),
            "{bad}"
        );
    }
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::<PartnerEvent>::decode(&bytes);
        let _ = Envelope::<ChainRequest>::decode(&bytes);
    }

    #[test]
    fn any_amount_round_trips(amount in any::<u128>()) {
        let env = Envelope::new(ChainRequest::Mint(MintRequest {
            tx_id: Uuid::now_v7(), user_id: "u".into(), to_address: "0x0".into(), amount_wei: amount, reason: "r".into(),
        }));
        let back = Envelope::<ChainRequest>::decode(&env.to_json().unwrap()).unwrap();
        prop_assert_eq!(back, env);
    }
}
