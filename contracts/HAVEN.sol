// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Capped} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Capped.sol";
import {ERC20Pausable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Pausable.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title HAVEN (HNV), the loyalty token of the HAVEN hospitality ecosystem.
/// @notice ERC-20 with 18 decimals and a fixed supply cap. The backend mints
/// rewards and burns redeemed tokens from custodial wallets; every backend mint
/// and burn carries a 32-byte reference the contract accepts once, so a
/// transaction retried after a crash can never mint or burn twice.
///
/// @dev Reference guard layout. A used reference is one bit of a 256-bit
/// word: the word is keyed by the reference's upper 248 bits, the bit is its
/// lowest byte. Any bytes32 except zero is a valid reference and any resend of
/// a used one is a no-op; how the backend derives references only decides the
/// cost. Recording a reference in an empty word takes a fresh storage slot
/// (~22,100 gas), in a word already holding another reference ~5,000, and a
/// batch writes each word once however many of its entries share it. So 256
/// references sharing their upper 248 bits (a "reference block": a random or
/// hashed base, the lowest byte an index) share one slot. That is what keeps
/// a batch of new holders under 30,000 gas per recipient: the fresh balance
/// slot alone is 22,100, and a fresh slot per reference on top would add as
/// much again. The price is a rule for the backend: a transaction's reference
/// is assigned once, stored, and reused by every resend, whichever entry point
/// (single or batch) carries it.
contract HAVEN is ERC20Capped, ERC20Pausable, AccessControl {
    /// @notice May mint, alone or in batches, with or without a reference.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    /// @notice May burn from any holder without an allowance (custodial wallets).
    bytes32 public constant BURNER_ROLE = keccak256("BURNER_ROLE");
    /// @notice May pause and unpause every token movement.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice May propose, execute and cancel a new monthly mint target.
    bytes32 public constant GOVERNANCE_ROLE = keccak256("GOVERNANCE_ROLE");

    /// @notice Most recipients one batch mint accepts; keeps a batch well
    /// under a block's gas limit and a failed batch cheap to resend.
    uint256 public constant MAX_BATCH_SIZE = 100;

    /// @notice Time between proposing a monthly mint target and executing it,
    /// so holders see an emission change before it takes effect.
    uint256 public constant MONTHLY_TARGET_DELAY = 2 days;

    /// @dev 1,000,000,000 HNV in base units.
    uint256 private constant SUPPLY_CAP = 1_000_000_000 * 10 ** 18;

    /// @dev Used-reference bitmap: upper 248 bits of a reference => 256 flags.
    mapping(uint256 => uint256) private _usedRefs;

    /// @dev Every burn ever made; with the supply it gives every mint ever
    /// made, so a mint does not pay for a second counter.
    uint256 private _totalBurned;

    /// @notice The monthly emission the ecosystem aims at, in base units.
    /// @dev Published policy, not an on-chain limit: enforcing it would cost a
    /// per-period counter on every mint and strand rewards already earned
    /// off-chain. The timelock gives holders notice of a change.
    uint256 public monthlyMintTarget;
    /// @notice The proposed target, valid while `pendingMonthlyMintTargetEta` is non-zero.
    uint256 public pendingMonthlyMintTarget;
    /// @notice When the proposed target may be executed (unix seconds); zero
    /// when nothing is proposed.
    uint256 public pendingMonthlyMintTargetEta;

    /// @notice Tokens minted to `to`; `ref` is zero for an unguarded mint.
    event Minted(bytes32 indexed ref, address indexed to, bytes32 indexed reason, uint256 amount);
    /// @notice Tokens burned from `from`; `ref` is zero for an unguarded burn.
    event Burned(bytes32 indexed ref, address indexed from, bytes32 indexed reason, uint256 amount);
    /// @notice A batch entry whose reference was already used: nothing minted.
    event RefSkipped(bytes32 indexed ref, address indexed to, bytes32 indexed reason, uint256 amount);
    /// @notice A new monthly mint target was proposed; executable from `eta`.
    event MonthlyMintTargetProposed(uint256 target, uint256 eta);
    /// @notice The proposed target took effect.
    event MonthlyMintTargetChanged(uint256 previousTarget, uint256 newTarget);
    /// @notice The proposed target was withdrawn.
    event MonthlyMintTargetCancelled(uint256 target);

    /// @notice The admin given to the constructor is the zero address.
    error ZeroAdmin();
    /// @notice The zero reference is reserved for unguarded mints and burns.
    error ZeroRef();
    /// @notice A single mint or burn carried a reference already used.
    error RefAlreadyUsed(bytes32 ref);
    /// @notice Minting or burning zero tokens is always a caller bug.
    error ZeroAmount();
    /// @notice A batch has no entries or more than `MAX_BATCH_SIZE`.
    error InvalidBatchSize(uint256 size, uint256 max);
    /// @notice The arrays of a batch differ in length.
    error BatchLengthMismatch();
    /// @notice No monthly mint target is proposed.
    error NoPendingTarget();
    /// @notice The proposed target cannot be executed before `eta`.
    error TimelockNotElapsed(uint256 eta);

    /// @param admin Holds DEFAULT_ADMIN_ROLE: grants and revokes every role.
    constructor(address admin) ERC20("HAVEN", "HNV") ERC20Capped(SUPPLY_CAP) {
        if (admin == address(0)) revert ZeroAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ---------------------------------------------------------------- mint

    /// @notice Mint without a reference (operator tooling; the backend uses `mintWithRef`).
    function mint(address to, uint256 amount, bytes32 reason) external onlyRole(MINTER_ROLE) whenNotPaused {
        _mintFor(to, amount, bytes32(0), reason);
    }

    /// @notice Mint once per reference; reverts with `RefAlreadyUsed` on a resend.
    function mintWithRef(address to, uint256 amount, bytes32 ref, bytes32 reason)
        external
        onlyRole(MINTER_ROLE)
        whenNotPaused
    {
        if (!_useRef(ref)) revert RefAlreadyUsed(ref);
        _mintFor(to, amount, ref, reason);
    }

    /// @notice Mint to up to `MAX_BATCH_SIZE` recipients without references.
    function batchMint(address[] calldata recipients, uint256[] calldata amounts, bytes32 reason)
        external
        onlyRole(MINTER_ROLE)
        whenNotPaused
    {
        uint256 n = _checkBatch(recipients.length, amounts.length);
        for (uint256 i; i < n; ++i) {
            _mintFor(recipients[i], amounts[i], bytes32(0), reason);
        }
    }

    /// @notice Mint to up to `MAX_BATCH_SIZE` recipients, once per reference.
    /// An entry whose reference is already used (by an earlier transaction or
    /// earlier in this batch) is skipped with `RefSkipped`, so a batch resent
    /// after a crash mints exactly the entries that had not landed.
    /// @return minted How many entries were minted (the rest were skipped).
    function batchMintWithRefs(
        address[] calldata recipients,
        uint256[] calldata amounts,
        bytes32[] calldata refs,
        bytes32 reason
    ) external onlyRole(MINTER_ROLE) whenNotPaused returns (uint256 minted) {
        uint256 n = _checkBatch(recipients.length, amounts.length);
        if (refs.length != n) revert BatchLengthMismatch();
        // The bitmap word of the current reference block stays in memory
        // while consecutive references share it and is written back once,
        // when the block changes and at the end: one storage write per block
        // instead of one per entry. A reference repeated within the batch
        // still sees its own flag, so it is skipped like any used one.
        uint256 key = type(uint256).max; // no block loaded (no 248-bit key is this)
        uint256 word;
        for (uint256 i; i < n; ++i) {
            bytes32 ref = refs[i];
            if (ref == bytes32(0)) revert ZeroRef();
            uint256 refKey = uint256(ref) >> 8;
            if (refKey != key) {
                if (key != type(uint256).max) _usedRefs[key] = word;
                key = refKey;
                word = _usedRefs[refKey];
            }
            uint256 flag = 1 << (uint256(ref) & 0xff);
            if (word & flag == 0) {
                word |= flag;
                _mintFor(recipients[i], amounts[i], ref, reason);
                ++minted;
            } else {
                emit RefSkipped(ref, recipients[i], reason, amounts[i]);
            }
        }
        _usedRefs[key] = word;
    }

    // ---------------------------------------------------------------- burn

    /// @notice Burn from any holder without an allowance: holders' wallets are
    /// custodial and a redemption is authorised off-chain.
    function burnFrom(address from, uint256 amount, bytes32 reason) external onlyRole(BURNER_ROLE) whenNotPaused {
        _burnFor(from, amount, bytes32(0), reason);
    }

    /// @notice `burnFrom` once per reference; reverts with `RefAlreadyUsed` on a resend.
    function burnFromWithRef(address from, uint256 amount, bytes32 ref, bytes32 reason)
        external
        onlyRole(BURNER_ROLE)
        whenNotPaused
    {
        if (!_useRef(ref)) revert RefAlreadyUsed(ref);
        _burnFor(from, amount, ref, reason);
    }

    // ---------------------------------------------------------------- pause

    /// @notice Stop every mint, burn and transfer.
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @notice Resume token movements.
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ---------------------------------------------------------------- governance

    /// @notice Propose a new monthly mint target, replacing any pending proposal.
    function proposeMonthlyMintTarget(uint256 target) external onlyRole(GOVERNANCE_ROLE) {
        uint256 eta = block.timestamp + MONTHLY_TARGET_DELAY;
        pendingMonthlyMintTarget = target;
        pendingMonthlyMintTargetEta = eta;
        emit MonthlyMintTargetProposed(target, eta);
    }

    /// @notice Make the proposed target current once the delay has elapsed.
    function executeMonthlyMintTarget() external onlyRole(GOVERNANCE_ROLE) {
        uint256 eta = pendingMonthlyMintTargetEta;
        if (eta == 0) revert NoPendingTarget();
        if (block.timestamp < eta) revert TimelockNotElapsed(eta);
        uint256 previous = monthlyMintTarget;
        uint256 target = pendingMonthlyMintTarget;
        monthlyMintTarget = target;
        delete pendingMonthlyMintTarget;
        delete pendingMonthlyMintTargetEta;
        emit MonthlyMintTargetChanged(previous, target);
    }

    /// @notice Withdraw the proposed target.
    function cancelMonthlyMintTarget() external onlyRole(GOVERNANCE_ROLE) {
        if (pendingMonthlyMintTargetEta == 0) revert NoPendingTarget();
        uint256 target = pendingMonthlyMintTarget;
        delete pendingMonthlyMintTarget;
        delete pendingMonthlyMintTargetEta;
        emit MonthlyMintTargetCancelled(target);
    }

    // ---------------------------------------------------------------- views

    /// @notice Whether `ref` was used by a mint or burn.
    function refUsed(bytes32 ref) external view returns (bool) {
        return _usedRefs[uint256(ref) >> 8] & (1 << (uint256(ref) & 0xff)) != 0;
    }

    /// @notice Every token ever minted (burned tokens included).
    function totalMinted() public view returns (uint256) {
        return totalSupply() + _totalBurned;
    }

    /// @notice Every token ever burned.
    function totalBurned() public view returns (uint256) {
        return _totalBurned;
    }

    /// @notice Emission figures in one call, all in base units.
    function getEmissionStats()
        external
        view
        returns (uint256 minted, uint256 burned, uint256 circulating, uint256 supplyCap, uint256 monthlyTarget)
    {
        return (totalMinted(), _totalBurned, totalSupply(), cap(), monthlyMintTarget);
    }

    // ---------------------------------------------------------------- internals

    /// @dev Marks `ref` used; false when it already was.
    function _useRef(bytes32 ref) private returns (bool) {
        if (ref == bytes32(0)) revert ZeroRef();
        uint256 key = uint256(ref) >> 8;
        uint256 flag = 1 << (uint256(ref) & 0xff);
        uint256 word = _usedRefs[key];
        if (word & flag != 0) return false;
        _usedRefs[key] = word | flag;
        return true;
    }

    function _checkBatch(uint256 recipients, uint256 amounts) private pure returns (uint256) {
        if (recipients == 0 || recipients > MAX_BATCH_SIZE) revert InvalidBatchSize(recipients, MAX_BATCH_SIZE);
        if (amounts != recipients) revert BatchLengthMismatch();
        return recipients;
    }

    function _mintFor(address to, uint256 amount, bytes32 ref, bytes32 reason) private {
        if (amount == 0) revert ZeroAmount();
        _mint(to, amount);
        emit Minted(ref, to, reason, amount);
    }

    function _burnFor(address from, uint256 amount, bytes32 ref, bytes32 reason) private {
        if (amount == 0) revert ZeroAmount();
        _burn(from, amount);
        emit Burned(ref, from, reason, amount);
    }

    /// @dev Every supply change passes here: the pause and the cap apply to
    /// every mint path, and every burn is counted.
    function _update(address from, address to, uint256 value) internal override(ERC20Capped, ERC20Pausable) {
        super._update(from, to, value);
        if (to == address(0)) {
            _totalBurned += value;
        }
    }
}
