//! `havenctl dead-letters`: list, replay, drop.

use std::time::Duration;

use haven_common::amqp::{AmqpClient, DeadLetter, DeadLetters, Selection};
use serde_json::json;

use crate::cli::{self, QueueArgs};
use crate::{Error, Output};

/// How long to wait for the broker before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn run(command: cli::DeadLetters) -> Result<Output, Error> {
    match command {
        cli::DeadLetters::List(args) => list(&args.queues).await,
        cli::DeadLetters::Replay(args) => replay(&args.queues, &args.selection).await,
        cli::DeadLetters::Drop(args) => drop(&args.queues, &args.selection, &args.reason).await,
    }
}

async fn connect(args: &QueueArgs) -> Result<DeadLetters, Error> {
    let client = AmqpClient::builder(&args.amqp)
        .connection_name("havenctl")
        .start()?;
    client.wait_connected(CONNECT_TIMEOUT).await?;
    Ok(DeadLetters::new(client))
}

fn limit(args: &QueueArgs) -> usize {
    usize::try_from(args.limit).unwrap_or(usize::MAX)
}

fn selection(s: &cli::Selection) -> Selection {
    Selection {
        id: s.id.clone(),
        reason_contains: s.reason_contains.clone(),
        occurred_before: s.older_than.map(|age| {
            chrono::Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::TimeDelta::MAX)
        }),
    }
}

fn describe(letter: &DeadLetter) -> String {
    format!(
        "  {}  {}  attempts={}  occurred_at={}  correlation_id={}  reason: {}",
        letter.message_id.as_deref().unwrap_or("(no message id)"),
        letter.kind.as_deref().unwrap_or("(not an envelope)"),
        letter.attempts,
        letter
            .occurred_at
            .map_or_else(|| "?".to_owned(), |t| t.to_rfc3339()),
        letter.correlation_id.as_deref().unwrap_or("?"),
        letter.reason,
    )
}

async fn list(args: &QueueArgs) -> Result<Output, Error> {
    let dead = connect(args).await?;
    let mut lines = Vec::new();
    let mut queues = Vec::new();
    for queue in args.queues() {
        let letters = dead.list(queue, limit(args)).await?;
        lines.push(format!("{queue}: {} dead letter(s)", letters.len()));
        lines.extend(letters.iter().map(describe));
        queues.push(json!({ "queue": queue, "dead_letters": letters }));
    }
    Ok(Output::new(lines, json!({ "queues": queues })))
}

async fn replay(args: &QueueArgs, s: &cli::Selection) -> Result<Output, Error> {
    let dead = connect(args).await?;
    let selection = selection(s);
    let mut replayed = Vec::new();
    for queue in args.queues() {
        replayed.extend(dead.replay(queue, &selection, limit(args)).await?);
    }
    found_by_id(s, &replayed)?;
    let mut lines = vec![format!(
        "replayed {} dead letter(s) to their work queue with the attempt count reset",
        replayed.len()
    )];
    lines.extend(
        replayed
            .iter()
            .map(|l| format!("{}:{}", l.queue, describe(l))),
    );
    Ok(Output::new(lines, json!({ "replayed": replayed })))
}

async fn drop(args: &QueueArgs, s: &cli::Selection, reason: &str) -> Result<Output, Error> {
    let dead = connect(args).await?;
    let selection = selection(s);
    let mut dropped = Vec::new();
    for queue in args.queues() {
        dropped.extend(dead.drop_selected(queue, &selection, limit(args)).await?);
    }
    found_by_id(s, &dropped)?;
    for letter in &dropped {
        tracing::warn!(
            queue = %letter.queue,
            message_id = ?letter.message_id,
            dead_reason = %letter.reason,
            drop_reason = reason,
            "dead letter dropped by an operator"
        );
    }
    let mut lines = vec![format!(
        "dropped {} dead letter(s); reason: {reason}",
        dropped.len()
    )];
    lines.extend(
        dropped
            .iter()
            .map(|l| format!("{}:{}", l.queue, describe(l))),
    );
    Ok(Output::new(
        lines,
        json!({ "dropped": dropped, "reason": reason }),
    ))
}

/// A command for one message by id that found none is a "not found".
fn found_by_id(s: &cli::Selection, taken: &[DeadLetter]) -> Result<(), Error> {
    match &s.id {
        Some(id) if taken.is_empty() => Err(Error::NotFound(format!(
            "no dead letter with message id or correlation id `{id}` matched"
        ))),
        _ => Ok(()),
    }
}
