use alloy::primitives::U256;

use crate::helpers::{
    Chain, assert_unauthorized, fresh_holder, hashed_ref, hnv, mined, reason, reverted,
};

#[tokio::test]
async fn token_metadata_and_initial_roles() {
    let chain = Chain::start().await;
    let t = &chain.token;
    assert_eq!(t.name().call().await.unwrap(), "HAVEN");
    assert_eq!(t.symbol().call().await.unwrap(), "HNV");
    assert_eq!(t.decimals().call().await.unwrap(), 18);
    assert_eq!(t.cap().call().await.unwrap(), crate::helpers::cap());
    assert_eq!(t.MAX_BATCH_SIZE().call().await.unwrap(), U256::from(100));
    let admin_role = t.DEFAULT_ADMIN_ROLE().call().await.unwrap();
    assert!(t.hasRole(admin_role, chain.admin).call().await.unwrap());
    let minter_role = t.MINTER_ROLE().call().await.unwrap();
    assert!(t.hasRole(minter_role, chain.minter).call().await.unwrap());
    // The deployer is admin, not minter: roles are granted explicitly.
    assert!(!t.hasRole(minter_role, chain.admin).call().await.unwrap());
}

#[tokio::test]
async fn only_minters_mint_on_every_path() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let role = t.MINTER_ROLE().call().await.unwrap();
    let to = fresh_holder("a");
    let why = reason("booking");
    for caller in [chain.outsider, chain.admin, chain.burner] {
        assert_unauthorized(
            reverted(t.mint(to, hnv(1), why).from(caller)).await,
            caller,
            role,
        );
        assert_unauthorized(
            reverted(t.batchMint(vec![to], vec![hnv(1)], why).from(caller)).await,
            caller,
            role,
        );
        assert_unauthorized(
            reverted(t.mintWithRef(to, hnv(1), hashed_ref("a"), why).from(caller)).await,
            caller,
            role,
        );
        assert_unauthorized(
            reverted(
                t.batchMintWithRefs(vec![to], vec![hnv(1)], vec![hashed_ref("a")], why)
                    .from(caller),
            )
            .await,
            caller,
            role,
        );
    }
    assert_eq!(chain.balance(to).await, U256::ZERO);
    assert!(!chain.ref_used(hashed_ref("a")).await);
}

#[tokio::test]
async fn only_burners_burn() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let role = t.BURNER_ROLE().call().await.unwrap();
    chain.mint(chain.holder, hnv(10)).await;
    let why = reason("redemption");
    for caller in [chain.outsider, chain.minter, chain.admin] {
        assert_unauthorized(
            reverted(t.burnFrom(chain.holder, hnv(1), why).from(caller)).await,
            caller,
            role,
        );
        assert_unauthorized(
            reverted(
                t.burnFromWithRef(chain.holder, hnv(1), hashed_ref("b"), why)
                    .from(caller),
            )
            .await,
            caller,
            role,
        );
    }
    // Not even the holder itself: a holder burning its own tokens is not a path.
    assert_unauthorized(
        reverted(t.burnFrom(chain.holder, hnv(1), why).from(chain.holder)).await,
        chain.holder,
        role,
    );
    assert_eq!(chain.balance(chain.holder).await, hnv(10));
}

#[tokio::test]
async fn only_pausers_pause_and_unpause() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let role = t.PAUSER_ROLE().call().await.unwrap();
    for caller in [chain.outsider, chain.minter, chain.admin] {
        assert_unauthorized(reverted(t.pause().from(caller)).await, caller, role);
    }
    mined(t.pause().from(chain.pauser)).await;
    for caller in [chain.outsider, chain.minter, chain.admin] {
        assert_unauthorized(reverted(t.unpause().from(caller)).await, caller, role);
    }
    assert!(t.paused().call().await.unwrap());
}

#[tokio::test]
async fn only_governance_moves_the_monthly_target() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let role = t.GOVERNANCE_ROLE().call().await.unwrap();
    for caller in [chain.outsider, chain.minter, chain.admin] {
        assert_unauthorized(
            reverted(t.proposeMonthlyMintTarget(hnv(1_000)).from(caller)).await,
            caller,
            role,
        );
    }
    mined(t.proposeMonthlyMintTarget(hnv(1_000)).from(chain.governor)).await;
    for caller in [chain.outsider, chain.minter, chain.admin] {
        assert_unauthorized(
            reverted(t.executeMonthlyMintTarget().from(caller)).await,
            caller,
            role,
        );
        assert_unauthorized(
            reverted(t.cancelMonthlyMintTarget().from(caller)).await,
            caller,
            role,
        );
    }
}

#[tokio::test]
async fn admin_grants_and_revokes_roles_and_nobody_else_can() {
    let chain = Chain::start().await;
    let t = &chain.token;
    let minter_role = t.MINTER_ROLE().call().await.unwrap();
    let admin_role = t.DEFAULT_ADMIN_ROLE().call().await.unwrap();
    let to = fresh_holder("granted");

    // A minter cannot make another minter.
    assert_unauthorized(
        reverted(t.grantRole(minter_role, chain.outsider).from(chain.minter)).await,
        chain.minter,
        admin_role,
    );

    mined(t.grantRole(minter_role, chain.outsider).from(chain.admin)).await;
    mined(t.mint(to, hnv(1), reason("booking")).from(chain.outsider)).await;
    assert_eq!(chain.balance(to).await, hnv(1));

    mined(t.revokeRole(minter_role, chain.outsider).from(chain.admin)).await;
    assert_unauthorized(
        reverted(t.mint(to, hnv(1), reason("booking")).from(chain.outsider)).await,
        chain.outsider,
        minter_role,
    );
    assert_eq!(chain.balance(to).await, hnv(1));
}
