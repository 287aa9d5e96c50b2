//! A reference mints or burns once: single forms refuse a used one, the batch
//! form skips it (with an event) and mints the rest.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, TransactionReceipt};
use haven_chain::contract::{HAVEN, HAVEN::HAVENErrors, decode_reason, reference_in_block};

use crate::helpers::{Chain, fresh_holder, hashed_ref, hnv, mined, reason, reverted};

fn minted_events(receipt: &TransactionReceipt) -> Vec<HAVEN::Minted> {
    receipt
        .logs()
        .iter()
        .filter_map(|log| log.log_decode::<HAVEN::Minted>().ok())
        .map(|log| log.inner.data)
        .collect()
}

fn skipped_events(receipt: &TransactionReceipt) -> Vec<HAVEN::RefSkipped> {
    receipt
        .logs()
        .iter()
        .filter_map(|log| log.log_decode::<HAVEN::RefSkipped>().ok())
        .map(|log| log.inner.data)
        .collect()
}

fn assert_ref_used(error: HAVENErrors, reference: B256) {
    match error {
        HAVENErrors::RefAlreadyUsed(e) => assert_eq!(e.r#ref, reference),
        other => panic!("expected RefAlreadyUsed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_used_reference_is_refused_by_single_mint_and_burn() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let to = chain.holder;
    let mint_ref = hashed_ref("mint");
    let why = reason("booking");
    assert!(!chain.ref_used(mint_ref).await);

    let receipt = mined(
        t.mintWithRef(to, hnv(240), mint_ref, why)
            .from(chain.minter),
    )
    .await;
    assert!(chain.ref_used(mint_ref).await);
    let events = minted_events(&receipt);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].r#ref,
            events[0].to,
            events[0].reason,
            events[0].amount
        ),
        (mint_ref, to, why, hnv(240))
    );

    // The resend is refused, whatever its amount or recipient.
    assert_ref_used(
        reverted(
            t.mintWithRef(to, hnv(240), mint_ref, why)
                .from(chain.minter),
        )
        .await,
        mint_ref,
    );
    assert_ref_used(
        reverted(
            t.mintWithRef(fresh_holder("other"), hnv(1), mint_ref, why)
                .from(chain.minter),
        )
        .await,
        mint_ref,
    );
    // References are one namespace: a mint's reference cannot burn.
    assert_ref_used(
        reverted(
            t.burnFromWithRef(to, hnv(1), mint_ref, reason("redemption"))
                .from(chain.burner),
        )
        .await,
        mint_ref,
    );
    assert_eq!(chain.balance(to).await, hnv(240));

    let burn_ref = hashed_ref("burn");
    let receipt = mined(
        t.burnFromWithRef(to, hnv(40), burn_ref, reason("redemption"))
            .from(chain.burner),
    )
    .await;
    let burned = receipt
        .decoded_log::<HAVEN::Burned>()
        .expect("Burned event")
        .data;
    assert_eq!(
        (burned.r#ref, burned.from, burned.amount),
        (burn_ref, to, hnv(40))
    );
    assert_eq!(decode_reason(&burned.reason).as_deref(), Some("redemption"));
    assert_ref_used(
        reverted(
            t.burnFromWithRef(to, hnv(40), burn_ref, reason("redemption"))
                .from(chain.burner),
        )
        .await,
        burn_ref,
    );
    assert_eq!(chain.balance(to).await, hnv(200));
}

#[tokio::test]
async fn the_zero_reference_is_refused() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let to = fresh_holder("zero");
    let why = reason("booking");
    for error in [
        reverted(
            t.mintWithRef(to, hnv(1), B256::ZERO, why)
                .from(chain.minter),
        )
        .await,
        reverted(
            t.batchMintWithRefs(vec![to], vec![hnv(1)], vec![B256::ZERO], why)
                .from(chain.minter),
        )
        .await,
        reverted(
            t.burnFromWithRef(to, hnv(1), B256::ZERO, why)
                .from(chain.burner),
        )
        .await,
    ] {
        assert!(matches!(error, HAVENErrors::ZeroRef(_)), "{error:?}");
    }
}

#[tokio::test]
async fn a_resent_batch_mints_exactly_the_missing_entries() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let why = reason("booking");
    let block = hashed_ref("batch-block");
    let recipients: Vec<Address> = (0..5).map(|i| fresh_holder(&format!("r{i}"))).collect();
    let amounts: Vec<U256> = (1..=5).map(hnv).collect();
    let refs: Vec<B256> = (0..5).map(|i| reference_in_block(&block, i)).collect();

    // Entries 1 and 3 landed before the crash (here: singly).
    for i in [1, 3] {
        mined(
            t.mintWithRef(recipients[i], amounts[i], refs[i], why)
                .from(chain.minter),
        )
        .await;
    }

    let call = t
        .batchMintWithRefs(recipients.clone(), amounts.clone(), refs.clone(), why)
        .from(chain.minter);
    assert_eq!(call.call().await.unwrap(), U256::from(3), "entries minted");
    let receipt = mined(call).await;

    let minted = minted_events(&receipt);
    assert_eq!(
        minted.iter().map(|e| e.r#ref).collect::<Vec<_>>(),
        vec![refs[0], refs[2], refs[4]]
    );
    let skipped = skipped_events(&receipt);
    assert_eq!(skipped.len(), 2);
    for (event, i) in skipped.iter().zip([1, 3]) {
        assert_eq!(
            (event.r#ref, event.to, event.reason, event.amount),
            (refs[i], recipients[i], why, amounts[i])
        );
    }
    for (i, recipient) in recipients.iter().enumerate() {
        assert_eq!(chain.balance(*recipient).await, amounts[i], "recipient {i}");
        assert!(chain.ref_used(refs[i]).await);
    }
    // Other references of the same block stay free.
    assert!(!chain.ref_used(reference_in_block(&block, 5)).await);
    assert!(!chain.ref_used(reference_in_block(&block, 255)).await);

    // A third send of the same batch is a no-op that still succeeds.
    let receipt = mined(
        t.batchMintWithRefs(recipients.clone(), amounts.clone(), refs.clone(), why)
            .from(chain.minter),
    )
    .await;
    assert!(minted_events(&receipt).is_empty());
    assert_eq!(skipped_events(&receipt).len(), 5);
    assert_eq!(t.totalSupply().call().await.unwrap(), hnv(15));
}

#[tokio::test]
async fn a_reference_twice_in_one_batch_mints_once() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let to = fresh_holder("dup");
    let r = hashed_ref("dup");
    let receipt = mined(
        t.batchMintWithRefs(
            vec![to, to],
            vec![hnv(7), hnv(7)],
            vec![r, r],
            reason("review"),
        )
        .from(chain.minter),
    )
    .await;
    assert_eq!(minted_events(&receipt).len(), 1);
    assert_eq!(skipped_events(&receipt).len(), 1);
    assert_eq!(chain.balance(to).await, hnv(7));
}

#[tokio::test]
async fn events_can_be_found_by_reference_reason_and_holder() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let to = fresh_holder("findme");
    let r = hashed_ref("findme");
    let why = reason("referral");
    mined(
        t.mintWithRef(chain.holder, hnv(1), hashed_ref("noise"), reason("booking"))
            .from(chain.minter),
    )
    .await;
    let receipt = mined(t.mintWithRef(to, hnv(500), r, why).from(chain.minter)).await;

    let by_ref = Filter::new()
        .address(*t.address())
        .event_signature(<HAVEN::Minted as alloy::sol_types::SolEvent>::SIGNATURE_HASH)
        .topic1(r)
        .from_block(0);
    let logs = chain.provider.get_logs(&by_ref).await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].transaction_hash, Some(receipt.transaction_hash));
    let event = logs[0].log_decode::<HAVEN::Minted>().unwrap().inner.data;
    assert_eq!((event.to, event.amount), (to, hnv(500)));
    assert_eq!(decode_reason(&event.reason).as_deref(), Some("referral"));

    let by_holder_and_reason = Filter::new()
        .address(*t.address())
        .event_signature(<HAVEN::Minted as alloy::sol_types::SolEvent>::SIGNATURE_HASH)
        .topic2(to.into_word())
        .topic3(why)
        .from_block(0);
    assert_eq!(
        chain
            .provider
            .get_logs(&by_holder_and_reason)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn batch_size_and_shape_are_checked() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let why = reason("booking");
    let recipients: Vec<Address> = (0..101).map(|i| fresh_holder(&format!("b{i}"))).collect();
    let amounts = vec![hnv(1); 101];
    let block = hashed_ref("limit");
    let refs: Vec<B256> = (0..101u8).map(|i| reference_in_block(&block, i)).collect();

    let too_many = |error: HAVENErrors, size: u64| match error {
        HAVENErrors::InvalidBatchSize(e) => {
            assert_eq!((e.size, e.max), (U256::from(size), U256::from(100)));
        }
        other => panic!("expected InvalidBatchSize, got {other:?}"),
    };
    too_many(
        reverted(
            t.batchMint(recipients.clone(), amounts.clone(), why)
                .from(chain.minter),
        )
        .await,
        101,
    );
    too_many(
        reverted(
            t.batchMintWithRefs(recipients.clone(), amounts.clone(), refs.clone(), why)
                .from(chain.minter),
        )
        .await,
        101,
    );
    too_many(
        reverted(t.batchMint(vec![], vec![], why).from(chain.minter)).await,
        0,
    );
    let mismatch = [
        reverted(
            t.batchMint(recipients[..2].to_vec(), amounts[..1].to_vec(), why)
                .from(chain.minter),
        )
        .await,
        reverted(
            t.batchMintWithRefs(
                recipients[..2].to_vec(),
                amounts[..2].to_vec(),
                refs[..1].to_vec(),
                why,
            )
            .from(chain.minter),
        )
        .await,
    ];
    for error in mismatch {
        assert!(
            matches!(error, HAVENErrors::BatchLengthMismatch(_)),
            "{error:?}"
        );
    }
    // A zero amount is a caller bug and fails the whole batch.
    let error = reverted(
        t.batchMintWithRefs(
            recipients[..2].to_vec(),
            vec![hnv(1), U256::ZERO],
            refs[..2].to_vec(),
            why,
        )
        .from(chain.minter),
    )
    .await;
    assert!(matches!(error, HAVENErrors::ZeroAmount(_)), "{error:?}");
    assert!(!chain.ref_used(refs[0]).await);

    // Exactly 100 is accepted.
    mined(
        t.batchMintWithRefs(
            recipients[..100].to_vec(),
            amounts[..100].to_vec(),
            refs[..100].to_vec(),
            why,
        )
        .from(chain.minter),
    )
    .await;
    assert_eq!(t.totalSupply().call().await.unwrap(), hnv(100));
}

#[tokio::test]
async fn a_batch_mixing_reference_blocks_records_every_reference() {
    // The batch keeps one block's bitmap word in memory at a time: entries
    // that hop between blocks must still see every earlier flag.
    let chain = Chain::start().await;
    let t = &chain.token;
    let (a, b) = (hashed_ref("block-a"), hashed_ref("block-b"));
    let refs = vec![
        reference_in_block(&a, 0),
        reference_in_block(&b, 0),
        reference_in_block(&a, 1),
        reference_in_block(&a, 0), // repeat of entry 0 after a block change
        reference_in_block(&b, 1),
    ];
    let recipients: Vec<Address> = (0..5).map(|i| fresh_holder(&format!("mix{i}"))).collect();
    let receipt = mined(
        t.batchMintWithRefs(
            recipients.clone(),
            vec![hnv(1); 5],
            refs.clone(),
            reason("event"),
        )
        .from(chain.minter),
    )
    .await;
    let skipped = skipped_events(&receipt);
    assert_eq!(skipped.len(), 1);
    assert_eq!((skipped[0].r#ref, skipped[0].to), (refs[3], recipients[3]));
    assert_eq!(minted_events(&receipt).len(), 4);
    for r in &refs {
        assert!(chain.ref_used(*r).await);
    }
    assert!(!chain.ref_used(reference_in_block(&a, 2)).await);
    assert!(!chain.ref_used(reference_in_block(&b, 2)).await);
    // The flags were written to storage, not just kept for the batch.
    assert_ref_used(
        reverted(
            t.mintWithRef(recipients[0], hnv(1), refs[4], reason("event"))
                .from(chain.minter),
        )
        .await,
        refs[4],
    );
    assert_eq!(chain.balance(recipients[3]).await, U256::ZERO);
}
