//! The contract's figures, read through `haven_chain`'s [`Rpc`] (per-call
//! timeout; no retries in read-api, see [`crate::Config::chain`]).

use std::str::FromStr as _;

use alloy::primitives::{Address, Bytes, U256};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use haven_chain::config::RpcConfig;
use haven_chain::contract::HAVEN;
use haven_chain::error::ChainError;
use haven_chain::rpc::Rpc;
use haven_common::money::Wei;

/// The contract's emission figures at one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainFigures {
    /// The block they were read at.
    pub block_number: u64,
    /// `totalSupply()`.
    pub total_supply: Wei,
    /// `getEmissionStats().minted` (= `totalMinted()`).
    pub total_minted: Wei,
    /// `getEmissionStats().burned` (= `totalBurned()`).
    pub total_burned: Wei,
    /// `getEmissionStats().circulating`.
    pub circulating: Wei,
    /// `getEmissionStats().supplyCap`.
    pub supply_cap: Wei,
    /// `getEmissionStats().monthlyTarget` (zero: none set).
    pub monthly_target: Wei,
}

/// Read-only access to the HAVEN contract.
#[derive(Debug, Clone)]
pub struct ChainReader {
    rpc: Rpc,
    contract: Address,
}

impl ChainReader {
    /// A reader for `contract` over `config` (no network traffic yet).
    /// Fails only on an RPC URL that is not http(s).
    pub fn new(config: &RpcConfig, contract: Address) -> Result<Self, ChainError> {
        Ok(Self {
            rpc: Rpc::new(config)?,
            contract,
        })
    }

    /// The contract address.
    pub fn contract(&self) -> Address {
        self.contract
    }

    /// `totalSupply()` and `getEmissionStats()` at the latest block, both
    /// read at the same block so they agree with each other.
    pub async fn figures(&self) -> Result<ChainFigures, ChainError> {
        let block_number = self.rpc.block_number().await?;
        let (total_supply, stats) = futures::try_join!(
            self.view_at(&HAVEN::totalSupplyCall {}, block_number),
            self.view_at(&HAVEN::getEmissionStatsCall {}, block_number),
        )?;
        Ok(ChainFigures {
            block_number,
            total_supply: wei(total_supply)?,
            total_minted: wei(stats.minted)?,
            total_burned: wei(stats.burned)?,
            circulating: wei(stats.circulating)?,
            supply_cap: wei(stats.supplyCap)?,
            monthly_target: wei(stats.monthlyTarget)?,
        })
    }

    /// `balanceOf(holder)` at the latest block.
    pub async fn balance_of(&self, holder: Address) -> Result<Wei, ChainError> {
        wei(self
            .rpc
            .view(self.contract, &HAVEN::balanceOfCall { account: holder })
            .await?)
    }

    /// A typed view call at `block`.
    async fn view_at<C: SolCall>(&self, call: &C, block: u64) -> Result<C::Return, ChainError> {
        let tx = TransactionRequest::default()
            .to(self.contract)
            .input(Bytes::from(call.abi_encode()).into());
        let out = self.rpc.eth_call(&tx, Some(block)).await?;
        C::abi_decode_returns(&out).map_err(|err| {
            ChainError::Config(format!(
                "contract at {} answered {} with undecodable data ({err}): is it the HAVEN contract?",
                self.contract,
                C::SIGNATURE
            ))
        })
    }
}

/// A wallet address as stored (checksummed or not).
pub fn parse_address(text: &str) -> Option<Address> {
    Address::from_str(text).ok()
}

/// A token amount from the chain; anything above `u128` (impossible under
/// the supply cap) is an error, not a wrap.
fn wei(value: U256) -> Result<Wei, ChainError> {
    u128::try_from(value)
        .map(Wei::from_wei)
        .map_err(|_| ChainError::Config(format!("the contract reported {value} wei, above u128")))
}
