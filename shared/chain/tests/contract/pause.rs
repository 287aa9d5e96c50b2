use alloy::primitives::U256;
use haven_chain::contract::HAVEN::HAVENErrors;

use crate::helpers::{Chain, fresh_holder, hashed_ref, hnv, mined, reason, reverted};

fn assert_paused(error: HAVENErrors, what: &str) {
    assert!(
        matches!(error, HAVENErrors::EnforcedPause(_)),
        "{what}: expected EnforcedPause, got {error:?}"
    );
}

#[tokio::test]
async fn pause_stops_mints_burns_and_transfers_until_unpaused() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let to = fresh_holder("paused");
    let why = reason("booking");
    chain.mint(chain.holder, hnv(100)).await;
    // A reference already used, so the batch below would only skip: the
    // pause must still refuse it rather than report a quiet success.
    let used = hashed_ref("used-before-pause");
    mined(t.mintWithRef(to, hnv(1), used, why).from(chain.minter)).await;

    mined(t.pause().from(chain.pauser)).await;
    assert!(t.paused().call().await.unwrap());

    let m = chain.minter;
    let b = chain.burner;
    assert_paused(reverted(t.mint(to, hnv(1), why).from(m)).await, "mint");
    assert_paused(
        reverted(t.mintWithRef(to, hnv(1), hashed_ref("p1"), why).from(m)).await,
        "mintWithRef",
    );
    assert_paused(
        reverted(t.batchMint(vec![to], vec![hnv(1)], why).from(m)).await,
        "batchMint",
    );
    assert_paused(
        reverted(
            t.batchMintWithRefs(vec![to], vec![hnv(1)], vec![hashed_ref("p2")], why)
                .from(m),
        )
        .await,
        "batchMintWithRefs",
    );
    assert_paused(
        reverted(
            t.batchMintWithRefs(vec![to], vec![hnv(1)], vec![used], why)
                .from(m),
        )
        .await,
        "batchMintWithRefs of used refs only",
    );
    assert_paused(
        reverted(t.burnFrom(chain.holder, hnv(1), why).from(b)).await,
        "burnFrom",
    );
    assert_paused(
        reverted(
            t.burnFromWithRef(chain.holder, hnv(1), hashed_ref("p3"), why)
                .from(b),
        )
        .await,
        "burnFromWithRef",
    );
    assert_paused(
        reverted(t.transfer(to, hnv(1)).from(chain.holder)).await,
        "transfer",
    );
    assert_eq!(chain.balance(chain.holder).await, hnv(100));
    assert_eq!(chain.balance(to).await, hnv(1));
    assert!(!chain.ref_used(hashed_ref("p1")).await);

    mined(t.unpause().from(chain.pauser)).await;
    mined(t.mintWithRef(to, hnv(1), hashed_ref("p1"), why).from(m)).await;
    mined(t.burnFrom(chain.holder, hnv(1), why).from(b)).await;
    mined(t.transfer(to, hnv(1)).from(chain.holder)).await;
    assert_eq!(chain.balance(to).await, hnv(3));
    assert_eq!(chain.balance(chain.holder).await, hnv(98));
    assert_eq!(t.totalBurned().call().await.unwrap(), hnv(1));
    assert_eq!(
        t.totalSupply().call().await.unwrap(),
        U256::from(101) * hnv(1)
    );
}
