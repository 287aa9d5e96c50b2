//! `GET /analytics/token-stats`: the database's totals next to the
//! contract's, served from a short-lived cache.
//!
//! The whole answer (database and chain) is cached for `STATS_CACHE_TTL`,
//! failures of the chain included, so a dashboard polling every second costs
//! the database and the RPC endpoint one read per TTL, and a dead chain
//! costs one timeout per TTL instead of one per request. Concurrent misses
//! wait for the one read in progress (a single flight), and every answer
//! says how old it is. A failing database is never cached: it is a 503.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use haven_common::money::Wei;
use haven_common::openapi::HnvAmount;
use haven_common::telemetry::ErrorChain;
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;
use utoipa::ToSchema;

use crate::chain::{ChainFigures, ChainReader};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::store::{Store, Totals};

/// Whether the contract's figures are in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChainStatus {
    /// Read at `block_number`.
    Available,
    /// The chain did not answer; the database figures stand alone.
    Unavailable,
    /// No RPC_URL / CONTRACT_ADDRESS: the service runs without the chain.
    NotConfigured,
}

/// The contract's side of token-stats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChainStats {
    /// Whether the figures below are there.
    pub status: ChainStatus,
    /// Why not, when `unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The contract.
    pub contract_address: Option<String>,
    /// The block the figures were read at.
    pub block_number: Option<u64>,
    /// `totalSupply()`.
    #[schema(value_type = Option<HnvAmount>)]
    pub total_supply: Option<Wei>,
    /// `getEmissionStats().minted`.
    #[schema(value_type = Option<HnvAmount>)]
    pub total_minted: Option<Wei>,
    /// `getEmissionStats().burned`.
    #[schema(value_type = Option<HnvAmount>)]
    pub total_burned: Option<Wei>,
    /// `getEmissionStats().circulating`.
    #[schema(value_type = Option<HnvAmount>)]
    pub circulating_supply: Option<Wei>,
    /// `getEmissionStats().supplyCap`.
    #[schema(value_type = Option<HnvAmount>)]
    pub supply_cap: Option<Wei>,
    /// `getEmissionStats().monthlyTarget` (0: none set).
    #[schema(value_type = Option<HnvAmount>)]
    pub monthly_mint_target: Option<Wei>,
    /// Whether the contract's minted and burned totals equal the ledger's
    /// (transactions in flight make them differ for a moment; the
    /// reconciliation tells a lasting difference).
    pub matches_database: Option<bool>,
}

/// `GET /analytics/token-stats`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TokenStats {
    /// HNV ever minted, per the ledger (confirmed mints).
    #[schema(value_type = HnvAmount, example = 500000.0)]
    pub total_minted: Wei,
    /// HNV ever burned, per the ledger.
    #[schema(value_type = HnvAmount, example = 50000.0)]
    pub total_burned: Wei,
    /// Minted less burned.
    #[schema(value_type = HnvAmount, example = 450000.0)]
    pub circulating_supply: Wei,
    /// HAVEN users.
    pub total_users: u64,
    /// Token transactions (mints and burns) in every status.
    pub total_transactions: u64,
    /// Token transactions queued or sent and not yet confirmed or failed.
    pub pending_transactions: u64,
    /// The contract's figures.
    pub chain: ChainStats,
    /// When these figures were read.
    #[schema(value_type = String, format = DateTime)]
    pub cached_at: DateTime<Utc>,
    /// How long ago that was, in seconds (at most STATS_CACHE_TTL).
    pub cache_age_seconds: f64,
}

/// The single-flight, time-limited cache of [`TokenStats`].
#[derive(Debug)]
pub struct StatsCache {
    ttl: Duration,
    store: Store,
    chain: Option<ChainReader>,
    metrics: Metrics,
    last: Mutex<Option<(Instant, Arc<TokenStats>)>>,
}

impl StatsCache {
    /// A cache keeping answers for `ttl`.
    pub fn new(ttl: Duration, store: Store, chain: Option<ChainReader>, metrics: Metrics) -> Self {
        Self {
            ttl,
            store,
            chain,
            metrics,
            last: Mutex::new(None),
        }
    }

    /// The cached answer if it is younger than the TTL, else a fresh one.
    pub async fn get(&self) -> Result<TokenStats, Error> {
        // Held across the read: concurrent misses wait for this one.
        let mut last = self.last.lock().await;
        let fresh = match last.as_ref() {
            Some((at, stats)) if at.elapsed() < self.ttl => (*at, Arc::clone(stats)),
            _ => {
                let stats = Arc::new(self.read().await?);
                let now = Instant::now();
                *last = Some((now, Arc::clone(&stats)));
                (now, stats)
            }
        };
        drop(last);
        let (at, stats) = fresh;
        let mut answer = (*stats).clone();
        answer.cache_age_seconds = at.elapsed().as_secs_f64();
        Ok(answer)
    }

    async fn read(&self) -> Result<TokenStats, Error> {
        let totals = self.store.totals();
        let chain = async {
            match &self.chain {
                None => None,
                Some(reader) => Some((reader.contract(), reader.figures().await)),
            }
        };
        let (totals, chain) = tokio::join!(totals, chain);
        let totals = totals?;
        let chain = match chain {
            None => ChainStats::empty(ChainStatus::NotConfigured, None, None),
            Some((contract, Ok(figures))) => {
                self.metrics.stats_chain_up.set(1);
                ChainStats::read(contract.to_string(), &figures, &totals)
            }
            Some((contract, Err(err))) => {
                self.metrics.stats_chain_up.set(0);
                tracing::warn!(error = %ErrorChain(&err), "token-stats: the chain did not answer; serving the database figures alone");
                ChainStats::empty(
                    ChainStatus::Unavailable,
                    Some(
                        "The chain could not be read; the figures above are the database's"
                            .to_owned(),
                    ),
                    Some(contract.to_string()),
                )
            }
        };
        Ok(TokenStats {
            total_minted: totals.minted,
            total_burned: totals.burned,
            // The ledger never burns more than it minted.
            circulating_supply: totals
                .minted
                .checked_sub(totals.burned)
                .unwrap_or(Wei::ZERO),
            total_users: totals.users,
            total_transactions: totals.transactions,
            pending_transactions: totals.in_flight,
            chain,
            cached_at: Utc::now(),
            cache_age_seconds: 0.0,
        })
    }
}

impl ChainStats {
    fn empty(status: ChainStatus, detail: Option<String>, contract: Option<String>) -> Self {
        Self {
            status,
            detail,
            contract_address: contract,
            block_number: None,
            total_supply: None,
            total_minted: None,
            total_burned: None,
            circulating_supply: None,
            supply_cap: None,
            monthly_mint_target: None,
            matches_database: None,
        }
    }

    fn read(contract: String, figures: &ChainFigures, totals: &Totals) -> Self {
        Self {
            status: ChainStatus::Available,
            detail: None,
            contract_address: Some(contract),
            block_number: Some(figures.block_number),
            total_supply: Some(figures.total_supply),
            total_minted: Some(figures.total_minted),
            total_burned: Some(figures.total_burned),
            circulating_supply: Some(figures.circulating),
            supply_cap: Some(figures.supply_cap),
            monthly_mint_target: Some(figures.monthly_target),
            matches_database: Some(
                figures.total_minted == totals.minted && figures.total_burned == totals.burned,
            ),
        }
    }
}
