//! A local stand-in for the payout provider: the contract of
//! `docs/payout-provider.md`, kept in memory, with failures on demand.
//!
//! `cargo xtask up` runs it as the `haven-payout-stand-in` binary so the
//! local stack pays out end to end; tests start it in-process with
//! [`StandIn::start`] and script its answers ("500 twice, then accept",
//! "always 422", "accept, then never answer"), then count what it did: the
//! payouts it created and the attempts per idempotency key. It answers
//! lookups by reference, and can play a mis-set URL ([`StandIn::misroute`]:
//! a bare 404 to everything, as another server would answer).
//!
//! Like a real provider it creates at most one payout per `Idempotency-Key`
//! (a repeat returns the first one; the same key with another body is a
//! 422), and it validates what it is asked to pay.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use haven_common::money::Wei;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::client::IDEMPOTENCY_KEY;
use super::{Method, Payout, PayoutLookup, PayoutRequest, PayoutStatus};

/// How the stand-in answers one `POST /payouts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Like a provider that works: create the payout (or return the one
    /// already created under the key).
    Accept,
    /// Answer this status with a JSON `detail`, creating nothing.
    Fail(u16),
    /// Create the payout, then answer this status: the answer is lost.
    AcceptThenFail(u16),
    /// Never answer (until the stand-in stops), creating nothing: the
    /// client times out.
    Hang,
    /// Create the payout, then never answer.
    AcceptThenHang,
}

/// When a created payout is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// `paid` once this many `GET /payouts/{id}` have seen it `pending`
    /// (0: `paid` in the creation's answer).
    PaidAfterPolls(u32),
    /// `failed` once this many polls have seen it `pending` (0: `failed`
    /// in the creation's answer).
    FailedAfterPolls(u32),
}

/// A payout the stand-in created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayout {
    /// Its id, `po_<n>`.
    pub id: String,
    /// The `Idempotency-Key` it was created under.
    pub idempotency_key: String,
    /// What was asked.
    pub request: PayoutRequest,
    /// Where it is.
    pub status: PayoutStatus,
    /// `GET`s seen while pending.
    pub polls: u32,
    /// When it is paid (the stand-in's setting when it was created).
    pub settle: Settle,
}

/// The stand-in's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The bearer token requests must carry; any (or none) when `None`.
    pub api_token: Option<String>,
    /// When payouts are paid.
    pub settle: Settle,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            api_token: None,
            settle: Settle::PaidAfterPolls(0),
        }
    }
}

#[derive(Debug)]
struct Book {
    script: VecDeque<Reply>,
    then: Reply,
    settle: Settle,
    payouts: Vec<StoredPayout>,
    by_key: HashMap<String, usize>,
    attempts: HashMap<String, u32>,
    lookups: u32,
}

#[derive(Debug)]
struct Shared {
    book: Mutex<Book>,
    misrouted: AtomicBool,
    api_token: Option<String>,
    stop: CancellationToken,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        // A panic while holding the lock leaves consistent data (every
        // update is one assignment); keep serving.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running stand-in provider.
#[derive(Debug)]
pub struct StandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl StandIn {
    /// Starts a stand-in on 127.0.0.1 and a free port.
    pub async fn start(options: Options) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(Self::on(listener, options))
    }

    /// Starts a stand-in on `listener`.
    pub fn on(listener: TcpListener, options: Options) -> Self {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let shared = Arc::new(Shared {
            book: Mutex::new(Book {
                script: VecDeque::new(),
                then: Reply::Accept,
                settle: options.settle,
                payouts: Vec::new(),
                by_key: HashMap::new(),
                attempts: HashMap::new(),
                lookups: 0,
            }),
            misrouted: AtomicBool::new(false),
            api_token: options.api_token,
            stop: CancellationToken::new(),
        });
        let stop = shared.stop.clone();
        let app = router(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        Self {
            addr,
            shared,
            task: Some(task),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, the `PAYOUT_PROVIDER_URL` of redemption-payout.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next creations get `replies` in order, then `then` for ever.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>, then: Reply) {
        let mut book = self.shared.book();
        book.script = replies.into_iter().collect();
        book.then = then;
    }

    /// How payouts created from now on are settled.
    pub fn settle(&self, settle: Settle) {
        self.shared.book().settle = settle;
    }

    /// Every payout created, in order.
    pub fn payouts(&self) -> Vec<StoredPayout> {
        self.shared.book().payouts.clone()
    }

    /// The payout created under `key`, if any.
    pub fn payout_for(&self, key: &str) -> Option<StoredPayout> {
        let book = self.shared.book();
        book.by_key.get(key).map(|&i| book.payouts[i].clone())
    }

    /// `POST /payouts` requests seen with this idempotency key (whatever
    /// was answered).
    pub fn attempts(&self, key: &str) -> u32 {
        self.shared.book().attempts.get(key).copied().unwrap_or(0)
    }

    /// `GET /payouts?reference=...` answered (not counting those answered
    /// as a mis-set URL).
    pub fn lookups(&self) -> u32 {
        self.shared.book().lookups
    }

    /// While `on`, every request gets a bare `404` with a plain-text body,
    /// creating and answering nothing: what the service sees when
    /// `PAYOUT_PROVIDER_URL` points at the wrong server or path.
    pub fn misroute(&self, on: bool) {
        self.shared.misrouted.store(on, Ordering::SeqCst);
    }

    /// Every `POST /payouts` seen.
    pub fn total_attempts(&self) -> u32 {
        self.shared.book().attempts.values().sum()
    }

    /// Stops serving (hanging requests are answered 503) and waits for it.
    pub async fn stop(mut self) {
        self.shared.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// The routes of the contract.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/payouts", post(create).get(lookup))
        .route("/payouts/{id}", get(status))
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "Not found") })
        .layer(middleware::from_fn_with_state(
            Arc::clone(&shared),
            misrouted,
        ))
        .with_state(shared)
}

/// A bare 404 to everything while [`StandIn::misroute`] is on.
async fn misrouted(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if shared.misrouted.load(Ordering::SeqCst) {
        return (StatusCode::NOT_FOUND, "404 page not found").into_response();
    }
    next.run(request).await
}

/// `{"detail": ...}` with `status`.
fn problem(status: StatusCode, detail: &str) -> Response {
    (status, axum::Json(json!({ "detail": detail }))).into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = &shared.api_token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| given == token)
}

impl StoredPayout {
    /// As the contract shows it.
    fn as_payout(&self) -> Payout {
        Payout {
            id: self.id.clone(),
            status: self.status,
            failure_reason: (self.status == PayoutStatus::Failed)
                .then(|| "the stand-in was told to fail this payout".to_owned()),
        }
    }
}

fn answer(payout: &StoredPayout, status: StatusCode) -> Response {
    (status, axum::Json(payout.as_payout())).into_response()
}

/// What a request asks for that no provider would pay.
fn invalid(request: &PayoutRequest) -> Option<String> {
    if request.reference.trim().is_empty() || request.user_id.trim().is_empty() {
        return Some("reference and user_id are required".into());
    }
    if request.currency.len() != 3 || !request.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Some(format!("`{}` is not a currency", request.currency));
    }
    match Wei::parse(&request.amount) {
        Ok(amount) if !amount.is_zero() => {}
        _ => return Some(format!("`{}` is not a positive amount", request.amount)),
    }
    if request.method == Method::Crypto
        && request
            .destination
            .as_deref()
            .is_none_or(|d| d.trim().is_empty())
    {
        return Some("a crypto payout needs a destination".into());
    }
    None
}

async fn create(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&shared, &headers) {
        return problem(StatusCode::UNAUTHORIZED, "Invalid API token");
    }
    let Some(key) = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .filter(|key| !key.trim().is_empty())
    else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Idempotency-Key header is required",
        );
    };
    let request: PayoutRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return problem(StatusCode::UNPROCESSABLE_ENTITY, &err.to_string()),
    };

    let (reply, outcome) = {
        let mut book = shared.book();
        *book.attempts.entry(key.clone()).or_default() += 1;
        let reply = book.script.pop_front().unwrap_or_else(|| book.then.clone());
        let outcome = match reply {
            Reply::Fail(_) | Reply::Hang => None,
            Reply::Accept | Reply::AcceptThenFail(_) | Reply::AcceptThenHang => {
                Some(book.create_or_replay(&key, request))
            }
        };
        (reply, outcome)
    };
    tracing::info!(idempotency_key = %key, ?reply, "payout stand-in: POST /payouts");
    match reply {
        Reply::Fail(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            problem(status, "the stand-in was told to fail this request")
        }
        Reply::Hang | Reply::AcceptThenHang => {
            shared.stop.cancelled().await;
            problem(StatusCode::SERVICE_UNAVAILABLE, "the stand-in is stopping")
        }
        Reply::AcceptThenFail(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            problem(
                status,
                "the stand-in created the payout and was told to fail the answer",
            )
        }
        Reply::Accept => match outcome {
            Some(Ok((payout, created))) => answer(
                &payout,
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
            ),
            Some(Err((status, detail))) => problem(status, &detail),
            None => problem(StatusCode::INTERNAL_SERVER_ERROR, "unreachable"),
        },
    }
}

impl Book {
    /// Creates the payout of `key`, or returns the existing one if the
    /// request is the same (`Err` with a 422 and why otherwise).
    fn create_or_replay(
        &mut self,
        key: &str,
        request: PayoutRequest,
    ) -> Result<(StoredPayout, bool), (StatusCode, String)> {
        if let Some(&index) = self.by_key.get(key) {
            let existing = &self.payouts[index];
            if existing.request != request {
                return Err((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Idempotency-Key reused with a different request".to_owned(),
                ));
            }
            return Ok((existing.clone(), false));
        }
        if let Some(why) = invalid(&request) {
            return Err((StatusCode::UNPROCESSABLE_ENTITY, why));
        }
        let status = match self.settle {
            Settle::PaidAfterPolls(0) => PayoutStatus::Paid,
            Settle::FailedAfterPolls(0) => PayoutStatus::Failed,
            _ => PayoutStatus::Pending,
        };
        let payout = StoredPayout {
            id: format!("po_{}", self.payouts.len() + 1),
            idempotency_key: key.to_owned(),
            request,
            status,
            polls: 0,
            settle: self.settle,
        };
        self.by_key.insert(key.to_owned(), self.payouts.len());
        self.payouts.push(payout.clone());
        Ok((payout, true))
    }
}

/// The query of `GET /payouts`.
#[derive(Debug, serde::Deserialize)]
struct LookupQuery {
    reference: Option<String>,
}

/// `GET /payouts?reference=...`: the payouts created for a reference (the
/// request's `reference`), without counting a poll.
async fn lookup(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<LookupQuery>,
) -> Response {
    if !authorized(&shared, &headers) {
        return problem(StatusCode::UNAUTHORIZED, "Invalid API token");
    }
    let Some(reference) = query.reference.filter(|r| !r.trim().is_empty()) else {
        return problem(StatusCode::BAD_REQUEST, "the reference query is required");
    };
    let mut book = shared.book();
    book.lookups += 1;
    let payouts = book
        .payouts
        .iter()
        .filter(|payout| payout.request.reference == reference)
        .map(StoredPayout::as_payout)
        .collect();
    tracing::info!(%reference, "payout stand-in: GET /payouts?reference");
    axum::Json(PayoutLookup { reference, payouts }).into_response()
}

async fn status(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&shared, &headers) {
        return problem(StatusCode::UNAUTHORIZED, "Invalid API token");
    }
    let mut book = shared.book();
    let Some(payout) = book.payouts.iter_mut().find(|p| p.id == id) else {
        return problem(StatusCode::NOT_FOUND, "No such payout");
    };
    if payout.status == PayoutStatus::Pending {
        payout.polls += 1;
        payout.status = match payout.settle {
            Settle::PaidAfterPolls(n) if payout.polls > n => PayoutStatus::Paid,
            Settle::FailedAfterPolls(n) if payout.polls > n => PayoutStatus::Failed,
            _ => PayoutStatus::Pending,
        };
    }
    answer(payout, StatusCode::OK)
}
