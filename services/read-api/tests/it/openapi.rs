//! `/openapi.json` lists every route the service answers, and `/docs` renders it.

use serde_json::{Value, json};

use crate::helpers::spawn_app;

/// Every route read-api serves.
const ROUTES: [&str; 11] = [
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
        let concrete = path.replace("{user_id}", "someone");
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
