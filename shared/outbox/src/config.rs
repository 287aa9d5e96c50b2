//! The relay's settings as a clap fragment every service with an outbox
//! flattens in (`OUTBOX_BATCH_SIZE`, `OUTBOX_POLL_INTERVAL`).

use std::time::Duration;

use haven_common::config::parse_duration;

use crate::RelaySettings;

/// How the outbox relay of a service polls and batches.
#[derive(clap::Args, Debug, Clone)]
pub struct OutboxConfig {
    /// Most outbox rows the relay publishes per round.
    #[arg(long, env = "OUTBOX_BATCH_SIZE", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub outbox_batch_size: u64,

    /// How often the relay looks for unpublished rows when no commit woke it
    /// (it is woken after every commit that queued a message).
    #[arg(long, env = "OUTBOX_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub outbox_poll_interval: Duration,
}

impl OutboxConfig {
    /// The relay settings: these two, the rest at their defaults.
    pub fn settings(&self) -> RelaySettings {
        RelaySettings {
            batch_size: self.outbox_batch_size,
            poll_interval: self.outbox_poll_interval,
            ..RelaySettings::default()
        }
    }
}
