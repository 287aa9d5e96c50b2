//! The current broker connection as the supervisor publishes it on a watch
//! channel, and the wait for an open one: shared by the client that owns the
//! supervisor and by the publisher and consumers that open channels on it.

use std::sync::Arc;

use lapin::Connection;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::error::AmqpError;

/// One open connection and its sequence number (1 for the first, +1 per reconnect).
pub(crate) struct Link {
    pub(crate) generation: u64,
    pub(crate) connection: Connection,
}

impl Link {
    pub(crate) fn is_open(&self) -> bool {
        self.connection.status().connected()
    }
}

pub(crate) type LinkRx = watch::Receiver<Option<Arc<Link>>>;

/// Waits on `rx` for an open connection.
pub(crate) async fn wait_link(
    mut rx: LinkRx,
    stop: &CancellationToken,
) -> Result<Arc<Link>, AmqpError> {
    let wait = rx.wait_for(|l| l.as_ref().is_some_and(|l| l.is_open()));
    tokio::select! {
        biased;
        _ = stop.cancelled() => Err(AmqpError::Closed),
        link = wait => match link {
            Ok(link) => link.clone().ok_or(AmqpError::Closed),
            Err(_) => Err(AmqpError::Closed),
        },
    }
}
