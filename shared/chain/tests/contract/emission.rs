use alloy::primitives::U256;

use crate::helpers::{Chain, cap, fresh_holder, hashed_ref, hnv, mined, reason};

#[tokio::test]
async fn emission_stats_follow_every_mint_and_burn() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let stats = t.getEmissionStats().call().await.unwrap();
    assert_eq!(
        (
            stats.minted,
            stats.burned,
            stats.circulating,
            stats.supplyCap,
            stats.monthlyTarget
        ),
        (U256::ZERO, U256::ZERO, U256::ZERO, cap(), U256::ZERO)
    );

    let a = chain.holder;
    let b = fresh_holder("b");
    chain.mint(a, hnv(1_000)).await;
    mined(
        t.mintWithRef(b, hnv(250), hashed_ref("e1"), reason("review"))
            .from(chain.minter),
    )
    .await;
    mined(
        t.batchMint(vec![a, b], vec![hnv(10), hnv(20)], reason("event"))
            .from(chain.minter),
    )
    .await;
    mined(
        t.batchMintWithRefs(
            vec![a, b],
            vec![hnv(1), hnv(2)],
            vec![hashed_ref("e2"), hashed_ref("e1")], // e1 skipped: not counted
            reason("event"),
        )
        .from(chain.minter),
    )
    .await;
    mined(
        t.burnFrom(a, hnv(300), reason("redemption"))
            .from(chain.burner),
    )
    .await;
    mined(
        t.burnFromWithRef(b, hnv(70), hashed_ref("e3"), reason("reversal"))
            .from(chain.burner),
    )
    .await;
    // Transfers move tokens, not emission.
    mined(t.transfer(b, hnv(11)).from(a)).await;

    let minted = hnv(1_000 + 250 + 10 + 20 + 1);
    let burned = hnv(300 + 70);
    let stats = t.getEmissionStats().call().await.unwrap();
    assert_eq!(
        (
            stats.minted,
            stats.burned,
            stats.circulating,
            stats.supplyCap
        ),
        (minted, burned, minted - burned, cap())
    );
    assert_eq!(t.totalMinted().call().await.unwrap(), minted);
    assert_eq!(t.totalBurned().call().await.unwrap(), burned);
    assert_eq!(t.totalSupply().call().await.unwrap(), minted - burned);
    assert_eq!(
        chain.balance(a).await + chain.balance(b).await,
        minted - burned
    );
}
