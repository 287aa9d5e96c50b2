//! The state every handler reaches, in a module of its own so that the
//! route groups import it and never the router that imports them.

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::reconcile::LastReport;
use crate::stats::StatsCache;
use crate::store::Store;

/// What every handler can reach; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The queries.
    pub store: Store,
    /// token-stats' cache.
    pub stats: StatsCache,
    /// The periodic reconciliation, whose last report is stored with it;
    /// `None` when the chain is not configured.
    pub reconciliation: Option<LastReport>,
    /// This service's instruments.
    pub metrics: Metrics,
}

impl AppState {
    /// Wraps the shared state.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
