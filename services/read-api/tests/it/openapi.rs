//! `/openapi.json` lists every route the service answers, and `/docs` renders it.

use haven_common::testing::browser::Chromium;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

/// Every route read-api serves.
const ROUTES: [&str; 13] = [
    "/analytics/reconciliation",
    "/analytics/token-stats",
    "/analytics/transactions/{user_id}",
    "/analytics/user/{user_id}",
    "/docs",
    "/health",
    "/livez",
    "/metrics",
    "/openapi.json",
    "/token/balance",
    "/token/balance/{user_id}",
    "/token/redemptions/{request_id}",
    "/token/transactions/{tx_id}",
];

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_each_is_served() {
    let app = spawn_app().await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "HAVEN read-api");
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ROUTES);

    // Each documented path is a real route: none falls through to the
    // router's JSON 404 (`Not found`), which an undocumented or misspelt
    // path would.
    for path in ROUTES {
        assert!(doc["paths"][path]["get"].is_object(), "{path} has no GET");
        let concrete = path
            .replace("{user_id}", "someone")
            .replace("{tx_id}", "some_tx")
            .replace("{request_id}", "0190f0e6-7b2a-7c3d-8e4f-000000000001");
        let res = app.app.get(&concrete).await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let fallback =
            serde_json::from_str::<Value>(&text).ok() == Some(json!({"detail": "Not found"}));
        assert!(
            !fallback,
            "{concrete} is documented but not routed ({status})"
        );
        assert!(status < 500, "{concrete}: {status} {text}");
    }

    // The contract's field names are in the schemas.
    let schemas = &doc["components"]["schemas"];
    for (schema, fields) in [
        (
            "BalanceBody",
            &[
                "user_id",
                "wallet_address",
                "balance",
                "pending",
                "available",
            ][..],
        ),
        (
            "UserAnalytics",
            &[
                "user_id",
                "email",
                "wallet_address",
                "balance",
                "total_earned",
                "total_redeemed",
                "kyc_verified",
            ],
        ),
        (
            "TokenStats",
            &[
                "total_minted",
                "total_burned",
                "circulating_supply",
                "total_users",
                "total_transactions",
            ],
        ),
        ("Transactions", &["user_id", "count", "transactions"]),
        (
            "Transaction",
            &[
                "tx_id",
                "user_id",
                "tx_type",
                "amount",
                "reason",
                "status",
                "blockchain_tx",
                "created_at",
                "confirmed_at",
            ],
        ),
        (
            "TokenTransaction",
            &[
                "tx_id",
                "status",
                "blockchain_tx",
                "block_number",
                "reason",
                "requested_by",
                "amount",
                "history",
                "ledger_movements",
                "final",
            ],
        ),
        (
            "Redemption",
            &[
                "request_id",
                "state",
                "history",
                "burn",
                "payout_id",
                "refund",
                "requested_by",
                "fee_amount",
                "ledger_movements",
            ],
        ),
    ] {
        for field in fields {
            assert!(
                schemas[schema]["properties"][field].is_object(),
                "{schema}.{field} missing: {}",
                schemas[schema]
            );
        }
    }
    let limit = doc["paths"]["/analytics/transactions/{user_id}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()
        .clone();
    assert_eq!(limit["schema"]["maximum"], 500, "{limit}");

    let page = app.get_text("/docs", 200).await;
    assert!(page.contains("HAVEN read-api"), "{page}");
    assert!(page.contains("/token/balance/{user_id}"));
    app.finish().await;
}

/// `/docs` renders with no internet: a headless Chromium in which no host
/// name resolves opens the page, and Swagger UI (served by the service
/// itself) has rendered every operation. The page used to load its script
/// from a CDN and stayed blank offline.
#[tokio::test]
async fn the_docs_page_renders_every_operation_without_the_internet() {
    let Some(chromium) = Chromium::find() else {
        return;
    };
    let app = spawn_app().await;
    let dom = chromium
        .dump_dom(&format!("{}/docs", app.app.address))
        .await;
    // `data-path` is on Swagger UI's rendered operations only: the embedded
    // document names the paths too, but never as an attribute.
    for path in ROUTES {
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "{path} is not rendered; the page's DOM:\n{dom}"
        );
    }
    assert!(dom.contains("HAVEN read-api"), "{dom}");
    app.finish().await;
}
