//! `haven-custody-xpub` prints the xpub reward-calculator derives the same
//! wallets from, and never echoes the phrase.

#![allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message
use std::io::Write as _;
use std::process::{Command, Stdio};

use haven_chain::signer::{CustodyAddresses, CustodyWallets};
use haven_common::config::Redacted;

const PHRASE: &str = "test test test test test test test test test test test junk";

fn run(stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven-custody-xpub"))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("the phrase is written");
    child.wait_with_output().expect("the binary exits")
}

#[test]
fn prints_the_xpub_of_the_phrase_on_stdin() {
    let output = run(&format!("  {PHRASE}\n"));
    assert!(output.status.success(), "{output:?}");
    let xpub = String::from_utf8(output.stdout).expect("UTF-8");
    let addresses = CustodyAddresses::parse(xpub.trim()).expect("a valid CUSTODY_XPUB");
    let wallets = CustodyWallets::from_mnemonic(&Redacted::new(PHRASE.to_owned())).unwrap();
    for index in [0, 1, 42] {
        assert_eq!(
            addresses.wallet_address(index).unwrap(),
            wallets.wallet_address(index).unwrap()
        );
    }
}

#[test]
fn a_wrong_phrase_fails_without_echoing_it() {
    let output = run("hunter2 correct horse battery staple");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    assert!(
        stderr.contains("CUSTODY_MNEMONIC is not a valid"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("horse"),
        "{stderr}"
    );
}
