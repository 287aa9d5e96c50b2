//! Gas of the backend's mint paths, measured from real receipts.
//!
//! Run with `--no-capture` to see the table. Every figure is a whole
//! transaction (`receipt.gas_used`: the 21,000 base, calldata, execution) on
//! a contract already holding supply, minting to holders that held nothing.

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::TransactionReceipt;

use crate::helpers::{Chain, fresh_holder, hashed_ref, hnv, mined, reason};
use haven_chain::contract::reference_in_block;

/// Issue #4 targets.
const SINGLE_TARGET: u64 = 70_000;
const PER_RECIPIENT_TARGET: u64 = 30_000;
const BATCH: usize = 100;

fn gas(receipt: &TransactionReceipt) -> u64 {
    receipt.gas_used
}

#[tokio::test]
async fn gas_of_single_and_batched_mints_with_references() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let m = chain.minter;
    let why = reason("booking");
    // 240 HNV: a typical booking reward, so calldata is realistic.
    let amount = hnv(240);
    // Steady state: the supply is already non-zero.
    chain.mint(chain.holder, hnv(1)).await;

    // Single mint, reference in a block no earlier reference used: the
    // reference needs a fresh storage word.
    let single_fresh_word = gas(&mined(
        t.mintWithRef(fresh_holder("s1"), amount, hashed_ref("s1"), why)
            .from(m),
    )
    .await);

    // Single mint, reference in a block an earlier transaction opened.
    let block = hashed_ref("single-block");
    mined(
        t.mintWithRef(
            fresh_holder("s2"),
            amount,
            reference_in_block(&block, 0),
            why,
        )
        .from(m),
    )
    .await;
    let single_shared_word = gas(&mined(
        t.mintWithRef(
            fresh_holder("s3"),
            amount,
            reference_in_block(&block, 1),
            why,
        )
        .from(m),
    )
    .await);

    // Full batch, references from one block (the layout the contract is built for).
    let batch_block = |tag: &str| -> (Vec<Address>, Vec<U256>, Vec<B256>) {
        let block = hashed_ref(tag);
        (
            (0..BATCH)
                .map(|i| fresh_holder(&format!("{tag}/{i}")))
                .collect(),
            vec![amount; BATCH],
            (0..BATCH)
                .map(|i| reference_in_block(&block, u8::try_from(i).expect("batch fits a block")))
                .collect(),
        )
    };
    let (recipients, amounts, refs) = batch_block("batch-one-block");
    let batch_one_block =
        gas(&mined(t.batchMintWithRefs(recipients, amounts, refs, why).from(m)).await);

    // Full batch, unrelated hashed references (one storage word each), for contrast.
    let (recipients, amounts, _) = batch_block("batch-hashed");
    let refs: Vec<B256> = (0..BATCH).map(|i| hashed_ref(&format!("h{i}"))).collect();
    let batch_hashed =
        gas(&mined(t.batchMintWithRefs(recipients, amounts, refs, why).from(m)).await);

    // Full batch without references, for contrast.
    let (recipients, amounts, _) = batch_block("batch-plain");
    let batch_plain = gas(&mined(t.batchMint(recipients, amounts, why).from(m)).await);

    // The same one-block batch resent: every entry skipped.
    let (recipients, amounts, refs) = batch_block("batch-one-block");
    let batch_resent =
        gas(&mined(t.batchMintWithRefs(recipients, amounts, refs, why).from(m)).await);

    let per = |total: u64| total / BATCH as u64;
    println!("HAVEN gas (receipt.gas_used, new holders, 240 HNV each)");
    println!(
        "  mintWithRef, reference in an opened block : {single_shared_word:>9}   target < {SINGLE_TARGET}"
    );
    println!("  mintWithRef, reference in a fresh block   : {single_fresh_word:>9}");
    println!(
        "  batchMintWithRefs x{BATCH}, one block          : {batch_one_block:>9}   {:>6} per recipient, target < {PER_RECIPIENT_TARGET}",
        per(batch_one_block)
    );
    println!(
        "  batchMintWithRefs x{BATCH}, hashed references  : {batch_hashed:>9}   {:>6} per recipient",
        per(batch_hashed)
    );
    println!(
        "  batchMint x{BATCH} (no references)             : {batch_plain:>9}   {:>6} per recipient",
        per(batch_plain)
    );
    println!(
        "  batchMintWithRefs x{BATCH} resent (all skipped): {batch_resent:>9}   {:>6} per recipient",
        per(batch_resent)
    );

    assert!(
        single_shared_word < SINGLE_TARGET,
        "mintWithRef used {single_shared_word} gas"
    );
    assert!(
        per(batch_one_block) < PER_RECIPIENT_TARGET,
        "batchMintWithRefs used {} gas per recipient",
        per(batch_one_block)
    );
    // The resend minted nothing.
    assert_eq!(
        t.totalSupply().call().await.unwrap(),
        hnv(1) + amount * U256::from(3 + 3 * BATCH)
    );
}
