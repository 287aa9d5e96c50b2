//! `havenctl show` against a fresh database holding what the services
//! write: a user, a confirmed reward mint with its ledger movement, the
//! partner event it came from, and a redemption with its burn.

use haven_common::testing::db::TestDb;
use haven_entity::inbound_events::{self, NewInboundEvent};
use haven_entity::redemptions::{self, Changes, NewRedemption, RedemptionState, WithdrawalMethod};
use haven_entity::rewards::{self, NewReward, RewardStatus};
use haven_entity::token_transactions::{self, NewTokenTransaction, TxType};
use haven_messages::{Booking, PartnerEvent};
use uuid::Uuid;

use crate::helpers::{bin, confirmed_mint, hnv, json, run, user};

#[tokio::test]
async fn show_answers_what_happened_to_a_user_a_transaction_an_event_and_a_redemption() {
    let db = TestDb::new().await;
    let conn = db.conn();
    let url = db.url().to_owned();
    let guest = user(conn, "guest-7").await;

    // The booking event, its reward and the reward's confirmed mint.
    let event = PartnerEvent::AuroraBookingCreated(Booking {
        booking_id: "B-77".into(),
        guest_id: "guest-7".into(),
        guest_email: None,
        total_price: "100.00".into(),
        nights: 2,
        check_in: None,
        check_out: None,
    });
    let message_id = Uuid::now_v7();
    inbound_events::record(
        conn,
        NewInboundEvent {
            partner: "aurora".into(),
            kind: "aurora.booking_created".into(),
            event_key: "B-77".into(),
            delivery_id: Some("msg_2Kx".into()),
            message_id,
            payload: serde_json::to_value(&event).unwrap(),
        },
    )
    .await
    .unwrap();
    let reward_id = Uuid::now_v7();
    let tx_id = format!("reward_{reward_id}");
    let mint = confirmed_mint(conn, &guest, &tx_id, hnv(100), "booking").await;
    rewards::insert(
        conn,
        NewReward {
            id: reward_id,
            source_reference: "aurora:booking:B-77".into(),
            user_id: guest.id,
            rule: "booking".into(),
            rule_version: 1,
            amount: hnv(100),
            status: RewardStatus::Minted,
            token_tx_id: Some(tx_id.clone()),
        },
    )
    .await
    .unwrap()
    .unwrap();

    // show user: by the partners' id and by the internal id.
    let shown = json(&["--json", "show", "user", "guest-7", "--database-url", &url]).await;
    assert_eq!(shown["user"]["id"], guest.id.to_string());
    assert_eq!(shown["balance"]["available"], "100.0");
    assert_eq!(shown["transactions"][0]["tx_id"], tx_id);
    let internal = guest.id.to_string();
    let by_internal = json(&["--json", "show", "user", &internal, "--database-url", &url]).await;
    assert_eq!(by_internal["user"]["user_id"], "guest-7");

    // show tx: status, hash, block, the ledger movement, the reward it pays.
    let shown = json(&["--json", "show", "tx", &tx_id, "--database-url", &url]).await;
    assert_eq!(shown["transaction"]["status"], "confirmed");
    assert_eq!(shown["transaction"]["block_number"], 42);
    assert_eq!(shown["transaction"]["amount"], "100.0");
    assert_eq!(shown["user_id"], "guest-7");
    let movement = &shown["ledger_movements"][0];
    assert_eq!(movement["reference"], format!("mint:{}", mint.id));
    assert_eq!(movement["kind"], "mint");
    assert_eq!(movement["entries"].as_array().unwrap().len(), 2);
    assert_eq!(shown["reward"]["source_reference"], "aurora:booking:B-77");
    let history: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert!(
        history.iter().any(|h| h.contains("confirmed in block 42")),
        "{history:?}"
    );

    // show event: by its booking id, by its webhook-id; the reward it made.
    for id in ["B-77", "msg_2Kx", &message_id.to_string()] {
        let shown = json(&[
            "--json",
            "show",
            "event",
            "aurora",
            id,
            "--database-url",
            &url,
        ])
        .await;
        let found = &shown["events"][0];
        assert_eq!(found["event"]["message_id"], message_id.to_string(), "{id}");
        assert_eq!(found["source_reference"], "aurora:booking:B-77");
        assert_eq!(found["rewards"][0]["reward"]["amount"], "100.0");
        assert_eq!(found["rewards"][0]["mint"]["tx_id"], tx_id);
    }
    let human = run(&["show", "event", "aurora", "B-77", "--database-url", &url])
        .await
        .unwrap()
        .lines
        .join("\n");
    assert!(
        human.contains("reward aurora:booking:B-77 100.0 HNV by rule booking"),
        "{human}"
    );

    // show redemption: reserved, burn requested and confirmed, payout requested.
    let redemption = redemptions::insert_reserved(
        conn,
        NewRedemption {
            user_id: guest.id,
            idempotency_key: "redeem-1".into(),
            amount: hnv(40),
            payout_amount: hnv(39),
            method: WithdrawalMethod::Paypal,
            address: Some("guest@example.com".into()),
            requested_by: Some("ops-alice".into()),
        },
    )
    .await
    .unwrap()
    .unwrap();
    let rid = redemption.request_id;
    let burn_tx_id = format!("redemption_{rid}");
    token_transactions::insert_pending(
        conn,
        NewTokenTransaction {
            tx_id: burn_tx_id.clone(),
            user_id: guest.id,
            tx_type: TxType::Burn,
            amount: hnv(40),
            reason: "redemption".into(),
            requested_by: Some("ops-alice".into()),
            accepted_at: None,
        },
    )
    .await
    .unwrap()
    .unwrap();
    for (from, to, changes) in [
        (
            RedemptionState::Reserved,
            RedemptionState::BurnRequested,
            Changes {
                burn_tx_id: Some(burn_tx_id.clone()),
                ..Changes::default()
            },
        ),
        (
            RedemptionState::BurnRequested,
            RedemptionState::Burned,
            Changes::default(),
        ),
        (
            RedemptionState::Burned,
            RedemptionState::PayoutUnknown,
            Changes::default(),
        ),
        (
            RedemptionState::PayoutUnknown,
            RedemptionState::PayoutRequested,
            Changes {
                payout_reference: Some("po_123".into()),
                ..Changes::default()
            },
        ),
    ] {
        assert!(
            redemptions::transition(conn, rid, from, to, changes)
                .await
                .unwrap()
        );
    }
    let rid_text = rid.to_string();
    let shown = json(&[
        "--json",
        "show",
        "redemption",
        &rid_text,
        "--database-url",
        &url,
    ])
    .await;
    assert_eq!(shown["redemption"]["state"], "payout_requested");
    assert_eq!(shown["redemption"]["payout_id"], "po_123");
    assert_eq!(shown["redemption"]["requested_by"], "ops-alice");
    assert_eq!(shown["burn"]["requested_by"], "ops-alice");
    assert_eq!(shown["burn"]["tx_id"], burn_tx_id);
    assert_eq!(shown["burn"]["status"], "pending");
    assert_eq!(shown["refund"], serde_json::Value::Null);
    let history: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    // Every state it entered, in order (the database records them).
    let states: Vec<&str> = history
        .iter()
        .copied()
        .filter(|h| RedemptionState::ALL.iter().any(|s| s.as_str() == *h))
        .collect();
    assert_eq!(
        states,
        [
            "reserved",
            "burn_requested",
            "burned",
            "payout_unknown",
            "payout_requested"
        ],
        "{history:?}"
    );
    assert!(history.contains(&"payout id po_123"), "{history:?}");
    let human = run(&["show", "redemption", &rid_text, "--database-url", &url])
        .await
        .unwrap()
        .lines
        .join("\n");
    assert!(human.contains("requested by ops-alice"), "{human}");

    // Not found: exit status 1 and one line naming what was asked for.
    let (code, out, err) = bin(&["show", "tx", "reward_nope", "--database-url", &url]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert_eq!(err.trim(), "havenctl: no token transaction `reward_nope`");
    let (code, _, err) = bin(&["show", "user", "nobody", "--database-url", &url]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no user `nobody`"), "{err}");
    let (code, _, err) = bin(&["show", "event", "tribe", "B-77", "--database-url", &url]);
    assert_eq!(code, 1, "{err}");
    // A malformed id is a usage error.
    let (code, _, err) = bin(&["show", "redemption", "not-a-uuid", "--database-url", &url]);
    assert_eq!(code, 2, "{err}");

    db.cleanup().await;
}

#[test]
fn a_database_password_is_never_printed() {
    let url = "postgres://haven:hunter2@127.0.0.1:1/haven";
    let (code, out, err) = bin(&[
        "show",
        "user",
        "x",
        "--database-url",
        url,
        "--database-acquire-timeout",
        "1s",
    ]);
    assert_eq!(code, 1);
    assert!(
        !out.contains("hunter2") && !err.contains("hunter2"),
        "{out}{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
