//! Why read-api could not start or stopped with an error.

use haven_common::db::DbError;
use haven_common::metrics::MetricsError;

/// Everything that ends `run` with an error. The process prints it with its
/// whole cause chain and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The metrics registry could not be set up (a duplicate metric name).
    #[error("could not register metrics")]
    Metrics(#[from] MetricsError),
    /// The database settings are unusable (a malformed URL).
    #[error("could not set up the database pool")]
    Database(#[from] DbError),
    /// The HTTP server failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}
