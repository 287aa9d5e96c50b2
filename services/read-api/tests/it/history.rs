//! `GET /token/transactions/{tx_id}` and `GET /token/redemptions/{request_id}`:
//! what happened to one mint, burn or redemption, on PostgreSQL and SQLite,
//! with the rows written as the services write them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap here is a failed test

use chrono::{DateTime, Duration, Utc};
use clap::Parser as _;
use haven_common::testing::app::TestApp;
use haven_common::testing::db::TestDb;
use haven_entity::ledger::{Account, Movement};
use haven_entity::ledger_movements::MovementKind;
use haven_entity::redemptions::{self, Changes, PayoutTerms, RedemptionState};
use haven_entity::token_transactions::{self, TxStatus, TxType};
use read_api::Config;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{hnv, hnv_str, post, reserve, token_tx, user, wallet};

async fn spawn(db: &TestDb) -> TestApp<read_api::Error> {
    let config = Config::try_parse_from(["read-api", "--database-url", db.url()]).unwrap();
    TestApp::spawn(|listener, shutdown| read_api::run(config, listener, shutdown)).await
}

async fn get(app: &TestApp<read_api::Error>, path: &str) -> (u16, Value) {
    let res = app.get(path).await;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("GET {path}: {status} non-JSON {text:?}: {err}"));
    (status, body)
}

/// Records who asked and when the request was accepted, as webhook-ingress
/// and reward-calculator write them with the row.
async fn asked(db: &DatabaseConnection, tx_id: &str, by: Option<&str>, at: DateTime<Utc>) {
    token_transactions::Entity::update_many()
        .col_expr(
            token_transactions::Column::RequestedBy,
            Expr::value(by.map(str::to_owned)),
        )
        .col_expr(
            token_transactions::Column::AcceptedAt,
            Expr::value(Some(at)),
        )
        .filter(token_transactions::Column::TxId.eq(tx_id))
        .exec(db)
        .await
        .unwrap();
}

async fn redeemed_by(db: &DatabaseConnection, id: Uuid, by: &str) {
    redemptions::Entity::update_many()
        .col_expr(
            redemptions::Column::RequestedBy,
            Expr::value(Some(by.to_owned())),
        )
        .filter(redemptions::Column::RequestId.eq(id))
        .exec(db)
        .await
        .unwrap();
}

/// Moves redemption `id` through `steps` as redemption-payout does.
async fn walk(db: &DatabaseConnection, id: Uuid, steps: &[(RedemptionState, Changes)]) {
    let mut from = RedemptionState::Reserved;
    for (to, changes) in steps {
        assert!(
            redemptions::transition(db, id, from, *to, changes.clone())
                .await
                .unwrap(),
            "{from:?} -> {to:?}"
        );
        from = *to;
    }
}

fn states(body: &Value) -> Vec<&str> {
    body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["state"].as_str().unwrap())
        .collect()
}

fn times_never_go_back(body: &Value) {
    let times: Vec<DateTime<Utc>> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{body}");
}

fn references(body: &Value) -> Vec<String> {
    body["ledger_movements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["reference"].as_str().unwrap().to_owned())
        .collect()
}

async fn what_happened_to_each(db: TestDb) {
    let conn = db.conn();
    let guest = user(conn, "guest_x", None, &wallet(9), true).await;

    // An operator's mint, accepted a minute before it was recorded, confirmed.
    let mint = token_tx(
        conn,
        guest,
        "mint_key_1",
        TxType::Mint,
        hnv_str("1000.25"),
        "booking",
        TxStatus::Confirmed,
    )
    .await;
    let accepted = Utc::now() - Duration::minutes(1);
    asked(conn, "mint_key_1", Some("front-desk"), accepted).await;
    // A reward's mint, queued: nobody asked but the partner.
    token_tx(
        conn,
        guest,
        "reward_0001",
        TxType::Mint,
        hnv(5),
        "review",
        TxStatus::Pending,
    )
    .await;

    // A redemption paid out, asked for by the support desk.
    let paid = reserve(conn, guest, "redeem-paid", hnv(500)).await;
    redeemed_by(conn, paid, "support-desk").await;
    let burn_id = format!("redemption_{paid}");
    let burn = token_tx(
        conn,
        guest,
        &burn_id,
        TxType::Burn,
        hnv(500),
        "redemption",
        TxStatus::Confirmed,
    )
    .await;
    walk(
        conn,
        paid,
        &[
            (
                RedemptionState::BurnRequested,
                Changes {
                    burn_tx_id: Some(burn_id.clone()),
                    payout_terms: Some(PayoutTerms {
                        fiat_amount: "49.00".into(),
                        currency: "CAD".into(),
                    }),
                    ..Changes::default()
                },
            ),
            (RedemptionState::Burned, Changes::default()),
            (RedemptionState::PayoutUnknown, Changes::default()),
            (
                RedemptionState::PayoutRequested,
                Changes {
                    payout_reference: Some("po_123".into()),
                    ..Changes::default()
                },
            ),
            (
                RedemptionState::Paid,
                Changes {
                    completed: true,
                    ..Changes::default()
                },
            ),
        ],
    )
    .await;
    // The payout, posted with the last step.
    post(
        conn,
        Movement::transfer(
            format!("payout:{paid}"),
            MovementKind::Payout,
            Account::Burned,
            Account::Payout,
            hnv(490),
        )
        .unwrap(),
    )
    .await;

    // A redemption whose payout the provider refused after the burn: refunded.
    let refunded = reserve(conn, guest, "redeem-refused", hnv(100)).await;
    let refused_burn = format!("redemption_{refunded}");
    token_tx(
        conn,
        guest,
        &refused_burn,
        TxType::Burn,
        hnv(100),
        "redemption",
        TxStatus::Confirmed,
    )
    .await;
    walk(
        conn,
        refunded,
        &[
            (
                RedemptionState::BurnRequested,
                Changes {
                    burn_tx_id: Some(refused_burn.clone()),
                    ..Changes::default()
                },
            ),
            (RedemptionState::Burned, Changes::default()),
            (RedemptionState::PayoutUnknown, Changes::default()),
        ],
    )
    .await;
    assert!(
        redemptions::transition(
            conn,
            refunded,
            RedemptionState::PayoutUnknown,
            RedemptionState::RefundRequested,
            Changes {
                failure_reason: Some("provider refused: 422 secret-internal-detail".into()),
                ..Changes::default()
            },
        )
        .await
        .unwrap()
    );
    let refund_id = format!("refund_{refunded}");
    token_tx(
        conn,
        guest,
        &refund_id,
        TxType::Mint,
        hnv(100),
        "refund",
        TxStatus::Confirmed,
    )
    .await;
    assert!(
        redemptions::transition(
            conn,
            refunded,
            RedemptionState::RefundRequested,
            RedemptionState::Refunded,
            Changes {
                completed: true,
                ..Changes::default()
            },
        )
        .await
        .unwrap()
    );

    let app = spawn(&db).await;

    // The operator's mint: status, chain hash, block, reason, who asked.
    let (status, body) = get(&app, "/token/transactions/mint_key_1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tx_id"], "mint_key_1");
    assert_eq!(body["user_id"], "guest_x");
    assert_eq!(body["tx_type"], "mint");
    assert_eq!(body["amount"], json!(1000.25), "an exact decimal");
    assert_eq!(body["reason"], "booking");
    assert_eq!(body["status"], "confirmed");
    assert_eq!(
        body["blockchain_tx"],
        format!("0x{:064x}", mint.as_u128()),
        "the helper's hash"
    );
    assert_eq!(body["block_number"], 7);
    assert_eq!(body["final"], false);
    assert_eq!(body["requested_by"], "front-desk");
    assert_eq!(body["redemption_id"], Value::Null);
    assert_eq!(
        states(&body),
        ["accepted", "recorded", "submitted", "confirmed"]
    );
    assert_eq!(
        body["history"][0]["at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
            .timestamp(),
        accepted.timestamp()
    );
    times_never_go_back(&body);
    assert_eq!(
        body["ledger_movements"],
        json!([{
            "reference": format!("mint:{mint}"),
            "kind": "mint",
            "amount": 1000.25,
            "from": ["supply"],
            "to": ["user_available"],
            "posted_at": body["ledger_movements"][0]["posted_at"],
        }])
    );

    // The reward's mint, still queued: nobody asked, nothing moved yet.
    let (status, body) = get(&app, "/token/transactions/reward_0001").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["requested_by"], Value::Null);
    assert_eq!(body["blockchain_tx"], Value::Null);
    assert_eq!(states(&body), ["recorded"]);
    assert_eq!(body["ledger_movements"], json!([]));

    // A redemption's burn names its redemption.
    let (status, body) = get(&app, &format!("/token/transactions/{burn_id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redemption_id"], paid.to_string());
    assert_eq!(references(&body), [format!("burn:{burn}")]);

    // The paid redemption: every state, the burn, the payout id.
    let (status, body) = get(&app, &format!("/token/redemptions/{paid}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["request_id"], paid.to_string());
    assert_eq!(body["user_id"], "guest_x");
    assert_eq!(body["state"], "paid");
    assert_eq!(body["requested_by"], "support-desk");
    assert_eq!(
        (
            body["amount"].clone(),
            body["burn_amount"].clone(),
            body["payout_amount"].clone(),
            body["fee_amount"].clone()
        ),
        (json!(500.0), json!(500.0), json!(490.0), json!(10.0))
    );
    assert_eq!(body["withdrawal_method"], "bank_transfer");
    assert_eq!(
        states(&body),
        [
            "reserved",
            "burn_requested",
            "burned",
            "payout_unknown",
            "payout_requested",
            "paid"
        ]
    );
    times_never_go_back(&body);
    assert_eq!(body["burn"]["tx_id"], burn_id);
    assert_eq!(body["burn"]["status"], "confirmed");
    assert_eq!(body["burn"]["amount"], json!(500.0));
    assert_eq!(body["burn"]["block_number"], 7);
    assert_eq!(body["payout_id"], "po_123");
    assert_eq!(body["payout_fiat_amount"], "49.00");
    assert_eq!(body["payout_currency"], "CAD");
    assert_eq!(body["refund"], Value::Null);
    assert!(body["completed_at"].is_string(), "{body}");
    assert_eq!(
        references(&body),
        [
            format!("reserve:{paid}"),
            format!("burn:{burn}"),
            format!("payout:{paid}")
        ]
    );
    assert_eq!(
        body["ledger_movements"][0]["from"],
        json!(["user_available"])
    );
    assert_eq!(body["ledger_movements"][0]["to"], json!(["user_reserved"]));
    assert_eq!(body["ledger_movements"][2]["amount"], json!(490.0));

    // The refunded one: no payout id, its refund, and not the stored reason.
    let (status, body) = get(&app, &format!("/token/redemptions/{refunded}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "refunded");
    assert_eq!(body["requested_by"], Value::Null, "recorded without a name");
    assert_eq!(
        states(&body),
        [
            "reserved",
            "burn_requested",
            "burned",
            "payout_unknown",
            "refund_requested",
            "refunded"
        ]
    );
    assert_eq!(body["payout_id"], Value::Null);
    assert_eq!(body["refund"]["tx_id"], refund_id);
    assert_eq!(body["refund"]["status"], "confirmed");
    assert!(
        !body.to_string().contains("secret-internal-detail"),
        "{body}"
    );
    let (status, body) = get(&app, &format!("/token/transactions/{refund_id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redemption_id"], refunded.to_string());
    assert_eq!(body["reason"], "refund");

    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_transaction_and_a_redemption_tell_what_happened_on_postgres() {
    what_happened_to_each(TestDb::new().await).await;
}

#[tokio::test]
async fn a_transaction_and_a_redemption_tell_what_happened_on_sqlite() {
    what_happened_to_each(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn unknown_ids_are_404_and_malformed_ones_422() {
    let db = TestDb::new().await;
    let app = spawn(&db).await;
    let (status, body) = get(&app, "/token/transactions/nothing_here").await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Transaction not found"}))
    );
    let (status, body) = get(&app, &format!("/token/redemptions/{}", Uuid::now_v7())).await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Redemption not found"}))
    );
    for path in [
        "/token/redemptions/not-a-uuid".to_owned(),
        "/token/redemptions/123".to_owned(),
        format!("/token/redemptions/{}x", Uuid::now_v7()),
    ] {
        let (status, body) = get(&app, &path).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("`request_id`"),
            "{path}: {body}"
        );
    }
    for path in [
        format!("/token/transactions/{}", "a".repeat(256)),
        "/token/transactions/a%07b".to_owned(),
        "/token/transactions/%20".to_owned(),
    ] {
        let (status, body) = get(&app, &path).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("`tx_id`"),
            "{path}: {body}"
        );
    }
    app.stop().await;
    db.cleanup().await;
}
