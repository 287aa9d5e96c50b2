//! Sending: stuck transactions replaced with higher fees, reverts decoded,
//! signers that are not local keys.

use std::sync::Arc;
use std::time::Duration;

use alloy::network::TxSigner;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use haven_chain::contract::{HAVEN, encode_reason};
use haven_chain::error::{ChainError, RevertReason};
use haven_chain::nonce::SignerLeases;
use haven_chain::rpc::Rpc;
use haven_chain::sender::{NonceSource, TxRequest, TxSender};
use haven_chain::signer::SignerPool;
use haven_chain::store::MemoryLeaseStore;
use haven_chain::testing::{ANVIL_CHAIN_ID, AnvilInstance, dev_key, test_tx_config};

use crate::helpers::{CountingSigner, deploy_haven, direct_sender};

/// Confirms `sent` while a block is mined every 150 ms (the node does not
/// mine by itself); panics after a minute.
async fn confirm_while_mining(
    sender: haven_chain::sender::TxSender,
    mut sent: haven_chain::sender::SentTx,
) -> haven_chain::sender::ConfirmedTx {
    let provider = sender.rpc().provider().clone();
    let confirm = tokio::spawn(async move { sender.confirm(&mut sent).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !confirm.is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "never confirmed");
        provider.anvil_mine(Some(1), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    confirm.await.unwrap().expect("confirmed")
}

/// Found by the fault matrix (`stuck-transactions`): a base fee spike made
/// anvil drop the minter's transactions, whose fees had reached the ceiling;
/// the sender waited for them for ever and every later mint queued behind
/// their nonces.
#[tokio::test]
async fn a_transaction_the_node_dropped_at_the_fee_ceiling_is_sent_again_and_mined() {
    let anvil = AnvilInstance::spawn_with(&["--no-mining"]);
    let mut tx = test_tx_config();
    // Its tip is the highest allowed from the start: a stuck transaction
    // cannot be replaced with higher fees, only waited for.
    tx.max_priority_fee_per_gas = tx.min_priority_fee_per_gas;
    let sender = direct_sender(&anvil, dev_key(1), &tx);
    let provider = sender.rpc().provider().clone();
    let to = Address::repeat_byte(0x43);

    let sent = sender
        .send(TxRequest::transfer(to, U256::from(777u64)))
        .await
        .expect("sent");
    let first = sent.attempts[0].hash;
    // The node forgets it, as anvil does when the base fee outgrows it.
    provider.anvil_drop_transaction(first).await.unwrap();

    let confirmed = confirm_while_mining(sender, sent).await;
    assert_eq!(confirmed.tx_hash, first, "the same transaction, sent again");
    assert_eq!(provider.get_balance(to).await.unwrap(), U256::from(777u64));
    assert_eq!(
        provider
            .get_transaction_count(dev_key(1).address())
            .await
            .unwrap(),
        1
    );
}

/// The resend at the fee ceiling sends the bytes signed the first time,
/// never a new signature: a KMS or remote signer need not sign
/// deterministically, and a second signature could be a second transaction
/// with the same nonce and another hash.
#[tokio::test]
async fn a_dropped_transaction_is_sent_again_without_signing_it_again() {
    let anvil = AnvilInstance::spawn_with(&["--no-mining"]);
    let mut tx = test_tx_config();
    tx.max_priority_fee_per_gas = tx.min_priority_fee_per_gas;
    let signer = CountingSigner::new(dev_key(2));
    let sender = direct_sender(&anvil, signer.clone(), &tx);
    let provider = sender.rpc().provider().clone();
    let to = Address::repeat_byte(0x45);

    let sent = sender
        .send(TxRequest::transfer(to, U256::from(555u64)))
        .await
        .expect("sent");
    assert_eq!(signer.signed(), 1);
    let first = sent.attempts[0].hash;
    provider.anvil_drop_transaction(first).await.unwrap();

    let confirmed = confirm_while_mining(sender, sent).await;
    assert_eq!(confirmed.tx_hash, first, "the same transaction, sent again");
    assert_eq!(signer.signed(), 1, "sent again as signed, not signed again");
    assert_eq!(provider.get_balance(to).await.unwrap(), U256::from(555u64));
}

/// A signer that is not a local key (in production a KMS key whose private
/// key never leaves its HSM) sits in the pool, is leased like a local key
/// and mints: TxSender signs through alloy's async `TxSigner` only.
#[tokio::test]
async fn a_signer_that_is_not_a_local_key_is_leased_and_mints() {
    let anvil = AnvilInstance::spawn();
    let signer = CountingSigner::new(dev_key(3));
    let contract = deploy_haven(&anvil, &[signer.address()]).await;
    let rpc = Rpc::new(&anvil.rpc_config()).unwrap();
    let pool = SignerPool::from_signers(vec![Arc::new(signer.clone())]).unwrap();
    assert_eq!(pool.addresses(), [dev_key(3).address()]);
    let leases = SignerLeases::new(
        Arc::new(MemoryLeaseStore::new()),
        rpc.clone(),
        pool,
        ANVIL_CHAIN_ID,
        Duration::from_secs(30),
        "remote-signer-test",
    )
    .unwrap();
    let manager = leases.acquire().await.expect("leased");
    let sender = TxSender::new(
        rpc,
        NonceSource::Leased(manager),
        ANVIL_CHAIN_ID,
        &test_tx_config(),
    )
    .unwrap();
    assert_eq!(sender.address(), dev_key(3).address());

    let to = Address::repeat_byte(0x51);
    let amount = U256::from(25u64) * U256::from(10u64).pow(U256::from(18u64));
    for (minted, reference) in [B256::repeat_byte(1), B256::repeat_byte(2)]
        .into_iter()
        .enumerate()
    {
        let confirmed = sender
            .send_and_confirm(TxRequest::call(
                contract,
                &HAVEN::mintWithRefCall {
                    to,
                    amount,
                    r#ref: reference,
                    reason: encode_reason("booking").unwrap(),
                },
            ))
            .await
            .expect("minted");
        assert_eq!(confirmed.receipt.from, dev_key(3).address());
        assert_eq!(signer.signed(), minted + 1, "one signature per mint");
    }
    let balance = sender
        .rpc()
        .view(contract, &HAVEN::balanceOfCall { account: to })
        .await
        .unwrap();
    assert_eq!(balance, amount * U256::from(2u64));
}

/// Found by the fault matrix (`stuck-transactions`), after the resend:
/// a transaction the node dropped after its job had given up left its nonce
/// unused, and every later transaction of the signer waited behind it. The
/// gap is filled with an empty transfer.
#[tokio::test]
async fn a_nonce_gap_below_a_stuck_transaction_is_filled_and_it_is_mined() {
    let anvil = AnvilInstance::spawn_with(&["--no-mining"]);
    let mut tx = test_tx_config();
    tx.max_priority_fee_per_gas = tx.min_priority_fee_per_gas;
    let sender = direct_sender(&anvil, dev_key(1), &tx);
    let provider = sender.rpc().provider().clone();
    let to = Address::repeat_byte(0x44);

    // Nonces 0 and 1: sent, then dropped by the node, and their jobs gone.
    let mut abandoned = Vec::new();
    for value in [1u64, 3] {
        let sent = sender
            .send(TxRequest::transfer(to, U256::from(value)))
            .await
            .expect("sent");
        abandoned.push(sent.attempts[0].hash);
    }
    let waiting = sender
        .send(TxRequest::transfer(to, U256::from(2u64)))
        .await
        .expect("sent");
    assert_eq!(waiting.nonce, 2);
    // Newest first: dropping a transaction may take those after it along.
    for hash in abandoned.into_iter().rev() {
        provider.anvil_drop_transaction(hash).await.unwrap();
    }

    confirm_while_mining(sender, waiting).await;
    // Only the last transfer moved value; nonces 0 and 1 went to fillers.
    assert_eq!(provider.get_balance(to).await.unwrap(), U256::from(2u64));
    assert_eq!(
        provider
            .get_transaction_count(dev_key(1).address())
            .await
            .unwrap(),
        3
    );
}

#[tokio::test]
async fn a_stuck_transaction_is_replaced_with_higher_fees_and_mined() {
    // No automine: blocks only come when the test mines them, each with a
    // base fee the test chooses.
    let anvil = AnvilInstance::spawn_with(&["--no-mining"]);
    let tx = test_tx_config();
    let sender = direct_sender(&anvil, dev_key(1), &tx);
    let provider = sender.rpc().provider().clone();
    let to = Address::repeat_byte(0x42);

    let mut sent = sender
        .send(TxRequest::transfer(to, U256::from(12_345u64)))
        .await
        .expect("sent");
    let first = sent.attempts[0].clone();

    // Mine blocks whose base fee sits just above what the first attempt
    // offers (so it cannot be included) but below a 12.5% raise.
    let stuck_base_fee = first.fees.max_fee_per_gas * 17 / 16;
    let confirm = tokio::spawn(async move {
        let result = sender.confirm(&mut sent).await;
        (result, sent)
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !confirm.is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "never confirmed");
        provider
            .anvil_set_next_block_base_fee_per_gas(stuck_base_fee)
            .await
            .unwrap();
        provider.anvil_mine(Some(1), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (result, sent) = confirm.await.unwrap();
    let confirmed = result.expect("confirmed");

    assert!(confirmed.replacements >= 1, "{confirmed:?}");
    assert_ne!(confirmed.tx_hash, first.hash);
    assert_eq!(sent.attempts.len(), confirmed.replacements + 1);
    for pair in sent.attempts.windows(2) {
        let (old, new) = (pair[0].fees, pair[1].fees);
        assert!(
            8 * new.max_fee_per_gas >= 9 * old.max_fee_per_gas,
            "{sent:?}"
        );
        assert!(
            8 * new.max_priority_fee_per_gas >= 9 * old.max_priority_fee_per_gas,
            "{sent:?}"
        );
        assert!(new.max_fee_per_gas <= tx.max_fee_per_gas);
        assert!(new.max_priority_fee_per_gas <= tx.max_priority_fee_per_gas);
        // Never replaced before it had waited the configured blocks.
        assert!(pair[1].sent_at_block >= pair[0].sent_at_block + tx.stuck_after_blocks);
    }
    // The first attempt was never mined; the transfer happened exactly once.
    assert!(
        provider
            .get_transaction_receipt(first.hash)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        provider.get_balance(to).await.unwrap(),
        U256::from(12_345u64)
    );
    assert_eq!(
        provider
            .get_transaction_count(dev_key(1).address())
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_revert_is_reported_with_its_decoded_reason() {
    let anvil = AnvilInstance::spawn();
    let contract = deploy_haven(&anvil, &[]).await;
    let outsider = dev_key(5);
    let sender = direct_sender(&anvil, outsider.clone(), &test_tx_config());
    let minter_role = sender
        .rpc()
        .view(contract, &HAVEN::MINTER_ROLECall {})
        .await
        .unwrap();
    let mint = TxRequest::call(
        contract,
        &HAVEN::mintWithRefCall {
            to: Address::repeat_byte(1),
            amount: U256::from(10u64).pow(U256::from(18u64)),
            r#ref: B256::repeat_byte(9),
            reason: encode_reason("booking").unwrap(),
        },
    );

    let expect_unauthorized = |err: &ChainError| match err.revert_reason() {
        Some(RevertReason::Contract(HAVEN::HAVENErrors::AccessControlUnauthorizedAccount(e))) => {
            assert_eq!(e.account, outsider.address());
            assert_eq!(e.neededRole, minter_role);
        }
        other => panic!("expected AccessControlUnauthorizedAccount, got {other:?} ({err})"),
    };

    // Refused by the gas estimate: nothing sent, no nonce used.
    let err = sender.send(mint.clone()).await.unwrap_err();
    expect_unauthorized(&err);
    assert!(matches!(err, ChainError::Reverted { tx_hash: None, .. }));
    assert!(!err.is_retryable());
    assert_eq!(
        sender
            .rpc()
            .pending_nonce(outsider.address())
            .await
            .unwrap(),
        0
    );

    // Forced on chain with a fixed gas limit: mined, reverted, decoded.
    let err = sender
        .send_and_confirm(mint.with_gas_limit(200_000))
        .await
        .unwrap_err();
    expect_unauthorized(&err);
    let ChainError::Reverted {
        tx_hash: Some(hash),
        ..
    } = err
    else {
        panic!("expected a mined revert, got {err}");
    };
    let receipt = sender.rpc().receipt(hash).await.unwrap().expect("mined");
    assert!(!receipt.status());
    assert!(err_text_names_error(&ChainError::Reverted {
        reason: Box::new(RevertReason::decode(
            &HAVEN::AccessControlUnauthorizedAccount {
                account: outsider.address(),
                neededRole: minter_role
            }
            .abi_encode_sol()
        )),
        tx_hash: Some(hash),
    }));
}

fn err_text_names_error(err: &ChainError) -> bool {
    err.to_string().contains("AccessControlUnauthorizedAccount")
}

/// `SolError::abi_encode` under a name that does not clash with the call builders.
trait AbiEncodeSol {
    fn abi_encode_sol(&self) -> Vec<u8>;
}

impl<T: alloy::sol_types::SolError> AbiEncodeSol for T {
    fn abi_encode_sol(&self) -> Vec<u8> {
        alloy::sol_types::SolError::abi_encode(self)
    }
}
