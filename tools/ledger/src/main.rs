//! `bourse-ledger`: the `bourse ledger` subcommands as a binary of their own.
#![deny(unsafe_code)]

use clap::Parser;

#[derive(Parser)]
#[command(name = "bourse-ledger", version, about = "bourse clearing and settlement: the books of record")]
struct Cli {
    #[command(subcommand)]
    cmd: bourse_ledger::cli::LedgerCmd,
}

fn main() {
    if let Err(e) = bourse_ledger::cli::run(Cli::parse().cmd) {
        eprintln!("bourse-ledger: error: {e:#}");
        std::process::exit(1);
    }
}
