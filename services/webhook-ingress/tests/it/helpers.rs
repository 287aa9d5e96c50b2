//! `spawn_app`: webhook-ingress running in-process against fresh dependencies,
//! and the partner-side helpers the tests sign and send with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Parser as _;
use haven_common::testing::app::{TestApp, TestDeps};
use haven_entity::ledger::{self, Account, Movement};
use haven_entity::ledger_movements::MovementKind;
use haven_entity::users::{self, NewUser};
use haven_messages::{Envelope, QueueMessage, names::QueueSpec};
use hmac::{Hmac, Mac};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait, TransactionTrait};
use serde_json::Value;
use sha2::Sha256;
use webhook_ingress::signature::python_canonical_json;
use webhook_ingress::{Config, Error};

/// Aurora's current secret (the seed guide's).
pub const AURORA_SECRET: &str = "test_secret";
/// Aurora's previous secret, still active during the rotation.
pub const AURORA_OLD_SECRET: &str = "aurora_previous_secret";
/// Tribe's secret.
pub const TRIBE_SECRET: &str = "tribe_secret";
/// A Standard Webhooks key for Aurora (`whsec_` + base64 of these bytes).
pub const AURORA_WHSEC_KEY: &[u8] = b"standard-webhooks-key-for-aurora";
/// The seed guide's API key.
pub const API_KEY: &str = "test_key";
/// [`API_KEY`]'s name (`API_KEYS` entry `front-desk:test_key`).
pub const API_KEY_NAME: &str = "front-desk";
/// A second active API key, listed bare as before keys had names.
pub const API_KEY_2: &str = "second_test_key";
/// What [`API_KEY_2`] is called: unnamed, by its position.
pub const API_KEY_2_NAME: &str = "unnamed-2";

/// How long a published message may take to reach its queue.
pub const DELIVERY: Duration = Duration::from_secs(10);

/// The running service and the dependencies it talks to (through proxies a
/// test can cut).
pub struct Spawned {
    pub app: TestApp<Error>,
    pub deps: TestDeps,
}

impl Spawned {
    /// The test's database, directly (not through the proxy).
    pub fn db(&self) -> &DatabaseConnection {
        self.deps.db.conn()
    }

    /// Stops the service and drops the dependencies.
    pub async fn finish(self) {
        self.app.stop().await;
        self.deps.cleanup().await;
    }
}

/// Starts webhook-ingress on a random port against a fresh database and broker namespace.
pub async fn spawn_app() -> Spawned {
    spawn_app_with(&[]).await
}

/// [`spawn_app`] with extra command-line settings.
pub async fn spawn_app_with(extra: &[&str]) -> Spawned {
    let deps = TestDeps::new().await;
    let app = spawn_on(&deps, extra).await;
    Spawned { app, deps }
}

/// Starts another webhook-ingress on existing dependencies.
pub async fn spawn_on(deps: &TestDeps, extra: &[&str]) -> TestApp<Error> {
    let whsec = format!("whsec_{}", BASE64.encode(AURORA_WHSEC_KEY));
    let args = std::iter::once("webhook-ingress".to_owned())
        .chain(deps.args())
        .chain(
            [
                "--aurora-webhook-secret",
                &format!("{AURORA_SECRET},{AURORA_OLD_SECRET},{whsec}"),
                "--tribe-webhook-secret",
                TRIBE_SECRET,
                "--api-keys",
                &format!("{API_KEY_NAME}:{API_KEY},{API_KEY_2}"),
                "--outbox-poll-interval",
                "200ms",
            ]
            .map(str::to_owned),
        )
        .chain(extra.iter().map(|s| (*s).to_owned()));
    let config = Config::try_parse_from(args).expect("test settings parse");
    let app =
        TestApp::spawn(|listener, shutdown| webhook_ingress::run(config, listener, shutdown)).await;
    // Connected to both: the broker topology (every queue) is declared.
    app.wait_for_health(200, Duration::from_secs(30)).await;
    app
}

/// Hex HMAC-SHA256 of `message` under `secret`.
pub fn hmac_hex(secret: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// The seed guide's `create_aurora_signature`: HMAC of `json.dumps(payload, sort_keys=True)`.
pub fn seed_signature(payload: &Value, secret: &str) -> String {
    hmac_hex(secret.as_bytes(), python_canonical_json(payload).as_bytes())
}

/// Standard Webhooks headers for `body` signed with `key` at unix time `ts`.
pub fn standard_headers(key: &[u8], id: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let sig = BASE64.encode(mac.finalize().into_bytes());
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), format!("v1,{sig}")),
    ]
}

/// Unix time now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Posts a raw body with headers; returns status and JSON body.
pub async fn post_raw(
    app: &TestApp<Error>,
    path: &str,
    body: Vec<u8>,
    headers: &[(String, String)],
) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}{path}", app.address))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.expect("the service answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Posts `payload` to an Aurora route signed as the seed guide's senders sign.
pub async fn post_aurora(app: &TestApp<Error>, route: &str, payload: &Value) -> (u16, Value) {
    let sig = seed_signature(payload, AURORA_SECRET);
    post_raw(
        app,
        &format!("/webhooks/aurora/{route}"),
        serde_json::to_vec(payload).unwrap(),
        &[("X-Aurora-Signature".into(), sig)],
    )
    .await
}

/// Posts `payload` to a Tribe route, raw-body signature.
pub async fn post_tribe(app: &TestApp<Error>, route: &str, payload: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(payload).unwrap();
    let sig = hmac_hex(TRIBE_SECRET.as_bytes(), &body);
    post_raw(
        app,
        &format!("/webhooks/tribe/{route}"),
        body,
        &[("X-Tribe-Signature".into(), sig)],
    )
    .await
}

/// Posts a token command with an API key (or none).
pub async fn post_command(
    app: &TestApp<Error>,
    path: &str,
    payload: &Value,
    api_key: Option<&str>,
) -> (u16, Value) {
    let headers: Vec<(String, String)> = api_key
        .map(|k| vec![("X-API-Key".to_owned(), k.to_owned())])
        .unwrap_or_default();
    post_raw(app, path, serde_json::to_vec(payload).unwrap(), &headers).await
}

/// Posts a mint command with `API_KEY` that must be refused with 429;
/// returns its `Retry-After` (seconds) and its body.
pub async fn mint_refused_with_429(app: &TestApp<Error>, payload: &Value) -> (u64, Value) {
    let response = app
        .client
        .post(format!("{}/token/mint", app.address))
        .header("X-API-Key", API_KEY)
        .json(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (retry_after, response.json().await.unwrap())
}

/// Takes every message that arrives on `queue` within `wait` of the last one.
pub async fn drain_queue<P: QueueMessage>(
    deps: &TestDeps,
    queue: QueueSpec,
    wait: Duration,
) -> Vec<Envelope<P>> {
    deps.amqp.drain(queue, wait).await
}

/// Number of rows of an entity.
pub async fn count<E: EntityTrait>(db: &DatabaseConnection) -> u64
where
    E::Model: Sync,
{
    E::find().count(db).await.unwrap()
}

/// Creates a user (as reward-calculator would) holding `hnv` HNV, and returns its id.
pub async fn user_with_balance(
    db: &DatabaseConnection,
    external_id: &str,
    hnv: i128,
    kyc: bool,
) -> uuid::Uuid {
    let created = users::find_or_create(
        db,
        NewUser {
            partner: "aurora".into(),
            external_id: external_id.into(),
            email: Some(format!("{external_id}@example.com")),
        },
        |index| Ok::<_, std::convert::Infallible>(format!("0x{index:040x}")),
    )
    .await
    .unwrap();
    let id = created.user.id;
    if kyc {
        use sea_orm::{ActiveModelTrait, ActiveValue::Set};
        let mut user: users::ActiveModel = created.user.into();
        user.kyc_verified = Set(true);
        user.update(db).await.unwrap();
    }
    if hnv > 0 {
        let txn = db.begin().await.unwrap();
        ledger::post(
            &txn,
            &Movement::transfer(
                format!("test-mint:{external_id}"),
                MovementKind::Mint,
                Account::Supply,
                Account::UserAvailable(id),
                haven_entity::SignedWei::from_hnv(hnv).unwrap(),
            )
            .unwrap(),
        )
        .await
        .unwrap();
        txn.commit().await.unwrap();
    }
    id
}
