//! `havenctl dead-letters` against the real broker: real dead letters made
//! by the shared consumer loop, listed without loss, replayed with a fresh
//! attempt count (proved by the loop retrying instead of dead-lettering the
//! replayed message's next failure), filtered, and dropped with a reason.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use haven_common::amqp::{ConsumerOptions, Outcome, consume, handler_fn};
use haven_common::retry::RetryPolicy;
use haven_common::shutdown::CancellationToken;
use haven_common::testing::amqp::{TestAmqp, ready_count};
use haven_common::testing::eventually;
use haven_messages::names::{self, CHAIN_REQUESTS};
use haven_messages::{ChainRequest, Envelope, MintRequest};
use uuid::Uuid;

use crate::helpers::{bin, json, run};

/// Two handlings at most, one second apart: quick to exhaust.
const QUICK: RetryPolicy = RetryPolicy {
    name: "test",
    base: Duration::from_secs(1),
    cap: Duration::from_secs(1),
    factor: 2.0,
    max_attempts: 2,
};

fn mint(amount_wei: u128) -> Envelope<ChainRequest> {
    Envelope::new(ChainRequest::Mint(MintRequest {
        tx_id: Uuid::now_v7(),
        user_id: "guest-1".into(),
        to_address: "0x0000000000000000000000000000000000001001".into(),
        amount_wei,
        reason: "booking".into(),
    }))
}

fn amount(envelope: &Envelope<ChainRequest>) -> u128 {
    match &envelope.payload {
        ChainRequest::Mint(m) => m.amount_wei,
        ChainRequest::Burn(b) => b.amount_wei,
    }
}

#[tokio::test]
async fn dead_letters_are_listed_kept_replayed_with_a_fresh_attempt_count_and_dropped() {
    let amqp = TestAmqp::new(names::ALL_QUEUES);
    let config = amqp.config();
    let client = amqp.client(&config);
    client
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let raw = amqp.raw_connection().await;
    let channel = raw.create_channel().await.unwrap();
    let dead_queue = amqp.topology().dead_queue(CHAIN_REQUESTS.name);
    let ns = [
        "--amqp-url",
        &amqp_url(&config),
        "--amqp-namespace",
        amqp.namespace(),
    ];

    // Three chain requests dead-lettered by the consumer loop: one after its
    // retries ran out (a transient failure twice), two refused for good.
    let away = mint(1);
    let corrupt = [mint(2), mint(3)];
    for envelope in std::iter::once(&away).chain(&corrupt) {
        client.publisher().publish(envelope).await.unwrap();
    }
    let stop = CancellationToken::new();
    let loop_client = client.clone();
    let first = tokio::spawn({
        let stop = stop.clone();
        async move {
            consume::<ChainRequest, _>(
                &loop_client,
                handler_fn(|envelope: Envelope<ChainRequest>, _ctx| async move {
                    if amount(&envelope) == 1 {
                        Outcome::Retry("database away".into())
                    } else {
                        Outcome::DeadLetter("corrupt row".into())
                    }
                }),
                ConsumerOptions {
                    retry: QUICK,
                    ..ConsumerOptions::default()
                },
                stop,
            )
            .await
        }
    });
    eventually("three dead letters", Duration::from_secs(20), || async {
        ready_count(&channel, &dead_queue).await == 3
    })
    .await;
    stop.cancel();
    first.await.unwrap().unwrap();

    // list: every queue, the three with their reasons and attempts; none lost.
    let mut args = vec!["--json", "dead-letters", "list"];
    args.extend(ns);
    let listed = json(&args).await;
    let queues = listed["queues"].as_array().unwrap();
    assert_eq!(queues.len(), names::ALL_QUEUES.len(), "{listed}");
    let chain = queues
        .iter()
        .find(|q| q["queue"] == CHAIN_REQUESTS.name)
        .unwrap();
    let letters = chain["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 3, "{listed}");
    let by_id = |id: Uuid| {
        letters
            .iter()
            .find(|l| l["message_id"] == id.to_string())
            .unwrap_or_else(|| panic!("{id} listed: {listed}"))
    };
    let gave_up = by_id(away.message_id);
    assert_eq!(gave_up["attempts"], 2);
    assert_eq!(gave_up["reason"], "gave up after 2 attempts: database away");
    assert_eq!(gave_up["correlation_id"], away.correlation_id.to_string());
    assert_eq!(gave_up["kind"], "mint");
    for c in &corrupt {
        assert_eq!(by_id(c.message_id)["attempts"], 1);
        assert_eq!(by_id(c.message_id)["reason"], "corrupt row");
    }
    settles_at(&channel, &dead_queue, 3, "listing keeps them all").await;
    let human = run(&args[1..]).await.unwrap().lines.join("\n");
    assert!(
        human.contains("chain-minter.requests: 3 dead letter(s)"),
        "{human}"
    );
    assert!(human.contains("attempts=2"), "{human}");

    // replay one by id: back on its work queue with the attempt count at 0,
    // so its next failure is retried, not dead-lettered (it had used both
    // of its attempts).
    let id = away.message_id.to_string();
    let mut args = vec![
        "--json",
        "dead-letters",
        "replay",
        "--id",
        &id,
        "--queue",
        CHAIN_REQUESTS.name,
    ];
    args.extend(ns);
    let replayed = json(&args).await;
    assert_eq!(
        replayed["replayed"].as_array().unwrap().len(),
        1,
        "{replayed}"
    );
    settles_at(&channel, &dead_queue, 2, "the other two stay").await;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = CancellationToken::new();
    let second = tokio::spawn({
        let (stop, seen, client) = (stop.clone(), seen.clone(), client.clone());
        async move {
            consume::<ChainRequest, _>(
                &client,
                handler_fn(move |envelope: Envelope<ChainRequest>, ctx| {
                    let seen = seen.clone();
                    async move {
                        seen.lock()
                            .unwrap()
                            .push((envelope.message_id, ctx.attempt));
                        if ctx.attempt == 0 {
                            Outcome::Retry("still away".into())
                        } else {
                            Outcome::Ack
                        }
                    }
                }),
                ConsumerOptions {
                    retry: QUICK,
                    ..ConsumerOptions::default()
                },
                stop,
            )
            .await
        }
    });
    eventually(
        "the replayed message handled twice",
        Duration::from_secs(20),
        || async { seen.lock().unwrap().len() >= 2 },
    )
    .await;
    stop.cancel();
    second.await.unwrap().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(away.message_id, 0), (away.message_id, 1)],
        "replayed at attempt 0, retried once, then acked"
    );
    assert_eq!(
        ready_count(&channel, &dead_queue).await,
        2,
        "its new failure did not dead-letter it again"
    );

    // A filter that matches nothing takes nothing; an unknown id is "not found".
    let mut args = vec!["--json", "dead-letters", "replay", "--older-than", "1h"];
    args.extend(ns);
    assert_eq!(json(&args).await["replayed"], serde_json::json!([]));
    let mut args = vec!["dead-letters", "replay", "--id", "no-such-message"];
    args.extend(ns);
    let (code, out, err) = bin(&args);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("no dead letter with message id or correlation id `no-such-message`"),
        "{err}"
    );
    settles_at(&channel, &dead_queue, 2, "an unknown id takes nothing").await;

    // drop by reason, with the operator's reason printed.
    let mut args = vec![
        "dead-letters",
        "drop",
        "--reason-contains",
        "CORRUPT",
        "--reason",
        "rows fixed by hand, events re-sent",
    ];
    args.extend(ns);
    let (code, out, err) = bin(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("dropped 2 dead letter(s); reason: rows fixed by hand, events re-sent"),
        "{out}"
    );
    assert!(
        err.contains("dead letter dropped by an operator"),
        "logged: {err}"
    );
    assert_eq!(ready_count(&channel, &dead_queue).await, 0);

    let _ = raw.close(200, "done".into()).await;
    client.close().await;
    amqp.cleanup().await;
}

#[test]
fn replay_and_drop_need_a_selection_and_drop_a_reason() {
    // Usage errors exit 2 before any connection is tried.
    let (code, _, err) = bin(&["dead-letters", "replay"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = bin(&["dead-letters", "drop", "--all"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--reason"), "{err}");
    let (code, _, err) = bin(&["dead-letters", "replay", "--all", "--id", "x"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = bin(&["dead-letters", "list", "--queue", "nope"]);
    assert_eq!(code, 2, "{err}");
    for command in [
        &["dead-letters", "list", "--help"][..],
        &["dead-letters", "replay", "--help"],
        &["dead-letters", "drop", "--help"],
    ] {
        let (code, out, _) = bin(command);
        assert_eq!(code, 0);
        assert!(out.contains("--json"), "{out}");
    }
    let (_, out, _) = bin(&["dead-letters", "replay", "--help"]);
    assert!(out.contains("attempt count reset to 0"), "{out}");
}

/// Waits for `queue` to hold `n` ready messages: the messages a scan kept
/// become ready again shortly after its channel closes.
async fn settles_at(channel: &lapin::Channel, queue: &str, n: u32, what: &str) {
    eventually(what, Duration::from_secs(10), || async {
        ready_count(channel, queue).await == n
    })
    .await;
}

fn amqp_url(config: &haven_common::config::AmqpConfig) -> String {
    config.amqp_url.expose().clone()
}
