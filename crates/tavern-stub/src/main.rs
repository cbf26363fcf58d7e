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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tavern_stub::run(cli.args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
