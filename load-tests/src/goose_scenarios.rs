//! The Goose scenarios of the HAVEN API: the Rust counterpart of
//! `locust/locustfile.py`, run by the `haven-goose` binary against a running
//! stack, or against one it starts in-process.
//!
//! Every simulated user is one guest. On start it books a stay (a signed
//! Aurora `booking-created` webhook, which creates the guest and mints their
//! reward) and waits until read-api shows the reward as available; then it
//! runs the weighted transactions of its scenario:
//!
//! - [`WEBHOOKS`]: bookings signed the three ways the API accepts them (hex
//!   HMAC-SHA256 of the raw body, the same over the seed guide's canonical
//!   JSON, Standard Webhooks), Tribe attendance events, and a forged booking
//!   that must be refused with 401;
//! - [`TOKEN_COMMANDS`]: `POST /token/mint` with `X-API-Key` (a new
//!   idempotency key each time, and now and then a repeat that must answer
//!   `duplicate` with the same `tx_id`) and `POST /token/redeem` of 1 HNV;
//! - [`READS`]: balance, user analytics, transactions, token stats, and
//!   `/health` of webhook-ingress and read-api.
//!
//! A request counts as a success only when its status and its body are the
//! ones the API promises (each check is next to its request). The guests' ids
//! start with a per-run prefix, so runs never collide with each other.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use goose::config::GooseConfiguration;
use goose::goose::GooseResponse;
use goose::prelude::*;
use rand::Rng as _;
use reqwest::RequestBuilder;
use serde_json::{Value, json};
use webhook_ingress::signature::{Partner, python_canonical_json, sender};

use crate::load::snippet;

/// Scenario of the partners' webhooks.
pub const WEBHOOKS: &str = "webhooks";
/// Scenario of the operators' token commands.
pub const TOKEN_COMMANDS: &str = "token_commands";
/// Scenario of the reads.
pub const READS: &str = "reads";

/// Where the API is and the secrets its callers hold.
#[derive(Clone)]
pub struct Targets {
    ingress: String,
    read_api: String,
    api_key: String,
    aurora_secret: String,
    tribe_secret: String,
    run_id: String,
}

impl std::fmt::Debug for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Targets")
            .field("ingress", &self.ingress)
            .field("read_api", &self.read_api)
            .field("run_id", &self.run_id)
            .finish_non_exhaustive()
    }
}

impl Targets {
    /// The targets of a stack file as `cargo xtask up` writes it
    /// (`target/haven-dev/stack.json`).
    pub fn from_stack_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "{} cannot be read: start the stack with `cargo xtask up` first, \
                 or use --in-process",
                path.display()
            )
        })?;
        let stack: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let field = |pointer: &str| {
            stack
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("{} has no string at {pointer}", path.display()))
        };
        Self::new(
            &field("/services/webhook-ingress/url")?,
            &field("/services/read-api/url")?,
            &field("/api_key")?,
            &field("/partner_secrets/aurora")?,
            &field("/partner_secrets/tribe")?,
        )
    }

    /// Targets from their parts: the base URLs of webhook-ingress (webhooks
    /// and token commands) and read-api, an operator API key, and one
    /// webhook secret per partner (raw, or `whsec_<base64>`). Fails on a
    /// secret that cannot sign.
    pub fn new(
        ingress: &str,
        read_api: &str,
        api_key: &str,
        aurora_secret: &str,
        tribe_secret: &str,
    ) -> anyhow::Result<Self> {
        for (partner, secret) in [("aurora", aurora_secret), ("tribe", tribe_secret)] {
            sender::hex_signature(secret, b"")
                .map_err(|err| anyhow::anyhow!("the {partner} webhook secret: {err}"))?;
        }
        Ok(Self {
            ingress: ingress.trim_end_matches('/').to_owned(),
            read_api: read_api.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            aurora_secret: aurora_secret.to_owned(),
            tribe_secret: tribe_secret.to_owned(),
            run_id: new_run_id(),
        })
    }

    /// The prefix of this run's guest ids.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
}

/// A short random prefix for the guest ids of one run.
pub fn new_run_id() -> String {
    format!("goose_{:08x}", rand::rng().random::<u32>())
}

/// How long a user waits between two transactions: uniformly in
/// `min..=max` (both zero: no pause, as fast as the API answers).
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Shortest pause.
    pub min: Duration,
    /// Longest pause.
    pub max: Duration,
}

/// Registers the three scenarios (weights 3 : 1 : 6, as the locustfile's
/// task weights split) with the attack; Goose's `--scenarios` picks some.
pub fn register(
    attack: GooseAttack,
    targets: Targets,
    pacing: Pacing,
) -> Result<GooseAttack, GooseError> {
    let targets = Arc::new(targets);
    let scenario = |name: &str, weight: usize| -> Result<Scenario, GooseError> {
        Ok(scenario!(name)
            .set_weight(weight)?
            .set_wait_time(pacing.min, pacing.max)?
            .register_transaction(arrive(Arc::clone(&targets))))
    };
    let webhooks = scenario(WEBHOOKS, 3)?
        .register_transaction(transaction!(booking_raw).set_weight(10)?)
        .register_transaction(transaction!(booking_canonical).set_weight(5)?)
        .register_transaction(transaction!(booking_standard).set_weight(5)?)
        .register_transaction(transaction!(tribe_attendance).set_weight(3)?)
        .register_transaction(transaction!(forged_booking).set_weight(1)?);
    let commands = scenario(TOKEN_COMMANDS, 1)?
        .register_transaction(transaction!(mint).set_weight(4)?)
        .register_transaction(transaction!(redeem).set_weight(1)?);
    let reads = scenario(READS, 6)?
        .register_transaction(transaction!(balance).set_weight(30)?)
        .register_transaction(transaction!(user_analytics).set_weight(10)?)
        .register_transaction(transaction!(transactions).set_weight(10)?)
        .register_transaction(transaction!(token_stats).set_weight(5)?)
        .register_transaction(transaction!(health).set_weight(5)?);
    Ok(attack
        .register_scenario(webhooks)
        .register_scenario(commands)
        .register_scenario(reads))
}

/// Runs the three scenarios against `targets` with Goose's options
/// `config`; where those are silent: 20 users, 5 started per second, 60 s,
/// and no telnet or WebSocket controller (they would listen on every
/// interface).
pub async fn attack(
    targets: Targets,
    pacing: Pacing,
    config: GooseConfiguration,
) -> Result<GooseMetrics, GooseError> {
    let host = targets.ingress.clone();
    let attack = GooseAttack::initialize_with_config(config)?
        .set_default(GooseDefault::Host, host.as_str())?
        .set_default(GooseDefault::Users, 20)?
        .set_default(GooseDefault::HatchRate, "5")?
        .set_default(GooseDefault::RunTime, 60)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoWebSocket, true)?;
    register(*attack, targets, pacing)?.execute().await
}

/// What one simulated user knows: the targets and its guest.
#[derive(Debug)]
struct Guest {
    targets: Arc<Targets>,
    id: String,
    bookings: u32,
    tribe_events: u32,
    mints: u32,
    /// The last mint that was queued, to repeat word for word.
    last_mint: Option<Value>,
}

/// How long a new guest may take to show its first reward as available.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(120);

/// The on-start transaction: the user becomes a guest with a booking and
/// waits (unmeasured) until read-api shows its reward as available.
fn arrive(targets: Arc<Targets>) -> Transaction {
    Transaction::new(Arc::new(move |user| {
        let id = format!("{}_{}", targets.run_id, user.weighted_users_index);
        user.set_session_data(Guest {
            targets: Arc::clone(&targets),
            id,
            bookings: 0,
            tribe_events: 0,
            mints: 0,
            last_mint: None,
        });
        Box::pin(async move {
            book(user, Scheme::Raw).await?;
            wait_for_reward(user).await
        })
    }))
    .set_name("arrive")
    .set_on_start()
}

fn guest(user: &GooseUser) -> &Guest {
    user.get_session_data_unchecked::<Guest>()
}

fn guest_mut(user: &mut GooseUser) -> &mut Guest {
    user.get_session_data_unchecked_mut::<Guest>()
}

async fn wait_for_reward(user: &mut GooseUser) -> TransactionResult {
    let url = format!(
        "{}/token/balance/{}",
        guest(user).targets.read_api,
        guest(user).id
    );
    let deadline = tokio::time::Instant::now() + ARRIVAL_TIMEOUT;
    let mut last = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        match user.client.get(&url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                if status == 200
                    && serde_json::from_str::<Value>(&text)
                        .is_ok_and(|body| is_positive(&body["available"]))
                {
                    return Ok(());
                }
                last = format!("HTTP {status}: {}", snippet(&text));
            }
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Counted as one failed request, with the reason, in Goose's report.
    let problem = format!(
        "guest {} had no available balance after {} s ({last})",
        guest(user).id,
        ARRIVAL_TIMEOUT.as_secs()
    );
    let mut goose = send(
        user,
        GooseMethod::Get,
        &url,
        "arrival (reward available)",
        200,
        |r| r,
    )
    .await?;
    user.set_failure(&problem, &mut goose.request, None, None)
}

/// Whether a JSON amount is above zero (amounts are exact decimals, never
/// negative: a digit other than 0 means more than zero).
fn is_positive(amount: &Value) -> bool {
    amount
        .as_number()
        .is_some_and(|n| n.to_string().chars().any(|c| matches!(c, '1'..='9')))
}

// --- requests and their checks ----------------------------------------------

/// Sends one measured request named `name`; `build` adds headers and body.
async fn send(
    user: &mut GooseUser,
    method: GooseMethod,
    url: &str,
    name: &str,
    expect_status: u16,
    build: impl FnOnce(RequestBuilder) -> RequestBuilder,
) -> Result<GooseResponse, Box<TransactionError>> {
    let builder = build(user.get_request_builder(&method, url)?);
    let request = GooseRequest::builder()
        .method(method)
        .path(url)
        .name(name)
        .expect_status_code(expect_status)
        .set_request_builder(builder)
        .build();
    user.request(request).await
}

/// Marks the request failed unless its body is JSON that `check` accepts
/// (the status was already checked by Goose).
async fn check_body(
    user: &GooseUser,
    mut goose: GooseResponse,
    check: impl FnOnce(&Value) -> Result<(), String>,
) -> TransactionResult {
    let response = match goose.response {
        Ok(response) => response,
        // Goose has already counted the failure (no answer).
        Err(_) => return Ok(()),
    };
    if !goose.request.success {
        return Ok(());
    }
    let headers = response.headers().clone();
    let text = match response.text().await {
        Ok(text) => text,
        Err(err) => {
            let tag = format!("body unreadable: {err}");
            return user.set_failure(&tag, &mut goose.request, Some(&headers), None);
        }
    };
    let outcome = serde_json::from_str::<Value>(&text)
        .map_err(|_| format!("answer is not JSON: {}", snippet(&text)))
        .and_then(|body| check(&body));
    match outcome {
        Ok(()) => Ok(()),
        Err(problem) => user.set_failure(&problem, &mut goose.request, Some(&headers), Some(&text)),
    }
}

fn has_field(field: &'static str) -> impl FnOnce(&Value) -> Result<(), String> {
    move |body| {
        if body.get(field).is_some() {
            Ok(())
        } else {
            Err(format!("no `{field}` in {body}"))
        }
    }
}

// --- webhooks ---------------------------------------------------------------

/// How a webhook is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// Hex HMAC of the raw body in the partner's header.
    Raw,
    /// Hex HMAC of the canonical JSON (`json.dumps(payload, sort_keys=True)`);
    /// the body itself is sent compact, so it differs from what was signed.
    Canonical,
    /// Standard Webhooks headers.
    Standard,
}

impl Scheme {
    fn label(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Canonical => "canonical",
            Self::Standard => "standard",
        }
    }
}

/// The body and headers of a webhook signed by `secret` with `scheme`.
/// [`Targets::new`] checked that the secrets can sign.
fn signed(
    secret: &str,
    header: &'static str,
    payload: &Value,
    scheme: Scheme,
) -> (Vec<u8>, Vec<(&'static str, String)>) {
    let body = payload.to_string().into_bytes();
    let headers = match scheme {
        Scheme::Raw => vec![(
            header,
            sender::hex_signature(secret, &body).unwrap_or_default(),
        )],
        Scheme::Canonical => {
            let canonical = python_canonical_json(payload);
            let signature = sender::hex_signature(secret, canonical.as_bytes()).unwrap_or_default();
            vec![(header, signature)]
        }
        Scheme::Standard => {
            let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            let now = chrono::Utc::now().timestamp();
            sender::standard_headers(secret, &id, now, &body)
                .map(|headers| headers.to_vec())
                .unwrap_or_default()
        }
    };
    (body, headers)
}

/// Posts `payload` to `/webhooks/<partner>/<kind>` signed with `scheme`
/// (named `<path> [<scheme>]`); it must be answered 200 `accepted` or
/// `duplicate`.
async fn post_webhook(
    user: &mut GooseUser,
    partner: Partner,
    kind: &str,
    payload: &Value,
    scheme: Scheme,
) -> TransactionResult {
    let targets = Arc::clone(&guest(user).targets);
    let secret = match partner {
        Partner::Aurora => &targets.aurora_secret,
        Partner::Tribe => &targets.tribe_secret,
    };
    let (body, headers) = signed(secret, partner.signature_header(), payload, scheme);
    let path = format!("/webhooks/{}/{kind}", partner.as_str());
    let (url, name) = (
        format!("{}{path}", targets.ingress),
        format!("{path} [{}]", scheme.label()),
    );
    let goose = send(user, GooseMethod::Post, &url, &name, 200, |mut request| {
        request = request
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request
    })
    .await?;
    check_body(user, goose, |body| match body["status"].as_str() {
        Some("accepted" | "duplicate") => Ok(()),
        _ => Err(format!("unexpected webhook answer {body}")),
    })
    .await
}

async fn book(user: &mut GooseUser, scheme: Scheme) -> TransactionResult {
    let (nights, cents) = {
        let mut rng = rand::rng();
        (
            rng.random_range(1..=5_u32),
            rng.random_range(8_000..=40_000_u32),
        )
    };
    let guest = guest_mut(user);
    guest.bookings += 1;
    let payload = json!({
        "id": format!("{}_booking_{}", guest.id, guest.bookings),
        "guest_id": guest.id,
        "total_price": f64::from(cents) / 100.0,
        "nights": nights,
    });
    post_webhook(user, Partner::Aurora, "booking-created", &payload, scheme).await
}

async fn booking_raw(user: &mut GooseUser) -> TransactionResult {
    book(user, Scheme::Raw).await
}

async fn booking_canonical(user: &mut GooseUser) -> TransactionResult {
    book(user, Scheme::Canonical).await
}

async fn booking_standard(user: &mut GooseUser) -> TransactionResult {
    book(user, Scheme::Standard).await
}

async fn tribe_attendance(user: &mut GooseUser) -> TransactionResult {
    let guest = guest_mut(user);
    guest.tribe_events += 1;
    let payload = json!({
        "id": format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "user_id": guest.id,
        "event_name": "Load test meetup",
        "event_type": "workshop",
    });
    // Tribe's events alternate between the hex and the Standard Webhooks scheme.
    let scheme = if guest.tribe_events.is_multiple_of(2) {
        Scheme::Standard
    } else {
        Scheme::Raw
    };
    post_webhook(user, Partner::Tribe, "event-attendance", &payload, scheme).await
}

/// A booking with a made-up signature: 401, and nothing is recorded.
async fn forged_booking(user: &mut GooseUser) -> TransactionResult {
    let guest = guest(user);
    let url = format!("{}/webhooks/aurora/booking-created", guest.targets.ingress);
    let body = json!({
        "id": format!("{}_forged", guest.id),
        "guest_id": guest.id,
        "total_price": 1.0,
        "nights": 1,
    })
    .to_string();
    let name = "/webhooks/aurora/booking-created [forged]";
    let goose = send(user, GooseMethod::Post, &url, name, 401, |request| {
        request
            .header("content-type", "application/json")
            .header("X-Aurora-Signature", "0".repeat(64))
            .body(body)
    })
    .await?;
    check_body(user, goose, has_field("detail")).await
}

// --- token commands ---------------------------------------------------------

/// A mint with a new idempotency key (`queued`); every fifth mint repeats
/// the last one word for word instead, which must answer `duplicate` with
/// the same id (the same key with another request would be a 422).
async fn mint(user: &mut GooseUser) -> TransactionResult {
    let whole = rand::rng().random_range(1..=100_u32);
    let guest = guest_mut(user);
    guest.mints += 1;
    let (payload, repeat) = match &guest.last_mint {
        Some(last) if guest.mints.is_multiple_of(5) => (last.clone(), true),
        _ => {
            let key = format!("mint_{}", uuid::Uuid::new_v4().simple());
            let payload = json!({
                "user_id": guest.id,
                "amount": format!("{whole}.5"),
                "reason": "load_test",
                "idempotency_key": key,
            });
            (payload, false)
        }
    };
    let (url, api_key) = (
        format!("{}/token/mint", guest.targets.ingress),
        guest.targets.api_key.clone(),
    );
    let (name, wanted) = if repeat {
        ("/token/mint [repeat]", "duplicate")
    } else {
        ("/token/mint", "queued")
    };
    let goose = send(user, GooseMethod::Post, &url, name, 200, |request| {
        request.header("X-API-Key", api_key).json(&payload)
    })
    .await?;
    let key = payload["idempotency_key"].clone();
    check_body(user, goose, move |body| {
        if body["status"] == wanted && body["tx_id"] == key {
            Ok(())
        } else {
            Err(format!("expected {wanted} for {key}, got {body}"))
        }
    })
    .await?;
    guest_mut(user).last_mint = Some(payload);
    Ok(())
}

/// Redeems 1 HNV to a bank account: the guest's booking reward covers it.
async fn redeem(user: &mut GooseUser) -> TransactionResult {
    let guest = guest(user);
    let payload = json!({
        "user_id": guest.id,
        "amount": "1",
        "withdrawal_method": "bank_transfer",
        "idempotency_key": format!("redeem_{}", uuid::Uuid::new_v4().simple()),
    });
    let (url, api_key) = (
        format!("{}/token/redeem", guest.targets.ingress),
        guest.targets.api_key.clone(),
    );
    let goose = send(
        user,
        GooseMethod::Post,
        &url,
        "/token/redeem",
        200,
        |request| request.header("X-API-Key", api_key).json(&payload),
    )
    .await?;
    check_body(user, goose, |body| {
        if body["status"] == "queued" && body.get("request_id").is_some() {
            Ok(())
        } else {
            Err(format!("unexpected redemption answer {body}"))
        }
    })
    .await
}

// --- reads ------------------------------------------------------------------

async fn read(
    user: &mut GooseUser,
    path: &str,
    name: &str,
    field: &'static str,
) -> TransactionResult {
    let url = format!("{}{path}", guest(user).targets.read_api);
    let goose = send(user, GooseMethod::Get, &url, name, 200, |request| request).await?;
    check_body(user, goose, has_field(field)).await
}

async fn balance(user: &mut GooseUser) -> TransactionResult {
    let path = format!("/token/balance/{}", guest(user).id);
    read(user, &path, "/token/balance/{user_id}", "balance").await
}

async fn user_analytics(user: &mut GooseUser) -> TransactionResult {
    let path = format!("/analytics/user/{}", guest(user).id);
    read(user, &path, "/analytics/user/{user_id}", "user_id").await
}

async fn transactions(user: &mut GooseUser) -> TransactionResult {
    let path = format!(
        "/analytics/transactions/{}?limit=50&offset=0",
        guest(user).id
    );
    read(
        user,
        &path,
        "/analytics/transactions/{user_id}",
        "transactions",
    )
    .await
}

async fn token_stats(user: &mut GooseUser) -> TransactionResult {
    read(
        user,
        "/analytics/token-stats",
        "/analytics/token-stats",
        "total_minted",
    )
    .await
}

async fn health(user: &mut GooseUser) -> TransactionResult {
    let targets = Arc::clone(&guest(user).targets);
    for (service, base) in [
        ("webhook-ingress", &targets.ingress),
        ("read-api", &targets.read_api),
    ] {
        let url = format!("{base}/health");
        let name = format!("/health [{service}]");
        let goose = send(user, GooseMethod::Get, &url, &name, 200, |request| request).await?;
        check_body(user, goose, |_| Ok(())).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_above_zero_are_told_from_zero() {
        for (amount, positive) in [
            (json!(0), false),
            (json!(0.0), false),
            (json!(0.5), true),
            (json!(240.0), true),
            (json!(1e-18), true),
            (json!("12"), false),
            (Value::Null, false),
        ] {
            assert_eq!(is_positive(&amount), positive, "{amount}");
        }
    }

    #[test]
    fn a_stack_file_gives_the_targets_and_a_missing_one_says_what_to_do() {
        let dir = std::env::temp_dir().join(format!("haven-goose-{}", new_run_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("stack.json");
        std::fs::write(
            &file,
            json!({
                "services": {
                    "webhook-ingress": {"url": "http://127.0.0.1:8000/"},
                    "read-api": {"url": "http://127.0.0.1:8004"}
                },
                "api_key": "k",
                "partner_secrets": {"aurora": "a", "tribe": "whsec_dA=="}
            })
            .to_string(),
        )
        .unwrap();
        let targets = Targets::from_stack_file(&file).unwrap();
        assert_eq!(targets.ingress, "http://127.0.0.1:8000");
        assert_eq!(targets.read_api, "http://127.0.0.1:8004");
        assert_eq!(
            (
                targets.aurora_secret.as_str(),
                targets.tribe_secret.as_str()
            ),
            ("a", "whsec_dA==")
        );
        assert!(
            !format!("{targets:?}").contains("whsec_"),
            "Debug hides the secrets"
        );
        assert!(targets.run_id().starts_with("goose_"));
        let err = Targets::new("http://a", "http://b", "k", "whsec_%%", "t").unwrap_err();
        assert!(err.to_string().contains("aurora"), "{err}");

        std::fs::write(&file, r#"{"services": {}}"#).unwrap();
        let err = Targets::from_stack_file(&file).unwrap_err().to_string();
        assert!(err.contains("/services/webhook-ingress/url"), "{err}");
        let err = Targets::from_stack_file(&dir.join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cargo xtask up"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
