//! `havenctl signer-lease`, `refund retry` and `reconcile` against a fresh
//! database (and a real anvil for `reconcile`).

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::U256;
use alloy::providers::{Provider, ProviderBuilder};
use haven_chain::contract::{HAVEN, encode_reason};
use haven_chain::store::LeaseStore as _;
use haven_chain::testing::{AnvilInstance, deploy_for_tests, dev_key};
use haven_common::testing::db::TestDb;
use haven_entity::chain_store::{DbDeployments, DbLeaseStore};
use haven_entity::redemptions::{self, Changes, NewRedemption, RedemptionState, WithdrawalMethod};
use haven_entity::token_transactions::{self, TxStatus};
use haven_entity::{outbox, signer_leases};
use haven_messages::{ChainRequest, Envelope};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryOrder};

use crate::helpers::{bin, confirmed_mint, hnv, json, run, user};

const SIGNER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

#[tokio::test]
async fn a_signer_lease_is_listed_and_released_for_the_next_replica() {
    let db = TestDb::new().await;
    let url = db.url().to_owned();
    let store = DbLeaseStore::new(db.conn().clone());
    assert!(
        store
            .take(SIGNER, "minter-a-1", Duration::from_secs(600))
            .await
            .unwrap()
    );
    // Another replica cannot take it while the lease runs.
    assert!(
        !store
            .take(SIGNER, "minter-b-1", Duration::from_secs(600))
            .await
            .unwrap()
    );

    let listed = json(&["--json", "signer-lease", "list", "--database-url", &url]).await;
    assert_eq!(listed["leases"][0]["holder"], "minter-a-1");
    assert_eq!(listed["leases"][0]["expired"], false);

    // Guarded by the holder: the wrong one releases nothing.
    let lower = SIGNER.to_lowercase();
    let refused = run(&[
        "signer-lease",
        "release",
        &lower,
        "--holder",
        "minter-x",
        "--database-url",
        &url,
    ])
    .await
    .unwrap_err();
    assert!(
        refused.line().contains("held by `minter-a-1`"),
        "{}",
        refused.line()
    );
    assert_eq!(
        signer_leases::Entity::find()
            .count(db.conn())
            .await
            .unwrap(),
        1
    );

    let released = json(&[
        "--json",
        "signer-lease",
        "release",
        &lower,
        "--database-url",
        &url,
    ])
    .await;
    assert_eq!(released["released"]["holder"], "minter-a-1");
    assert_eq!(
        signer_leases::Entity::find()
            .count(db.conn())
            .await
            .unwrap(),
        0
    );
    assert!(
        store
            .take(SIGNER, "minter-b-1", Duration::from_secs(600))
            .await
            .unwrap(),
        "the next replica takes it at once"
    );

    let (code, _, err) = bin(&["signer-lease", "release", "0xdead", "--database-url", &url]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no lease on signer `0xdead`"), "{err}");
    db.cleanup().await;
}

#[tokio::test]
async fn a_refund_left_for_an_operator_is_sent_again_and_nothing_else_is() {
    let db = TestDb::new().await;
    let conn = db.conn();
    let url = db.url().to_owned();
    let guest = user(conn, "guest-r").await;
    let redemption = redemptions::insert_reserved(
        conn,
        NewRedemption {
            user_id: guest.id,
            idempotency_key: "redeem-r".into(),
            amount: hnv(40),
            payout_amount: hnv(39),
            method: WithdrawalMethod::BankTransfer,
            address: None,
            requested_by: Some("ops-bob".into()),
        },
    )
    .await
    .unwrap()
    .unwrap();
    let rid = redemption.request_id;
    for (from, to) in [
        (RedemptionState::Reserved, RedemptionState::BurnRequested),
        (RedemptionState::BurnRequested, RedemptionState::Burned),
        (RedemptionState::Burned, RedemptionState::PayoutUnknown),
    ] {
        assert!(
            redemptions::transition(conn, rid, from, to, Changes::default())
                .await
                .unwrap()
        );
    }
    let rid_text = rid.to_string();
    let retry = [
        "refund",
        "retry",
        rid_text.as_str(),
        "--database-url",
        url.as_str(),
    ];

    // Not waiting for an operator (no refund at all): refused, nothing written.
    let refused = run(&retry).await.unwrap_err();
    assert!(
        refused
            .line()
            .contains("not waiting for an operator (state payout_unknown"),
        "{}",
        refused.line()
    );

    // The payout is refused: redemption-payout's own step queues the refund mint...
    let current = redemptions::Entity::find_by_id(rid)
        .one(conn)
        .await
        .unwrap()
        .unwrap();
    assert!(
        redemption_payout::store::request_refund(
            conn,
            &current,
            &guest,
            RedemptionState::PayoutUnknown,
            "payout refused: account closed".into(),
            None,
        )
        .await
        .unwrap()
    );
    let refund_tx_id = redemption_payout::store::refund_tx_id(rid);
    // ...which is still pending: nothing to retry yet.
    let refused = run(&retry).await.unwrap_err();
    assert!(
        refused.line().contains("refund mint pending"),
        "{}",
        refused.line()
    );

    // chain-minter fails it for good: the saga leaves it for an operator.
    let mint = token_transactions::find_by_tx_id(conn, &refund_tx_id)
        .await
        .unwrap()
        .unwrap();
    let mut failed = mint.clone().into_active_model();
    failed.status = Set(TxStatus::Failed);
    failed.last_error = Set(Some("execution reverted: paused".into()));
    failed.update(conn).await.unwrap();
    let queued_before = outbox::Entity::find().count(conn).await.unwrap();

    let out = json(&[&["--json"][..], &retry].concat()).await;
    assert_eq!(out["refund_tx_id"], refund_tx_id);
    assert_eq!(out["previous_status"], "failed");
    assert_eq!(out["previous_error"], "execution reverted: paused");
    assert_eq!(out["amount"], "40.0");
    assert_eq!(out["requested_by"], "ops-bob");

    // The same row is pending again (same reference), and its mint request is queued.
    let again = token_transactions::find_by_tx_id(conn, &refund_tx_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.status, TxStatus::Pending);
    assert_eq!(again.id, mint.id);
    assert_eq!(again.chain_reference, mint.chain_reference);
    assert!(
        again
            .last_error
            .unwrap()
            .contains("sent again by an operator after: execution reverted: paused")
    );
    assert_eq!(
        outbox::Entity::find().count(conn).await.unwrap(),
        queued_before + 1
    );
    let newest = outbox::Entity::find()
        .order_by_desc(outbox::Column::Id)
        .one(conn)
        .await
        .unwrap()
        .unwrap();
    let request = Envelope::<ChainRequest>::decode(&newest.payload).unwrap();
    match request.payload {
        ChainRequest::Mint(m) => {
            assert_eq!(m.tx_id, mint.id);
            assert_eq!(m.amount_wei, 40 * 10u128.pow(18));
            assert_eq!(m.to_address, guest.wallet_address);
            assert_eq!(m.reason, "refund");
        }
        other => panic!("queued {other:?}"),
    }
    let state = redemptions::Entity::find_by_id(rid)
        .one(conn)
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(state, RedemptionState::RefundRequested);

    // Retrying again while it is pending is refused (exit 1), and changes nothing.
    let (code, _, err) = bin(&retry);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        outbox::Entity::find().count(conn).await.unwrap(),
        queued_before + 1
    );
    let (code, _, err) = bin(&[
        "refund",
        "retry",
        &uuid::Uuid::now_v7().to_string(),
        "--database-url",
        &url,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no redemption"), "{err}");
    db.cleanup().await;
}

#[tokio::test]
async fn reconcile_prints_read_apis_report_and_exits_3_on_a_mismatch() {
    let db = TestDb::new().await;
    let conn = db.conn();
    let url = db.url().to_owned();
    let anvil = AnvilInstance::spawn();
    let contract = deploy_for_tests(&anvil, &[1], &DbDeployments::new(conn.clone())).await;
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(dev_key(1)))
        .connect_http(anvil.endpoint().parse().unwrap());
    let token = HAVEN::new(contract, provider.erased());
    let mint_on_chain = |to: String, hnv: u64| {
        let token = token.clone();
        async move {
            token
                .mint(
                    to.parse().unwrap(),
                    U256::from(hnv) * U256::from(10u64).pow(U256::from(18)),
                    encode_reason("test").unwrap(),
                )
                .send()
                .await
                .unwrap()
                .get_receipt()
                .await
                .unwrap();
        }
    };
    let guest = user(conn, "guest-c").await;
    confirmed_mint(conn, &guest, "mint_c1", hnv(100), "booking").await;
    mint_on_chain(guest.wallet_address.clone(), 100).await;

    let endpoint = anvil.endpoint();
    let address = contract.to_string();
    let args = [
        "reconcile",
        "--rpc-url",
        &endpoint,
        "--contract-address",
        &address,
        "--database-url",
        &url,
    ];
    let agreed = run(&args).await.unwrap();
    assert_eq!(agreed.status, 0, "{:?}", agreed.lines);
    assert_eq!(agreed.json["matched"], true);
    assert_eq!(agreed.json["users_checked"], 1);
    assert!(
        agreed.lines[0].starts_with("ledger and chain agree"),
        "{:?}",
        agreed.lines
    );

    // The chain holds 5 HNV the ledger never recorded.
    mint_on_chain(guest.wallet_address.clone(), 5).await;
    let (code, out, err) = bin(&[&["--json"][..], &args].concat());
    assert_eq!(code, 3, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["matched"], false);
    assert_eq!(report["user_mismatches"], 1);
    assert_eq!(report["mismatches"][0]["user_id"], "guest-c");
    assert!(
        !out.contains(&endpoint) && !err.contains(&endpoint),
        "the RPC URL is never printed"
    );
    db.cleanup().await;
}
