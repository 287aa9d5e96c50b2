//! Benchmarks that compare HAVEN's shared plumbing with a baseline measured
//! in the same run, and print the ratio (not timed tests: nothing here fails
//! on a slow machine).
//!
//! `cargo run -p load-tests --release --bin amqp-loop` moves persistent
//! 1 KiB messages through a quorum queue with the shared publisher and
//! consumer loop, then with raw lapin, and prints both rates.
//!
//! `cargo run -p load-tests --release --bin webhook-bench` sends signed
//! webhooks to webhook-ingress (in-process, on PostgreSQL and RabbitMQ), to a
//! bare axum handler, and measures plain single-row inserts, and prints
//! rates, latencies and ratios. [`load`] is its closed-loop driver,
//! [`broker`] its throw-away broker namespace.
//!
//! `cargo run -p load-tests --release --bin haven-goose` runs the Goose
//! scenarios ([`goose_scenarios`]: signed webhooks, token commands, reads)
//! against a running stack or one it starts in-process.
//!
//! `cargo run -p load-tests --release --bin pipeline-bench` and `--bin
//! soak` (200 webhooks/s, by default for 10 minutes, then a check that every
//! accepted event ended in exactly one confirmed mint) run the services as
//! processes ([`processes`]) and print what each process cost per 1,000
//! mints ([`cost`]: CPU seconds, SQL statements and rows, AMQP messages);
//! they need the services' release binaries next to them. `cargo xtask bench`
//! runs them all and writes `target/bench/latest.{md,json}`; see
//! `load-tests/README.md`.

pub mod broker;
pub mod chaos;
pub mod cost;
pub mod goose_scenarios;
pub mod load;
pub mod processes;

use haven_messages::QueueMessage;
use haven_messages::names::QueueSpec;
use serde::{Deserialize, Serialize};

/// The benchmark's work queue (inside a throw-away namespace).
pub const BENCH_QUEUE: QueueSpec = QueueSpec {
    name: "bench.work",
    bindings: &["bench.#"],
};

/// Routing key every benchmark message is published with.
pub const BENCH_ROUTING_KEY: &str = "bench.blob";

/// The one message kind of the benchmark queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum BenchMessage {
    /// Opaque filler that brings the encoded envelope to the wanted size.
    #[serde(rename = "bench.blob")]
    Blob {
        /// Sequence number.
        seq: u64,
        /// Padding.
        data: String,
    },
}

impl QueueMessage for BenchMessage {
    const QUEUE: QueueSpec = BENCH_QUEUE;
    const SCHEMA_VERSION: u16 = 1;
    const KINDS: &'static [&'static str] = &["bench.blob"];

    fn kind(&self) -> &'static str {
        "bench.blob"
    }

    fn routing_key(&self) -> String {
        BENCH_ROUTING_KEY.to_owned()
    }
}
