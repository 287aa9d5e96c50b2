//! `haven-custody-xpub`: prints the `CUSTODY_XPUB` reward-calculator needs,
//! the extended public key of `m/44'/60'/0'/0` of the custody mnemonic.
//!
//! Run it where the mnemonic lives (offline), never on a service host:
//!
//! ```text
//! haven-custody-xpub < custody-mnemonic.txt
//! ```
//! The phrase is read from standard input, never from an argument (which
//! other users see in the process list) nor echoed; the xpub goes to
//! standard output, errors to standard error without any word of the phrase.

use std::io::Read as _;
use std::process::ExitCode;

use haven_chain::signer::CustodyAddresses;
use haven_common::config::Redacted;

/// Longest phrase read: 24 words of at most 8 letters, with room for spaces.
const MAX_PHRASE_BYTES: u64 = 1024;

/// Print the extended public key (`CUSTODY_XPUB`) of a custody mnemonic read from stdin.
#[derive(clap::Parser, Debug)]
#[command(name = "haven-custody-xpub", version)]
struct Cli {}

fn main() -> ExitCode {
    let _: Cli = haven_common::telemetry::parse_config_or_exit();
    let mut phrase = String::new();
    if let Err(err) = std::io::stdin()
        .take(MAX_PHRASE_BYTES)
        .read_to_string(&mut phrase)
    {
        eprintln!("haven-custody-xpub: cannot read the mnemonic from stdin: {err}");
        return ExitCode::FAILURE;
    }
    let phrase = Redacted::new(phrase);
    match CustodyAddresses::from_mnemonic(&phrase).and_then(|addresses| addresses.to_xpub()) {
        Ok(xpub) => {
            println!("{xpub}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("haven-custody-xpub: {err} (give the phrase on stdin)");
            ExitCode::FAILURE
        }
    }
}
