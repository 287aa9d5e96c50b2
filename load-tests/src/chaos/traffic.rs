//! The steady mixed load of the matrix, sent as partners and operators
//! send it: open loop at a fixed rate, signed webhooks of every kind for
//! new and known guests, token mints and redemptions with the API key, and
//! balance reads. A request that fails without an answer (a refused
//! connection, a timeout) or with a 5xx or 429 is sent again, the same
//! bytes, with a growing pause, as a partner's retry queue would, for up to
//! [`RETRY_FOR`]; a 2xx is the system's word that the event is durable.
//!
//! Every event records what it must do to the guest's balance (its
//! [`Effect`]), which is what the checks hold the chain to.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use haven_e2e::{API_KEY, AURORA_SECRET, TRIBE_SECRET};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;
use webhook_ingress::signature::sender;

/// How long one event is retried before the sender gives up on it.
pub const RETRY_FOR: Duration = Duration::from_secs(240);
/// Wei per HNV.
pub const WEI: u128 = 1_000_000_000_000_000_000;
/// HNV a token mint command asks for.
const MINT_HNV: u128 = 5;
/// HNV a redemption asks for.
const REDEEM_HNV: u128 = 10;
/// A guest redeems only this long after their first booking was accepted,
/// so the tokens are usually there (a refusal is counted, not a failure).
const REDEEM_AFTER: Duration = Duration::from_secs(6);
/// Token mints go to guests whose first booking is this old (the user exists).
const MINT_AFTER: Duration = Duration::from_secs(5);
/// A booking is cancelled only this long after it was accepted.
const CANCEL_AFTER: Duration = Duration::from_secs(3);

/// A HAVEN user as the partners name them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Guest {
    /// `aurora` or `tribe`.
    pub partner: &'static str,
    /// The partner's id of the user.
    pub external_id: String,
}

/// What an accepted event must do, seen from outside.
#[derive(Debug, Clone)]
pub enum Effect {
    /// One confirmed mint of `wei` to `guest` for the reward with `source_reference`.
    Reward {
        /// The reward's unique key (`<partner>:<fact>:<once-per key>`).
        source_reference: String,
        /// Who earns it.
        guest: Guest,
        /// How much.
        wei: u128,
        /// Its booking was cancelled later: net nothing.
        cancelled: bool,
    },
    /// One confirmed mint of `wei` by an operator, `tx_id` its idempotency key.
    Mint {
        /// The transaction id (the idempotency key).
        tx_id: String,
        /// To whom.
        guest: Guest,
        /// How much.
        wei: u128,
    },
    /// A redemption that ends paid (once, `wei` burned) or refunded.
    Redeem {
        /// The redemption's id, from the answer.
        request_id: Option<Uuid>,
        /// Its idempotency key.
        key: String,
        /// Whose.
        guest: Guest,
        /// How much.
        wei: u128,
    },
    /// Cancels the booking reward `source_reference` (its guest ends with nothing from it).
    Cancel {
        /// The booking reward it cancels.
        source_reference: String,
    },
    /// Changes no balance (a completed booking).
    Nothing,
}

/// How an event's sending ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx (`accepted` or `duplicate`).
    Accepted,
    /// A 4xx other than 408/429: `status detail`.
    Refused(String),
    /// No 2xx within [`RETRY_FOR`]: the last error.
    Unanswered(String),
}

/// One event the load sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Route, e.g. `aurora/booking-created` or `token/mint`.
    pub kind: &'static str,
    /// What it must do.
    pub effect: Effect,
    /// How it ended.
    pub outcome: Outcome,
    /// When the 2xx came (wall clock, to compare with the database's).
    pub accepted_at: Option<DateTime<Utc>>,
    /// Requests sent for it.
    pub attempts: u32,
}

/// A request to send: route, body, headers.
struct Request {
    path: String,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

#[derive(Debug)]
struct KnownGuest {
    external_id: String,
    first_accepted: Instant,
    redeemed: bool,
}

/// What the generator knows of earlier accepted events.
#[derive(Debug, Default)]
struct Pools {
    aurora: Vec<KnownGuest>,
    tribe: Vec<String>,
    /// Accepted bookings of guests who will cancel: (booking id, guest, accepted).
    to_cancel: VecDeque<(String, String, Instant)>,
    /// Index of each booking's event (in [`Traffic::sent`]) by booking id,
    /// to mark it cancelled.
    bookings: BTreeMap<String, usize>,
    /// Accepted bookings of guests who keep them: (booking id, guest).
    kept: Vec<(String, String)>,
}

/// The load of one fault's run.
#[derive(Debug)]
pub struct Traffic {
    client: reqwest::Client,
    ingress: String,
    read_api: String,
    /// Namespaces the ids of this run.
    run: String,
    pools: Mutex<Pools>,
    sent: Mutex<Vec<Sent>>,
    reads: Mutex<(u64, u64)>,
}

impl Traffic {
    /// A load against webhook-ingress at `ingress` and read-api at `read_api`.
    pub fn new(ingress: String, read_api: String) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Arc::new(Self {
            client,
            ingress,
            read_api,
            run: Uuid::now_v7().simple().to_string()[..8].to_owned(),
            pools: Mutex::new(Pools::default()),
            sent: Mutex::new(Vec::new()),
            reads: Mutex::new((0, 0)),
        })
    }

    /// Sends `events` events at `rate` a second, then waits for every
    /// retry to end. Returns when the last one has its outcome.
    pub async fn run(self: &Arc<Self>, events: u64, rate: u32) {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut tasks = JoinSet::new();
        for seq in 0..events {
            ticker.tick().await;
            let this = Arc::clone(self);
            if seq % 10 == 5 {
                let reader = Arc::clone(self);
                tasks.spawn(async move { reader.read_balance().await });
            }
            tasks.spawn(async move { this.send_one(seq).await });
            // Reap what finished, so the set does not grow with the run.
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Everything sent so far.
    pub fn sent(&self) -> Vec<Sent> {
        lock(&self.sent).clone()
    }

    /// Balance reads answered 200 and not.
    pub fn reads(&self) -> (u64, u64) {
        *lock(&self.reads)
    }

    async fn read_balance(&self) {
        let user = lock(&self.pools)
            .aurora
            .iter()
            .find(|g| g.first_accepted.elapsed() >= MINT_AFTER)
            .map(|g| g.external_id.clone());
        let Some(user) = user else { return };
        let ok = self
            .client
            .get(format!("{}/token/balance/{user}", self.read_api))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        let mut reads = lock(&self.reads);
        if ok {
            reads.0 += 1;
        } else {
            reads.1 += 1;
        }
    }

    async fn send_one(&self, seq: u64) {
        let Some((kind, effect, request)) = self.next_event(seq).await else {
            return;
        };
        let (outcome, attempts, answer) = self.deliver(&request).await;
        let accepted = outcome == Outcome::Accepted;
        let effect = match effect {
            Effect::Redeem {
                key, guest, wei, ..
            } => Effect::Redeem {
                key,
                request_id: answer
                    .get("request_id")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok()),
                guest,
                wei,
            },
            other => other,
        };
        let mut sent = lock(&self.sent);
        let index = sent.len();
        sent.push(Sent {
            kind,
            effect: effect.clone(),
            outcome,
            accepted_at: accepted.then(Utc::now),
            attempts,
        });
        drop(sent);
        if accepted {
            self.remember(kind, &effect, index);
        }
    }

    /// What an accepted event teaches the generator: new guests to reuse,
    /// bookings to cancel, cancellations to mark.
    fn remember(&self, kind: &'static str, effect: &Effect, index: usize) {
        let mut pools = lock(&self.pools);
        match effect {
            Effect::Reward {
                source_reference,
                guest,
                ..
            } if kind == "aurora/booking-created" => {
                let booking = source_reference
                    .trim_start_matches("aurora:booking:")
                    .to_owned();
                pools.bookings.insert(booking.clone(), index);
                if guest.external_id.starts_with("c-") {
                    pools
                        .to_cancel
                        .push_back((booking, guest.external_id.clone(), Instant::now()));
                    return;
                }
                pools.kept.push((booking, guest.external_id.clone()));
                if !pools
                    .aurora
                    .iter()
                    .any(|g| g.external_id == guest.external_id)
                {
                    pools.aurora.push(KnownGuest {
                        external_id: guest.external_id.clone(),
                        first_accepted: Instant::now(),
                        redeemed: false,
                    });
                }
            }
            Effect::Reward { guest, .. }
                if guest.partner == "tribe" && !pools.tribe.contains(&guest.external_id) =>
            {
                pools.tribe.push(guest.external_id.clone());
            }
            Effect::Cancel { source_reference } => {
                let booking = source_reference.trim_start_matches("aurora:booking:");
                if let Some(&i) = pools.bookings.get(booking) {
                    drop(pools);
                    if let Some(Sent {
                        effect: Effect::Reward { cancelled, .. },
                        ..
                    }) = lock(&self.sent).get_mut(i)
                    {
                        *cancelled = true;
                    }
                }
            }
            _ => {}
        }
    }

    /// The event of tick `seq`: a fixed mix over 20 ticks.
    async fn next_event(&self, seq: u64) -> Option<(&'static str, Effect, Request)> {
        let run = &self.run;
        let id = format!("{run}-{seq}");
        let known_aurora = |pick: u64| -> Option<String> {
            let pools = lock(&self.pools);
            let n = pools.aurora.len();
            (n > 0).then(|| pools.aurora[(pick as usize) % n].external_id.clone())
        };
        let known_tribe = |pick: u64| -> Option<String> {
            let pools = lock(&self.pools);
            let n = pools.tribe.len();
            (n > 0).then(|| pools.tribe[(pick as usize) % n].clone())
        };
        let new_booking = |guest: String| {
            let price = 50 + u128::from(seq % 100) as u64;
            let nights = 1 + seq % 3;
            booking(&id, &guest, price, nights)
        };
        match seq % 20 {
            0..=6 => Some(new_booking(format!("g-{id}"))),
            7 | 8 => Some(new_booking(known_aurora(seq).unwrap_or(format!("g-{id}")))),
            9 => Some(match known_aurora(seq) {
                Some(guest) => review(&id, &guest),
                None => new_booking(format!("g-{id}")),
            }),
            10 => {
                let kept = {
                    let pools = lock(&self.pools);
                    let n = pools.kept.len();
                    (n > 0).then(|| pools.kept[(seq as usize) % n].clone())
                };
                Some(match kept {
                    Some((booking, guest)) => completed(&booking, &guest),
                    None => new_booking(format!("g-{id}")),
                })
            }
            11 => Some(new_booking(format!("c-{id}"))),
            12 => {
                let due = {
                    let mut pools = lock(&self.pools);
                    match pools.to_cancel.front() {
                        Some((_, _, at)) if at.elapsed() >= CANCEL_AFTER => {
                            pools.to_cancel.pop_front()
                        }
                        _ => None,
                    }
                };
                Some(match due {
                    Some((booking, guest, _)) => cancellation(&booking, &guest),
                    None => new_booking(format!("g-{id}")),
                })
            }
            13 => Some(contribution(&id, &format!("t-{id}"))),
            14 => Some(contribution(
                &id,
                &known_tribe(seq).unwrap_or(format!("t-{id}")),
            )),
            15 => Some(attendance(
                &id,
                &known_tribe(seq).unwrap_or(format!("t-{id}")),
            )),
            16 => Some(coaching(
                &id,
                &known_tribe(seq).unwrap_or(format!("t-{id}")),
            )),
            17 => Some(referral(
                &id,
                &known_tribe(seq).unwrap_or(format!("t-{id}")),
            )),
            18 => Some(match self.known_user(seq, false) {
                Some(guest) => mint(&id, &guest),
                None => new_booking(format!("g-{id}")),
            }),
            _ => Some(match self.known_user(seq, true) {
                Some(guest) => redeem(&id, &guest),
                None => new_booking(format!("g-{id}")),
            }),
        }
    }

    /// A known Aurora guest (the API's `user_id` is the partners' id) whose
    /// first booking was accepted long enough ago for the user to exist
    /// ([`MINT_AFTER`]); for a redemption, one who has not redeemed and whose
    /// tokens are likely minted ([`REDEEM_AFTER`]).
    fn known_user(&self, seq: u64, to_redeem: bool) -> Option<String> {
        let mut pools = lock(&self.pools);
        let n = pools.aurora.len();
        if to_redeem {
            let guest = pools
                .aurora
                .iter_mut()
                .find(|g| !g.redeemed && g.first_accepted.elapsed() >= REDEEM_AFTER)?;
            guest.redeemed = true;
            return Some(guest.external_id.clone());
        }
        (0..n)
            .map(|k| &pools.aurora[(seq as usize + k) % n])
            .find(|g| g.first_accepted.elapsed() >= MINT_AFTER)
            .map(|g| g.external_id.clone())
    }

    /// Sends `request` until a 2xx, a refusal, or [`RETRY_FOR`] has passed.
    async fn deliver(&self, request: &Request) -> (Outcome, u32, Value) {
        let started = Instant::now();
        let mut pause = Duration::from_millis(250);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut builder = self
                .client
                .post(format!("{}{}", self.ingress, request.path))
                .header("content-type", "application/json")
                .body(request.body.clone());
            for (name, value) in &request.headers {
                builder = builder.header(*name, value);
            }
            let last_error = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if status.is_success() {
                        return (Outcome::Accepted, attempts, body);
                    }
                    let detail = body.get("detail").and_then(Value::as_str).unwrap_or("");
                    let said = format!("{} {detail}", status.as_u16());
                    if status.is_client_error() && status != 408 && status != 429 {
                        return (Outcome::Refused(said), attempts, body);
                    }
                    said
                }
                Err(err) if err.is_timeout() => "timeout".to_owned(),
                Err(err) if err.is_connect() => "connection refused".to_owned(),
                Err(_) => "connection lost".to_owned(),
            };
            if started.elapsed() + pause > RETRY_FOR {
                return (Outcome::Unanswered(last_error), attempts, Value::Null);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn signed(path: &str, body: &Value) -> Request {
    let body = serde_json::to_vec(body).unwrap_or_default();
    let (secret, header) = if path.contains("/aurora/") {
        (AURORA_SECRET, "X-Aurora-Signature")
    } else {
        (TRIBE_SECRET, "X-Tribe-Signature")
    };
    let signature = sender::hex_signature(secret, &body).unwrap_or_default();
    Request {
        path: path.to_owned(),
        body,
        headers: vec![(header, signature)],
    }
}

fn command(path: &str, body: &Value) -> Request {
    Request {
        path: path.to_owned(),
        body: serde_json::to_vec(body).unwrap_or_default(),
        headers: vec![("X-API-Key", API_KEY.to_owned())],
    }
}

fn aurora(guest: &str) -> Guest {
    Guest {
        partner: "aurora",
        external_id: guest.to_owned(),
    }
}

fn tribe(user: &str) -> Guest {
    Guest {
        partner: "tribe",
        external_id: user.to_owned(),
    }
}

fn reward(source_reference: String, guest: Guest, hnv_tenths: u128) -> Effect {
    Effect::Reward {
        source_reference,
        guest,
        wei: hnv_tenths * WEI / 10,
        cancelled: false,
    }
}

/// 2 HNV per CAD, x1.2 for more than one night.
fn booking(id: &str, guest: &str, price: u64, nights: u64) -> (&'static str, Effect, Request) {
    let booking = format!("b-{id}");
    let tenths = u128::from(price) * 20 * if nights > 1 { 12 } else { 10 } / 10;
    let body = json!({
        "id": booking, "guest_id": guest, "guest_email": format!("{guest}@chaos.test"),
        "total_price": price, "nights": nights,
        "check_in": "2026-12-20", "check_out": "2026-12-23",
    });
    (
        "aurora/booking-created",
        reward(format!("aurora:booking:{booking}"), aurora(guest), tenths),
        signed("/webhooks/aurora/booking-created", &body),
    )
}

fn completed(booking: &str, guest: &str) -> (&'static str, Effect, Request) {
    let body = json!({"id": booking, "guest_id": guest});
    (
        "aurora/booking-completed",
        Effect::Nothing,
        signed("/webhooks/aurora/booking-completed", &body),
    )
}

fn cancellation(booking: &str, guest: &str) -> (&'static str, Effect, Request) {
    let body = json!({"id": booking, "guest_id": guest, "cancellation_reason": "chaos"});
    (
        "aurora/booking-cancelled",
        Effect::Cancel {
            source_reference: format!("aurora:booking:{booking}"),
        },
        signed("/webhooks/aurora/booking-cancelled", &body),
    )
}

/// 50 HNV for a rating of 4 or 5.
fn review(id: &str, guest: &str) -> (&'static str, Effect, Request) {
    let review = format!("r-{id}");
    let body =
        json!({"id": review, "booking_id": format!("b-{id}"), "guest_id": guest, "rating": 5});
    (
        "aurora/review-submitted",
        reward(format!("aurora:review:{review}"), aurora(guest), 500),
        signed("/webhooks/aurora/review-submitted", &body),
    )
}

/// A post of quality 1.0: 10 HNV.
fn contribution(id: &str, user: &str) -> (&'static str, Effect, Request) {
    let contribution = format!("p-{id}");
    let body = json!({"id": contribution, "user_id": user, "type": "post", "quality_score": 1.0});
    (
        "tribe/contribution",
        reward(
            format!("tribe:contribution:{contribution}"),
            tribe(user),
            100,
        ),
        signed("/webhooks/tribe/contribution", &body),
    )
}

/// A workshop attended: 75 HNV.
fn attendance(id: &str, user: &str) -> (&'static str, Effect, Request) {
    let event = format!("e-{id}");
    let body = json!({"id": event, "attendee_id": user, "name": "Chaos workshop",
                      "type": "workshop", "attended": true, "timestamp": "2026-12-07T10:00:00Z"});
    (
        "tribe/event-attendance",
        reward(format!("tribe:event:{event}\u{1f}{user}"), tribe(user), 750),
        signed("/webhooks/tribe/event-attendance", &body),
    )
}

/// A basic milestone: 100 HNV.
fn coaching(id: &str, user: &str) -> (&'static str, Effect, Request) {
    let milestone = format!("m-{id}");
    let body = json!({"user_id": user, "milestone_name": milestone, "tier": "basic"});
    (
        "tribe/coaching-milestone",
        reward(
            format!("tribe:coaching:{user}\u{1f}{milestone}"),
            tribe(user),
            1000,
        ),
        signed("/webhooks/tribe/coaching-milestone", &body),
    )
}

/// A basic referral: 100 HNV to the referrer.
fn referral(id: &str, referrer: &str) -> (&'static str, Effect, Request) {
    let referred = format!("n-{id}");
    let body = json!({"referrer_id": referrer, "referred_id": referred, "tier": "basic"});
    (
        "tribe/referral-success",
        reward(
            format!("tribe:referral:{referrer}\u{1f}{referred}"),
            tribe(referrer),
            1000,
        ),
        signed("/webhooks/tribe/referral-success", &body),
    )
}

fn mint(id: &str, guest: &str) -> (&'static str, Effect, Request) {
    let key = format!("chaos-mint-{id}");
    let body = json!({"user_id": guest, "amount": MINT_HNV.to_string(), "reason": "chaos", "idempotency_key": key});
    (
        "token/mint",
        Effect::Mint {
            tx_id: key,
            guest: aurora(guest),
            wei: MINT_HNV * WEI,
        },
        command("/token/mint", &body),
    )
}

fn redeem(id: &str, guest: &str) -> (&'static str, Effect, Request) {
    let key = format!("chaos-redeem-{id}");
    let body = json!({"user_id": guest, "amount": REDEEM_HNV.to_string(),
                      "withdrawal_method": "bank_transfer", "idempotency_key": key});
    (
        "token/redeem",
        Effect::Redeem {
            request_id: None,
            key,
            guest: aurora(guest),
            wei: REDEEM_HNV * WEI,
        },
        command("/token/redeem", &body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wei_of(effect: &Effect) -> u128 {
        match effect {
            Effect::Reward { wei, .. } | Effect::Mint { wei, .. } | Effect::Redeem { wei, .. } => {
                *wei
            }
            Effect::Cancel { .. } | Effect::Nothing => 0,
        }
    }

    #[test]
    fn expected_rewards_follow_the_spec_table() {
        // SPEC.md: 100 CAD, 2 nights -> 240; one night: 2 per CAD.
        assert_eq!(wei_of(&booking("x", "g", 100, 2).1), 240 * WEI);
        assert_eq!(wei_of(&booking("x", "g", 73, 1).1), 146 * WEI);
        assert_eq!(wei_of(&review("x", "g").1), 50 * WEI);
        assert_eq!(wei_of(&contribution("x", "t").1), 10 * WEI);
        assert_eq!(wei_of(&attendance("x", "t").1), 75 * WEI);
        assert_eq!(wei_of(&coaching("x", "t").1), 100 * WEI);
        assert_eq!(wei_of(&referral("x", "t").1), 100 * WEI);
        assert_eq!(wei_of(&mint("x", "g").1), MINT_HNV * WEI);
        assert_eq!(wei_of(&redeem("x", "g").1), REDEEM_HNV * WEI);
    }

    #[test]
    fn source_references_are_the_calculators_once_per_keys() {
        let Effect::Reward {
            source_reference, ..
        } = attendance("1", "t-1").1
        else {
            panic!("a reward");
        };
        assert_eq!(source_reference, "tribe:event:e-1\u{1f}t-1");
        let Effect::Reward {
            source_reference, ..
        } = booking("1", "g-1", 50, 1).1
        else {
            panic!("a reward");
        };
        assert_eq!(source_reference, "aurora:booking:b-1");
    }

    #[test]
    fn webhooks_are_signed_with_their_partners_secret_and_commands_carry_the_key() {
        let request = booking("1", "g-1", 50, 1).2;
        let (header, signature) = &request.headers[0];
        assert_eq!(*header, "X-Aurora-Signature");
        assert_eq!(
            signature,
            &sender::hex_signature(AURORA_SECRET, &request.body).unwrap()
        );
        assert_eq!(contribution("1", "t-1").2.headers[0].0, "X-Tribe-Signature");
        assert_eq!(
            mint("1", "g-1").2.headers,
            vec![("X-API-Key", API_KEY.to_owned())]
        );
    }
}
