//! The provider client against the stand-in: retries with the same key,
//! the error classes the saga acts on, and the stand-in's own contract.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use haven_common::config::Redacted;
use haven_common::money::Wei;
use redemption_payout::config::ProviderConfig;
use redemption_payout::metrics::Metrics;
use redemption_payout::provider::stand_in::{Options, Reply, Settle, StandIn};
use redemption_payout::provider::{ErrorClass, Method, PayoutClient, PayoutRequest, PayoutStatus};
use uuid::Uuid;

fn config(url: &str, token: Option<&str>, timeout: Duration) -> ProviderConfig {
    ProviderConfig {
        payout_provider_url: Redacted::new(url.parse().unwrap()),
        payout_provider_token: token.map(|t| Redacted::new(t.to_owned())),
        payout_provider_timeout: timeout,
        payout_provider_connect_timeout: Duration::from_secs(1),
        payout_provider_retries: 3,
        payout_provider_retry_delay: Duration::from_millis(10),
        payout_currency: "CAD".into(),
        hnv_reference_value: Wei::parse("0.10").unwrap(),
    }
}

fn client(stand_in: &StandIn, timeout: Duration) -> (PayoutClient, Metrics) {
    let metrics = Metrics::new().unwrap();
    let client = PayoutClient::new(
        &config(&stand_in.url(), Some("tok"), timeout),
        metrics.clone(),
    )
    .unwrap();
    (client, metrics)
}

async fn stand_in() -> StandIn {
    StandIn::start(Options {
        api_token: Some("tok".into()),
        ..Options::default()
    })
    .await
    .unwrap()
}

fn request(key: Uuid) -> PayoutRequest {
    PayoutRequest {
        reference: key.to_string(),
        user_id: "guest_1".into(),
        method: Method::BankTransfer,
        destination: None,
        amount: "19.60".into(),
        currency: "CAD".into(),
        hnv_amount: "196.0".into(),
    }
}

fn errors(metrics: &Metrics, class: &str) -> f64 {
    let text = metrics.registry().encode().unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("haven_payout_provider_errors_total{")
                && l.contains(&format!("class=\"{class}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn five_hundred_twice_then_accepted_creates_one_payout_with_one_key() {
    let provider = stand_in().await;
    provider.script([Reply::Fail(500), Reply::Fail(503)], Reply::Accept);
    let (client, metrics) = client(&provider, Duration::from_secs(5));
    let key = Uuid::now_v7();
    let payout = client.create(key, &request(key)).await.unwrap();
    assert_eq!(payout.status, PayoutStatus::Paid);
    assert_eq!(provider.attempts(&key.to_string()), 3);
    assert_eq!(provider.payouts().len(), 1);
    assert_eq!(provider.payouts()[0].idempotency_key, key.to_string());
    assert_eq!(errors(&metrics, "server"), 2.0);
    provider.stop().await;
}

#[tokio::test]
async fn a_4xx_is_a_rejection_and_is_not_retried() {
    let provider = stand_in().await;
    provider.script([], Reply::Fail(422));
    let (client, metrics) = client(&provider, Duration::from_secs(5));
    let key = Uuid::now_v7();
    let err = client.create(key, &request(key)).await.unwrap_err();
    assert!(err.is_clean_refusal(), "{err}");
    assert_eq!(err.error.class(), ErrorClass::Rejected);
    assert_eq!(provider.attempts(&key.to_string()), 1);
    assert!(provider.payouts().is_empty());
    assert_eq!(errors(&metrics, "rejected"), 1.0);
    provider.stop().await;
}

#[tokio::test]
async fn a_wrong_token_is_an_auth_error_never_a_rejection() {
    let provider = stand_in().await;
    let metrics = Metrics::new().unwrap();
    let client = PayoutClient::new(
        &config(&provider.url(), Some("wrong"), Duration::from_secs(5)),
        metrics,
    )
    .unwrap();
    let key = Uuid::now_v7();
    let err = client.create(key, &request(key)).await.unwrap_err();
    assert_eq!(err.error.class(), ErrorClass::Auth);
    assert!(!err.is_clean_refusal());
    assert!(!err.may_exist, "refused before anything was created");
    assert!(!err.to_string().contains("wrong"), "{err}");
    assert!(provider.payouts().is_empty());
    provider.stop().await;
}

#[tokio::test]
async fn a_timeout_is_retried_with_the_same_key_and_a_lost_answer_is_replayed() {
    let provider = stand_in().await;
    // The first attempt creates the payout and never answers; the retry
    // gets the same payout back, not a second one.
    provider.script([Reply::AcceptThenHang], Reply::Accept);
    let (client, metrics) = client(&provider, Duration::from_millis(300));
    let key = Uuid::now_v7();
    let payout = client.create(key, &request(key)).await.unwrap();
    assert_eq!(provider.attempts(&key.to_string()), 2);
    assert_eq!(provider.payouts().len(), 1);
    assert_eq!(payout.id, provider.payouts()[0].id);
    assert_eq!(errors(&metrics, "timeout"), 1.0);

    // Never answering at all: every retry times out, then it gives up.
    let other = Uuid::now_v7();
    provider.script([], Reply::Hang);
    let err = client.create(other, &request(other)).await.unwrap_err();
    assert_eq!(err.error.class(), ErrorClass::Timeout);
    assert!(err.may_exist, "a timeout may hide a payout");
    assert_eq!(provider.attempts(&other.to_string()), 4, "1 + 3 retries");
    assert_eq!(provider.payouts().len(), 1);
    provider.stop().await;
}

#[tokio::test]
async fn an_unreachable_provider_is_a_connect_error() {
    // A port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let metrics = Metrics::new().unwrap();
    let client =
        PayoutClient::new(&config(&url, None, Duration::from_secs(1)), metrics.clone()).unwrap();
    let key = Uuid::now_v7();
    let err = client.create(key, &request(key)).await.unwrap_err();
    assert_eq!(err.error.class(), ErrorClass::Connect, "{err}");
    assert!(!err.may_exist, "nothing was sent");
    assert!(!err.to_string().contains(&url), "{err}");
    assert_eq!(errors(&metrics, "connect"), 4.0, "1 + 3 retries");
}

#[tokio::test]
async fn concurrent_creations_with_one_key_create_one_payout() {
    let provider = stand_in().await;
    let (client, _) = client(&provider, Duration::from_secs(5));
    let key = Uuid::now_v7();
    let body = request(key);
    let answers = futures::future::join_all((0..20).map(|_| client.create(key, &body))).await;
    let ids: std::collections::BTreeSet<String> =
        answers.into_iter().map(|a| a.unwrap().id).collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(provider.payouts().len(), 1);
    assert_eq!(provider.attempts(&key.to_string()), 20);

    // The same key with another body is refused, not paid.
    let mut changed = body.clone();
    changed.amount = "99.00".into();
    let err = client.create(key, &changed).await.unwrap_err();
    assert!(err.error.is_rejection(), "{err}");
    assert_eq!(provider.payouts().len(), 1);
    provider.stop().await;
}

#[tokio::test]
async fn the_status_is_polled_until_the_payout_settles() {
    let provider = stand_in().await;
    provider.settle(Settle::PaidAfterPolls(2));
    let (client, _) = client(&provider, Duration::from_secs(5));
    let key = Uuid::now_v7();
    let created = client.create(key, &request(key)).await.unwrap();
    assert_eq!(created.status, PayoutStatus::Pending);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(client.status(&created.id).await.unwrap().status);
    }
    assert_eq!(
        seen,
        [
            PayoutStatus::Pending,
            PayoutStatus::Pending,
            PayoutStatus::Paid
        ]
    );

    provider.settle(Settle::FailedAfterPolls(0));
    let other = Uuid::now_v7();
    let failed = client.create(other, &request(other)).await.unwrap();
    assert_eq!(failed.status, PayoutStatus::Failed);
    assert!(failed.failure_reason.is_some());
    // An unknown payout is a 404, a rejection of the lookup.
    let err = client.status("po_404").await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Rejected);
    provider.stop().await;
}

#[tokio::test]
async fn the_stand_in_refuses_what_no_provider_would_pay() {
    let provider = stand_in().await;
    let (client, _) = client(&provider, Duration::from_secs(5));
    let key = Uuid::now_v7();
    let mut crypto = request(key);
    crypto.method = Method::Crypto;
    let err = client.create(key, &crypto).await.unwrap_err();
    assert!(err.is_clean_refusal(), "{err}");
    assert!(err.to_string().contains("destination"), "{err}");
    let other = Uuid::now_v7();
    let mut zero = request(other);
    zero.amount = "0.00".into();
    assert!(
        client
            .create(other, &zero)
            .await
            .unwrap_err()
            .is_clean_refusal()
    );
    assert!(provider.payouts().is_empty());
    provider.stop().await;
}

#[tokio::test]
async fn a_refusal_after_a_lost_answer_is_not_a_clean_refusal() {
    let provider = stand_in().await;
    // The first attempt creates the payout and its answer is a 500; the
    // retry is refused (as a provider may refuse a key it has seen).
    provider.script([Reply::AcceptThenFail(500)], Reply::Fail(422));
    let (client, _) = client(&provider, Duration::from_secs(5));
    let key = Uuid::now_v7();
    let err = client.create(key, &request(key)).await.unwrap_err();
    assert_eq!(err.error.class(), ErrorClass::Rejected);
    assert!(err.may_exist);
    assert!(!err.is_clean_refusal(), "the payout exists: {err}");
    assert_eq!(provider.payouts().len(), 1);
    provider.stop().await;
}

#[tokio::test]
async fn a_lookup_finds_the_payout_says_none_or_proves_nothing() {
    let provider = stand_in().await;
    let (client, metrics) = client(&provider, Duration::from_secs(5));
    let key = Uuid::now_v7();
    let created = client.create(key, &request(key)).await.unwrap();
    let found = client.lookup(&key.to_string()).await.unwrap();
    assert_eq!(found, Some(created));
    let other = Uuid::now_v7();
    assert_eq!(client.lookup(&other.to_string()).await.unwrap(), None);
    assert_eq!(provider.lookups(), 2);

    // A wrong URL answers a bare 404: an error, never "no payout".
    provider.misroute(true);
    let err = client.lookup(&other.to_string()).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Rejected, "{err}");
    assert!(err.to_string().contains("404"), "{err}");
    assert_eq!(provider.lookups(), 2, "the stand-in itself never answered");
    provider.misroute(false);
    assert_eq!(client.lookup(&other.to_string()).await.unwrap(), None);
    let text = metrics.registry().encode().unwrap();
    assert!(
        text.contains("operation=\"lookup\""),
        "lookups are timed like every provider call"
    );
    provider.stop().await;
}
