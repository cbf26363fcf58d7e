//! `foundry-stub`: the stand-in alone (what `tavern foundry-stub` runs), as
//! the small static binary of its container image.

use std::process::ExitCode;

use clap::Parser;

/// A stand-in for a Foundry VTT server.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    args: tavern_stub::StubArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    match tavern_stub::run(Cli::parse().args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
