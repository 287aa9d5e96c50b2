//! The command line: one clap struct per command, a doc comment on each
//! that becomes its `--help` (what it does and what it changes).

use std::time::Duration;

use alloy::primitives::Address;
use clap::builder::PossibleValuesParser;
use haven_common::config::{AmqpConfig, DatabaseConfig, Redacted, parse_duration};
use haven_messages::names;
use uuid::Uuid;

/// The HAVEN operator's command line.
///
/// Reads DATABASE_URL and AMQP_URL (and AMQP_NAMESPACE) like the services.
/// Every command prints one human line per fact, or one JSON document with
/// `--json`. Exit status: 0 done, 1 not found or refused or failed, 2 a
/// usage error, 3 `reconcile` found a mismatch.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "havenctl", version)]
pub struct Cli {
    /// Print one JSON document instead of human lines.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every command.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// The dead-letter queues: list, replay or drop what is parked in them.
    #[command(subcommand)]
    DeadLetters(DeadLetters),
    /// What happened to a user, a token transaction, a redemption or a
    /// partner event (reads the database; changes nothing).
    #[command(subcommand)]
    Show(Show),
    /// The chain-minter signer leases: list them, or release one whose holder is gone.
    #[command(subcommand)]
    SignerLease(SignerLease),
    /// Refunds of redemptions that the saga left for an operator.
    #[command(subcommand)]
    Refund(Refund),
    /// Compares the ledger with the chain (every user's balance against
    /// `balanceOf`, the totals against the contract's) and prints the
    /// report: read-api's reconciliation, run once. Changes nothing. Exit
    /// status 3 when they disagree.
    Reconcile(ReconcileArgs),
}

/// `havenctl dead-letters ...`
#[derive(clap::Subcommand, Debug, Clone)]
pub enum DeadLetters {
    /// Lists each dead letter of each queue (or of `--queue`) with its
    /// reason and attempts. Changes nothing: the messages are read without
    /// acknowledgement and all go back to their queue.
    List(ListArgs),
    /// Sends dead letters back to the work queue they came from, with their
    /// attempt count reset to 0 (so their first new failure is retried, not
    /// dead-lettered again). Each copy is confirmed by the broker before
    /// its dead letter is removed: a crash in between can duplicate a
    /// message (the consumers absorb it), never lose one. Takes one message
    /// (`--id`), a filter, or `--all`.
    Replay(SelectArgs),
    /// Deletes dead letters for good: one (`--id`), a filter, or `--all`.
    /// `--reason` is required; it is logged and printed with each message dropped.
    Drop(DropArgs),
}

/// The broker and the queues a dead-letter command looks at.
#[derive(clap::Args, Debug, Clone)]
pub struct QueueArgs {
    /// Only this work queue's dead letters (default: every queue's).
    #[arg(long, value_parser = PossibleValuesParser::new(names::ALL_QUEUES.iter().map(|q| q.name)))]
    pub queue: Option<String>,

    /// Most messages read per queue.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub limit: u32,

    /// The broker.
    #[command(flatten)]
    pub amqp: AmqpConfig,
}

impl QueueArgs {
    /// The queues named (one, or all).
    pub fn queues(&self) -> Vec<&'static str> {
        names::ALL_QUEUES
            .iter()
            .map(|q| q.name)
            .filter(|name| self.queue.as_deref().is_none_or(|q| q == *name))
            .collect()
    }
}

/// `dead-letters list`
#[derive(clap::Args, Debug, Clone)]
pub struct ListArgs {
    /// Which queues, and the broker.
    #[command(flatten)]
    pub queues: QueueArgs,
}

/// Which dead letters a replay or a drop takes (at least one condition, or `--all`).
#[derive(clap::Args, Debug, Clone)]
#[group(id = "selection", required = true, multiple = true)]
pub struct Selection {
    /// The message with this message id or correlation id.
    #[arg(long, group = "selection")]
    pub id: Option<String>,

    /// Messages whose dead reason contains this text (case ignored).
    #[arg(long, group = "selection")]
    pub reason_contains: Option<String>,

    /// Messages whose event occurred longer ago than this (`30m`, `2h`, `7d`).
    #[arg(long, group = "selection", value_parser = parse_duration)]
    pub older_than: Option<Duration>,

    /// Every message (of `--queue`, or of every queue).
    #[arg(long, group = "selection", conflicts_with_all = ["id", "reason_contains", "older_than"])]
    pub all: bool,
}

/// `dead-letters replay`
#[derive(clap::Args, Debug, Clone)]
pub struct SelectArgs {
    /// Which messages.
    #[command(flatten)]
    pub selection: Selection,

    /// Which queues, and the broker.
    #[command(flatten)]
    pub queues: QueueArgs,
}

/// `dead-letters drop`
#[derive(clap::Args, Debug, Clone)]
pub struct DropArgs {
    /// Which messages.
    #[command(flatten)]
    pub selection: Selection,

    /// Why they are dropped (logged and printed; required).
    #[arg(long, value_parser = non_blank)]
    pub reason: String,

    /// Which queues, and the broker.
    #[command(flatten)]
    pub queues: QueueArgs,
}

/// `havenctl show ...`
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Show {
    /// A user (by the partners' user id, or HAVEN's internal id) with their
    /// balances, latest token transactions and redemptions.
    User {
        /// The partners' user id (guest id) or HAVEN's internal UUID.
        id: String,
        /// The database.
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// A mint or burn (by its `tx_id`) with its history: status, chain hash
    /// and block, ledger movements, and the reward or redemption it belongs to.
    Tx {
        /// The transaction's `tx_id`.
        tx_id: String,
        /// The database.
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// A redemption with its history: states, burn, payout id, refund,
    /// ledger movements.
    Redemption {
        /// The redemption's `request_id`.
        request_id: Uuid,
        /// The database.
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// A partner's inbound event (by its event id: booking, review,
    /// contribution... id, the webhook-id, or the message id) and the
    /// reward it made.
    Event {
        /// `aurora` or `tribe`.
        partner: String,
        /// The event's id.
        event_id: String,
        /// The database.
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

/// `havenctl signer-lease ...`
#[derive(clap::Subcommand, Debug, Clone)]
pub enum SignerLease {
    /// Lists every signer lease: signer, holder, expiry. Changes nothing.
    List {
        /// The database.
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Deletes a signer's lease so another chain-minter replica can take it
    /// now instead of when it expires. For a holder that is gone (killed
    /// without releasing it): a live holder notices at its next renewal
    /// and stops sending, but a transaction it is broadcasting at that
    /// moment can race the new holder's first nonce. Deletes only the
    /// lease of the holder it read (or of `--holder`).
    Release {
        /// The signer's address (case ignored).
        address: String,
        /// Release only if this instance holds it.
        #[arg(long)]
        holder: Option<String>,
        /// The database.
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

/// `havenctl refund ...`
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Refund {
    /// Retries the refund of a redemption left for an operator (state
    /// `refund_requested` with a failed or cancelled refund mint): the same
    /// mint (same `tx_id`, same on-chain reference, so it cannot mint twice)
    /// goes back to `pending` and its chain request is queued through the
    /// outbox, exactly as redemption-payout queued it first. A running
    /// service's outbox relay publishes it; redemption-payout then records
    /// the refund when chain-minter confirms it. Refuses anything else.
    Retry {
        /// The redemption's `request_id`.
        request_id: Uuid,
        /// The database.
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

/// `havenctl reconcile`
#[derive(clap::Args, Debug, Clone)]
pub struct ReconcileArgs {
    /// JSON-RPC endpoint of the chain. Never printed.
    #[arg(long, env = "RPC_URL", hide_env_values = true)]
    pub rpc_url: Redacted<String>,

    /// Address of the deployed HAVEN contract.
    #[arg(long, env = "CONTRACT_ADDRESS")]
    pub contract_address: Address,

    /// Longest time one chain call may take.
    #[arg(long, env = "RPC_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub rpc_timeout: Duration,

    /// `balanceOf` calls kept in flight at once.
    #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub reconcile_concurrency: u16,

    /// The database.
    #[command(flatten)]
    pub database: DatabaseConfig,
}

fn non_blank(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must say why (it is logged)".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[test]
    fn a_selection_keeps_what_was_given() {
        let cli =
            Cli::try_parse_from(["havenctl", "dead-letters", "replay", "--id", "m-1"]).unwrap();
        let Command::DeadLetters(DeadLetters::Replay(args)) = cli.command else {
            panic!("{cli:?}")
        };
        assert_eq!(args.selection.id.as_deref(), Some("m-1"), "{args:?}");
    }
}
