//! `havenctl`: the operator's command line.
//!
//! [`execute`] runs one parsed command and returns what it found as an
//! [`Output`] (human lines and one JSON document); `main.rs` only parses,
//! prints and sets the exit status, so the integration tests run the real
//! commands in-process against a fresh database and broker namespace.
//!
//! Every command goes through the code the services themselves use: the
//! dead-letter queues through `haven_common::amqp::DeadLetters` (the
//! consumer loop's topology, headers and confirmed publisher), rows through
//! `haven_entity`, a refund retry through redemption-payout's own store
//! step, a lease release through the lease store chain-minter uses, and the
//! reconciliation through read-api's `Reconciler`.

pub mod cli;
mod dead_letters;
pub mod error;
mod ops;
mod show;

use serde_json::Value;

pub use cli::Cli;
pub use error::Error;

/// Exit status of a reconciliation that found a mismatch.
pub const EXIT_MISMATCH: u8 = 3;

/// What a command found or did.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Lines for a person.
    pub lines: Vec<String>,
    /// The same as one JSON document (`--json`).
    pub json: Value,
    /// The exit status (0, or [`EXIT_MISMATCH`]).
    pub status: u8,
}

impl Output {
    fn new(lines: Vec<String>, json: Value) -> Self {
        Self {
            lines,
            json,
            status: 0,
        }
    }

    /// What to print: the JSON document or the lines.
    pub fn render(&self, json: bool) -> String {
        if json {
            serde_json::to_string_pretty(&self.json).unwrap_or_default()
        } else {
            self.lines.join("\n")
        }
    }
}

/// Runs `cli`'s command.
pub async fn execute(cli: Cli) -> Result<Output, Error> {
    use cli::Command;
    match cli.command {
        Command::DeadLetters(command) => dead_letters::run(command).await,
        Command::Show(command) => show::run(command).await,
        Command::SignerLease(command) => ops::signer_lease(command).await,
        Command::Refund(command) => ops::refund(command).await,
        Command::Reconcile(args) => ops::reconcile(args).await,
    }
}
