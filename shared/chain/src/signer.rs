//! Keys: the pool of transaction signers, the custodial user wallets derived
//! from the custody mnemonic, and their addresses derived from its extended
//! public key alone ([`CustodyAddresses`], all a running service needs).
//!
//! Transactions are signed through alloy's async [`TxSigner`]
//! ([`ChainSigner`]): local keys by default ([`SignerPool::from_config`]),
//! or a signer whose key never leaves its HSM (alloy-signer-aws or -gcp,
//! a remote signer), given to [`SignerPool::from_signers`].
//!
//! Nothing here ever prints or logs key material: the types implement
//! `Debug` by hand and show addresses only.

use std::fmt;
use std::sync::Arc;

use alloy::network::TxSigner;
use alloy::primitives::{Address, Signature};
use alloy::signers::local::{MnemonicBuilder, MnemonicKey, PrivateKeySigner};
use alloy::signers::utils::public_key_to_address;
use coins_bip32::enc::{MainnetEncoder, XKeyEncoder};
use coins_bip32::primitives::{Hint, XKeyInfo};
use coins_bip32::xkeys::{Parent, XPub};
use coins_bip39::{English, Mnemonic};
use haven_common::config::Redacted;

use crate::config::SignerConfig;
use crate::error::ChainError;

/// BIP-44 path of Ethereum account 0's external chain; wallet `i` is `{BASE}/{i}`.
pub const BIP44_ETH_BASE: &str = "m/44'/60'/0'/0";

/// Highest non-hardened BIP-32 child index.
pub const MAX_CHILD_INDEX: u32 = (1 << 31) - 1;

/// Depth of [`BIP44_ETH_BASE`] in the BIP-32 tree (purpose, coin, account, chain).
const BIP44_ETH_BASE_DEPTH: u8 = 4;

/// Length of a base58check-encoded extended key (78 bytes and a checksum).
const XKEY_BASE58_LEN: usize = 111;

/// Something that signs transactions for one address: a local key
/// ([`PrivateKeySigner`], the default) or a KMS or remote signer. Async, so
/// the signature may come from another machine; it need not be
/// deterministic (see [`crate::sender::TxAttempt::raw`]).
pub type ChainSigner = Arc<dyn TxSigner<Signature> + Send + Sync>;

/// The signers transactions are signed with. Each chain-minter replica
/// leases one of them at a time (see [`crate::nonce`]).
#[derive(Clone)]
pub struct SignerPool {
    signers: Vec<ChainSigner>,
}

impl fmt::Debug for SignerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerPool")
            .field("addresses", &self.addresses())
            .finish()
    }
}

impl SignerPool {
    /// The pool configured by `SIGNER_PRIVATE_KEYS` or `SIGNER_MNEMONIC`.
    pub fn from_config(config: &SignerConfig) -> Result<Self, ChainError> {
        match (&config.signer_private_keys, &config.signer_mnemonic) {
            (Some(keys), None) => Self::from_private_keys(keys),
            (None, Some(phrase)) => Self::from_mnemonic(phrase, config.signer_count),
            (Some(_), Some(_)) => Err(ChainError::Config(
                "set SIGNER_PRIVATE_KEYS or SIGNER_MNEMONIC, not both".into(),
            )),
            (None, None) => Err(ChainError::Config(
                "no signer configured: set SIGNER_PRIVATE_KEYS or SIGNER_MNEMONIC".into(),
            )),
        }
    }

    /// A pool from comma-separated hex private keys (with or without `0x`).
    pub fn from_private_keys(keys: &Redacted<String>) -> Result<Self, ChainError> {
        let mut signers = Vec::new();
        for (position, key) in keys.expose().split(',').map(str::trim).enumerate() {
            if key.is_empty() {
                continue;
            }
            // The parse error is not shown: it could echo part of the key.
            let signer: PrivateKeySigner = key.parse().map_err(|_| {
                ChainError::Config(format!(
                    "SIGNER_PRIVATE_KEYS entry {} is not a valid secp256k1 private key",
                    position + 1
                ))
            })?;
            signers.push(signer);
        }
        Self::new(signers)
    }

    /// A pool of `count` keys derived from a mnemonic at `m/44'/60'/0'/0/{0..count}`.
    pub fn from_mnemonic(phrase: &Redacted<String>, count: u32) -> Result<Self, ChainError> {
        let parent = HdWallet::from_mnemonic(phrase, "SIGNER_MNEMONIC")?;
        let signers = (0..count)
            .map(|i| parent.signer(i))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(signers)
    }

    /// A pool of the given local keys (duplicates removed, order kept).
    pub fn new(signers: Vec<PrivateKeySigner>) -> Result<Self, ChainError> {
        Self::from_signers(
            signers
                .into_iter()
                .map(|signer| Arc::new(signer) as ChainSigner)
                .collect(),
        )
    }

    /// A pool of any signers, e.g. KMS keys (duplicates removed, order kept).
    /// Each address still needs MINTER_ROLE and BURNER_ROLE on the contract
    /// and gas money, as a local key's does.
    pub fn from_signers(signers: Vec<ChainSigner>) -> Result<Self, ChainError> {
        let mut unique: Vec<ChainSigner> = Vec::with_capacity(signers.len());
        for signer in signers {
            if !unique.iter().any(|s| s.address() == signer.address()) {
                unique.push(signer);
            }
        }
        if unique.is_empty() {
            return Err(ChainError::Config("the signer pool is empty".into()));
        }
        Ok(Self { signers: unique })
    }

    /// Addresses of the pool, in configuration order.
    pub fn addresses(&self) -> Vec<Address> {
        self.signers.iter().map(|s| s.address()).collect()
    }

    pub fn signers(&self) -> &[ChainSigner] {
        &self.signers
    }

    /// The signer with this address.
    pub fn get(&self, address: Address) -> Option<&ChainSigner> {
        self.signers.iter().find(|s| s.address() == address)
    }
}

/// Custodial user wallets: wallet `i` is `m/44'/60'/0'/0/{i}` of the custody
/// mnemonic, `i` being the user's `users.derivation_index`. No user key is
/// ever stored: any of them can be derived again from the mnemonic, which
/// only a recovery needs; the services derive addresses from
/// the extended public key alone ([`CustodyAddresses`]).
#[derive(Clone)]
pub struct CustodyWallets {
    parent: HdWallet,
}

impl fmt::Debug for CustodyWallets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustodyWallets([redacted])")
    }
}

impl CustodyWallets {
    /// Wallets derived from `CUSTODY_MNEMONIC`.
    pub fn from_mnemonic(phrase: &Redacted<String>) -> Result<Self, ChainError> {
        Ok(Self {
            parent: HdWallet::from_mnemonic(phrase, "CUSTODY_MNEMONIC")?,
        })
    }

    /// The wallet address of derivation index `index`.
    pub fn address(&self, index: u32) -> Result<Address, ChainError> {
        Ok(self.parent.signer(index)?.address())
    }

    /// The wallet address as stored in `users.wallet_address` (EIP-55
    /// checksummed): the `derive_wallet` argument of
    /// `haven_entity::users::find_or_create`.
    pub fn wallet_address(&self, index: u32) -> Result<String, ChainError> {
        Ok(self.address(index)?.to_checksum(None))
    }

    /// The key of wallet `index`, to sign for a user (rarely needed: the
    /// contract's BURNER burns from custodial wallets without allowance).
    pub fn signer(&self, index: u32) -> Result<PrivateKeySigner, ChainError> {
        self.parent.signer(index)
    }
}

/// The custodial wallets' addresses, from the extended public key of
/// [`BIP44_ETH_BASE`] (`CUSTODY_XPUB`, `xpub...`): BIP-32 public derivation
/// gives wallet `i`'s address without any private key, so a service that only
/// needs addresses never holds one. The xpub still links every user wallet
/// to the custodian: it is kept like a secret (never printed, shown as
/// `[redacted]`).
#[derive(Clone)]
pub struct CustodyAddresses {
    account: XPub,
}

impl fmt::Debug for CustodyAddresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustodyAddresses([redacted])")
    }
}

impl CustodyAddresses {
    /// Reads an `xpub...` string: the extended public key of
    /// `m/44'/60'/0'/0`. Refuses, without echoing it, anything else: an
    /// extended private key, a key of another depth (an account-level xpub
    /// of `m/44'/60'/0'` would derive other addresses), a bad checksum.
    pub fn parse(text: &str) -> Result<Self, ChainError> {
        let text = text.trim();
        let refuse = |why: &str| Err(ChainError::Config(format!("CUSTODY_XPUB {why}")));
        if text.starts_with("xprv") || text.starts_with("tprv") {
            return refuse(
                "is an extended private key: give its public key (xpub...), never the private one",
            );
        }
        // The length check also keeps the decoder away from short inputs
        // (it indexes `len - 4` unchecked).
        if !text.starts_with("xpub") || text.len() != XKEY_BASE58_LEN || !text.is_ascii() {
            return refuse("is not an extended public key (111 characters starting with xpub)");
        }
        let Ok(account) = MainnetEncoder::xpub_from_base58(text) else {
            return refuse("is not a valid extended public key (bad encoding or checksum)");
        };
        let info: &XKeyInfo = account.as_ref();
        if info.depth != BIP44_ETH_BASE_DEPTH {
            return refuse(&format!(
                "is a key of depth {}: give the xpub of {BIP44_ETH_BASE} (depth {BIP44_ETH_BASE_DEPTH})",
                info.depth
            ));
        }
        Ok(Self { account })
    }

    /// The extended public key of [`BIP44_ETH_BASE`] of a custody mnemonic.
    pub fn from_mnemonic(phrase: &Redacted<String>) -> Result<Self, ChainError> {
        let normalized = normalize_phrase(phrase);
        // Errors are not shown: they can echo a mistyped word of the phrase.
        let account = Mnemonic::<English>::new_from_phrase(&normalized)
            .and_then(|m| m.derive_key(BIP44_ETH_BASE, None))
            .map_err(|_| {
                ChainError::Config("CUSTODY_MNEMONIC is not a valid BIP-39 mnemonic".into())
            })?
            .verify_key();
        Ok(Self { account })
    }

    /// The `xpub...` string to set as `CUSTODY_XPUB`.
    pub fn to_xpub(&self) -> Result<String, ChainError> {
        xpub_base58(&self.account)
    }

    /// The wallet address of derivation index `index`.
    pub fn address(&self, index: u32) -> Result<Address, ChainError> {
        non_hardened(index)?;
        let child = self
            .account
            .derive_child(index)
            .map_err(|err| ChainError::Signer(format!("cannot derive child {index}: {err}")))?;
        Ok(public_key_to_address(child.as_ref()))
    }

    /// The wallet address as stored in `users.wallet_address` (EIP-55
    /// checksummed): the `derive_wallet` argument of
    /// `haven_entity::users::find_or_create`.
    pub fn wallet_address(&self, index: u32) -> Result<String, ChainError> {
        Ok(self.address(index)?.to_checksum(None))
    }
}

/// `key` as an `xpub...` string. The version bytes follow the key's hint, and
/// coins-bip39 hints SegWit (`zpub...`) for a key derived from a phrase:
/// Ethereum tools exchange the plain BIP-32 form.
fn xpub_base58(key: &XPub) -> Result<String, ChainError> {
    let mut info: XKeyInfo = *AsRef::<XKeyInfo>::as_ref(key);
    info.hint = Hint::Legacy;
    let legacy = XPub::new(
        *AsRef::<coins_bip32::ecdsa::VerifyingKey>::as_ref(key),
        info,
    );
    MainnetEncoder::xpub_to_base58(&legacy)
        .map_err(|err| ChainError::Signer(format!("cannot encode the extended public key: {err}")))
}

/// Refuses a hardened child index: the wallets are public-derivable children.
fn non_hardened(index: u32) -> Result<(), ChainError> {
    if index > MAX_CHILD_INDEX {
        return Err(ChainError::Signer(format!(
            "derivation index {index} is above the non-hardened maximum {MAX_CHILD_INDEX}"
        )));
    }
    Ok(())
}

/// A phrase with its words separated by single spaces.
fn normalize_phrase(phrase: &Redacted<String>) -> String {
    phrase
        .expose()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The extended key at [`BIP44_ETH_BASE`], derived once (deriving from the
/// phrase runs 2048 PBKDF2 rounds; a child derivation is one HMAC).
#[derive(Clone)]
struct HdWallet {
    key: MnemonicKey,
}

impl HdWallet {
    fn from_mnemonic(phrase: &Redacted<String>, setting: &str) -> Result<Self, ChainError> {
        // Errors are not shown: they can echo a mistyped word of the phrase.
        let key = MnemonicBuilder::english()
            .phrase(normalize_phrase(phrase))
            .derivation_path(format!("{BIP44_ETH_BASE}/0"))
            .and_then(|b| b.build_parent_key())
            .map_err(|_| ChainError::Config(format!("{setting} is not a valid BIP-39 mnemonic")))?;
        Ok(Self { key })
    }

    fn signer(&self, index: u32) -> Result<PrivateKeySigner, ChainError> {
        non_hardened(index)?;
        self.key
            .child(index)
            .map(|k| k.signer())
            .map_err(|err| ChainError::Signer(format!("cannot derive child {index}: {err}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message
mod tests {
    use super::*;
    use alloy::primitives::address;

    /// The well-known development mnemonic (anvil/hardhat accounts).
    const DEV: &str = "test test test test test test test test test test test junk";

    fn redacted(s: &str) -> Redacted<String> {
        Redacted::new(s.to_owned())
    }

    #[test]
    fn derivation_matches_the_standard_bip44_accounts() {
        let wallets = CustodyWallets::from_mnemonic(&redacted(DEV)).unwrap();
        assert_eq!(
            wallets.address(0).unwrap(),
            address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
        assert_eq!(
            wallets.address(1).unwrap(),
            address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
        );
        assert_eq!(
            wallets.wallet_address(2).unwrap(),
            "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
        );
        // Recoverable: the signer of an index is the wallet of that index.
        assert_eq!(
            wallets.signer(7).unwrap().address(),
            wallets.address(7).unwrap()
        );
        assert!(wallets.address(MAX_CHILD_INDEX + 1).is_err());
    }

    /// The xpub of `m/44'/60'/0'/0` of [`DEV`].
    fn dev_xpub() -> String {
        CustodyAddresses::from_mnemonic(&redacted(DEV))
            .unwrap()
            .to_xpub()
            .unwrap()
    }

    #[test]
    fn the_xpub_derives_the_same_addresses_as_the_mnemonic() {
        let wallets = CustodyWallets::from_mnemonic(&redacted(DEV)).unwrap();
        let xpub = dev_xpub();
        assert!(xpub.starts_with("xpub") && xpub.len() == 111, "{xpub}");
        let addresses = CustodyAddresses::parse(&format!(" {xpub}\n")).unwrap();
        assert_eq!(
            addresses.address(0).unwrap(),
            address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
        for index in [1, 2, 7, 1000, MAX_CHILD_INDEX] {
            assert_eq!(
                addresses.wallet_address(index).unwrap(),
                wallets.wallet_address(index).unwrap(),
                "index {index}"
            );
        }
        assert!(addresses.address(MAX_CHILD_INDEX + 1).is_err());
    }

    #[test]
    fn only_the_xpub_of_the_external_chain_is_accepted() {
        let xpub = dev_xpub();
        // The same key with a private version, another depth, a flipped
        // character (checksum), a cut string, garbage: refused by name, the
        // value never echoed.
        let mut flipped = xpub.clone().into_bytes();
        flipped[60] = if flipped[60] == b'a' { b'b' } else { b'a' };
        let flipped = String::from_utf8(flipped).unwrap();
        let cut = &xpub[..40];
        let xprv = format!("xprv{}", &xpub[4..]);
        let wide = "é".repeat(56);
        for bad in [
            flipped.as_str(),
            cut,
            &xprv,
            "xpub",
            "",
            "hunter2 MARKER",
            &wide,
        ] {
            let err = CustodyAddresses::parse(bad).unwrap_err().to_string();
            assert!(err.contains("CUSTODY_XPUB"), "{err}");
            if bad.len() > 8 {
                assert!(!err.contains(&bad[4..]), "{err}");
            }
        }
        let depth3 = Mnemonic::<English>::new_from_phrase(DEV)
            .unwrap()
            .derive_key("m/44'/60'/0'", None)
            .unwrap()
            .verify_key();
        let depth3 = xpub_base58(&depth3).unwrap();
        let err = CustodyAddresses::parse(&depth3).unwrap_err().to_string();
        assert!(err.contains("depth 3"), "{err}");
        assert_eq!(
            format!("{:?}", CustodyAddresses::parse(&xpub).unwrap()),
            "CustodyAddresses([redacted])"
        );
    }

    #[test]
    fn pool_from_keys_or_mnemonic() {
        let keys = redacted(
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80, 59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d,",
        );
        let pool = SignerPool::from_private_keys(&keys).unwrap();
        assert_eq!(
            pool.addresses(),
            vec![
                address!("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"),
                address!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
            ]
        );
        let from_phrase = SignerPool::from_mnemonic(&redacted(DEV), 2).unwrap();
        assert_eq!(from_phrase.addresses(), pool.addresses());
    }

    #[test]
    fn bad_keys_are_named_but_never_echoed() {
        let err = SignerPool::from_private_keys(&redacted("0xdeadbeefcafe")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("SIGNER_PRIVATE_KEYS entry 1"), "{text}");
        assert!(!text.contains("deadbeef"), "{text}");
        let err = CustodyWallets::from_mnemonic(&redacted("hunter2 is not a phrase")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(SignerPool::from_private_keys(&redacted(" , ")).is_err());
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let pool = SignerPool::from_mnemonic(&redacted(DEV), 1).unwrap();
        let text = format!("{pool:?}");
        assert!(text.to_lowercase().contains("0xf39fd6"), "{text}");
        assert!(!text.contains("ac0974"), "{text}");
        let custody = CustodyWallets::from_mnemonic(&redacted(DEV)).unwrap();
        assert_eq!(format!("{custody:?}"), "CustodyWallets([redacted])");
    }
}
