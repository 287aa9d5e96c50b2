//! The supply cap holds on every mint path, to the wei.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::DynProvider;
use haven_chain::contract::HAVEN::{self, HAVENErrors, HAVENInstance};

use crate::helpers::{Chain, cap, fresh_holder, hashed_ref, mined, outcome, reason};

/// The four mint entry points, each minting `amounts` (one or two entries)
/// to distinct holders.
#[derive(Clone, Copy, Debug)]
enum Path {
    Mint,
    MintWithRef,
    BatchMint,
    BatchMintWithRefs,
}

impl Path {
    fn splits(self) -> bool {
        matches!(self, Path::BatchMint | Path::BatchMintWithRefs)
    }
}

async fn attempt(
    chain: &Chain,
    token: &HAVENInstance<DynProvider>,
    path: Path,
    amount: U256,
    tag: &str,
) -> Result<(), HAVENErrors> {
    let why = reason("cap");
    let to = fresh_holder(tag);
    let reference = hashed_ref(tag);
    // Batches split the amount over two recipients so the cap is crossed by
    // the sum, not by one entry.
    let half = amount / U256::from(2);
    let (recipients, amounts): (Vec<Address>, Vec<U256>) = (
        vec![to, fresh_holder(&format!("{tag}/2"))],
        vec![half, amount - half],
    );
    let refs: Vec<B256> = vec![reference, hashed_ref(&format!("{tag}/2"))];
    let result = match path {
        Path::Mint => outcome(token.mint(to, amount, why).from(chain.minter)).await,
        Path::MintWithRef => {
            outcome(
                token
                    .mintWithRef(to, amount, reference, why)
                    .from(chain.minter),
            )
            .await
        }
        Path::BatchMint => {
            outcome(token.batchMint(recipients, amounts, why).from(chain.minter)).await
        }
        Path::BatchMintWithRefs => {
            outcome(
                token
                    .batchMintWithRefs(recipients, amounts, refs, why)
                    .from(chain.minter),
            )
            .await
        }
    };
    result.map(drop)
}

fn assert_exceeded(result: Result<(), HAVENErrors>, supply: U256, path: Path) {
    match result {
        Err(HAVENErrors::ERC20ExceededCap(e)) => {
            assert_eq!((e.increasedSupply, e.cap), (supply, cap()), "{path:?}");
        }
        other => panic!("{path:?}: expected ERC20ExceededCap, got {other:?}"),
    }
}

#[tokio::test]
async fn cap_is_reached_exactly_and_never_passed_on_every_mint_path() {
    let chain = Chain::start().await;
    for path in [
        Path::Mint,
        Path::MintWithRef,
        Path::BatchMint,
        Path::BatchMintWithRefs,
    ] {
        let token = chain.redeploy().await;
        // Leave exactly 10 wei of room (an odd supply so batch halves differ).
        let prefill = cap() - U256::from(10);
        mined(
            token
                .mint(fresh_holder("prefill"), prefill, reason("prefill"))
                .from(chain.minter),
        )
        .await;

        // One wei too many is refused, atomically.
        assert_exceeded(
            attempt(
                &chain,
                &token,
                path,
                U256::from(11),
                &format!("{path:?}/over"),
            )
            .await,
            cap() + U256::from(1),
            path,
        );
        assert_eq!(token.totalSupply().call().await.unwrap(), prefill);
        if matches!(path, Path::MintWithRef | Path::BatchMintWithRefs) {
            // A refused mint does not burn its reference: the resend can land.
            assert!(
                !token
                    .refUsed(hashed_ref(&format!("{path:?}/over")))
                    .call()
                    .await
                    .unwrap()
            );
        }

        // Exactly up to the cap is fine.
        attempt(
            &chain,
            &token,
            path,
            U256::from(10),
            &format!("{path:?}/exact"),
        )
        .await
        .unwrap_or_else(|e| panic!("{path:?}: minting to exactly the cap failed: {e:?}"));
        assert_eq!(token.totalSupply().call().await.unwrap(), cap(), "{path:?}");
        if path.splits() {
            assert_eq!(
                token
                    .balanceOf(fresh_holder(&format!("{path:?}/exact/2")))
                    .call()
                    .await
                    .unwrap(),
                U256::from(5)
            );
        }

        // And then not one more wei (a batch crosses on its first entry).
        let more = if path.splits() { 2 } else { 1 };
        assert_exceeded(
            attempt(
                &chain,
                &token,
                path,
                U256::from(more),
                &format!("{path:?}/after"),
            )
            .await,
            cap() + U256::from(1),
            path,
        );
    }
}

#[tokio::test]
async fn burned_tokens_make_room_under_the_cap() {
    // The cap bounds the circulating supply (OpenZeppelin ERC20Capped), so a
    // redemption burn frees room for new rewards.
    let chain = Chain::start().await;
    chain.mint(chain.holder, cap()).await;
    let token: &HAVEN::HAVENInstance<DynProvider> = &chain.token;
    mined(
        token
            .burnFrom(chain.holder, U256::from(7), reason("redemption"))
            .from(chain.burner),
    )
    .await;
    chain.mint(fresh_holder("after-burn"), U256::from(7)).await;
    assert_eq!(token.totalSupply().call().await.unwrap(), cap());
    assert_eq!(
        token.totalMinted().call().await.unwrap(),
        cap() + U256::from(7)
    );
}
