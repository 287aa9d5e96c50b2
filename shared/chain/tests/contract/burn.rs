use alloy::primitives::U256;
use haven_chain::contract::{HAVEN, HAVEN::HAVENErrors};

use crate::helpers::{Chain, hnv, mined, reason, reverted};

#[tokio::test]
async fn burner_burns_from_a_custodial_wallet_without_allowance() {
    let chain = Chain::start().await;
    let t = &chain.token;
    chain.mint(chain.holder, hnv(500)).await;
    assert_eq!(
        t.allowance(chain.holder, chain.burner)
            .call()
            .await
            .unwrap(),
        U256::ZERO
    );

    let receipt = mined(
        t.burnFrom(chain.holder, hnv(120), reason("redemption"))
            .from(chain.burner),
    )
    .await;
    let burned = receipt
        .decoded_log::<HAVEN::Burned>()
        .expect("Burned event")
        .data;
    assert_eq!(
        (burned.r#ref, burned.from, burned.reason, burned.amount),
        (
            alloy::primitives::B256::ZERO,
            chain.holder,
            reason("redemption"),
            hnv(120)
        )
    );
    let transfer = receipt
        .decoded_log::<HAVEN::Transfer>()
        .expect("Transfer event")
        .data;
    assert_eq!(
        (transfer.from, transfer.to, transfer.value),
        (chain.holder, alloy::primitives::Address::ZERO, hnv(120))
    );
    assert_eq!(chain.balance(chain.holder).await, hnv(380));
    assert_eq!(t.totalSupply().call().await.unwrap(), hnv(380));
}

#[tokio::test]
async fn burning_more_than_the_balance_or_nothing_is_refused() {
    let chain = Chain::start().await;
    let t = &chain.token;
    chain.mint(chain.holder, hnv(5)).await;
    match reverted(
        t.burnFrom(chain.holder, hnv(6), reason("redemption"))
            .from(chain.burner),
    )
    .await
    {
        HAVENErrors::ERC20InsufficientBalance(e) => {
            assert_eq!(
                (e.sender, e.balance, e.needed),
                (chain.holder, hnv(5), hnv(6))
            );
        }
        other => panic!("expected ERC20InsufficientBalance, got {other:?}"),
    }
    let error = reverted(
        t.burnFrom(chain.holder, U256::ZERO, reason("redemption"))
            .from(chain.burner),
    )
    .await;
    assert!(matches!(error, HAVENErrors::ZeroAmount(_)), "{error:?}");
    let error = reverted(
        t.mint(chain.holder, U256::ZERO, reason("x"))
            .from(chain.minter),
    )
    .await;
    assert!(matches!(error, HAVENErrors::ZeroAmount(_)), "{error:?}");
    assert_eq!(chain.balance(chain.holder).await, hnv(5));
}
