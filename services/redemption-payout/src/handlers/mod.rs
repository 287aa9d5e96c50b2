//! One consumer per queue: each only finds the redemption a message is
//! about and hands it to [`crate::saga::Saga::advance`].

pub mod chain_event;
pub mod redemption_request;

use haven_common::amqp::Outcome;

use crate::saga::Progress;
use haven_common::amqp::Failure;

/// The consumer's decision for a saga result: ack once it is recorded
/// (done, or waiting on the chain or the provider, which announce or are
/// polled), retry a transient failure, dead-letter a permanent one.
pub(crate) fn settle(result: Result<Progress, Failure>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ack,
        Err(failure) => failure.into_outcome(),
    }
}
