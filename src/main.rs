use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = ferry::cli::Cli::parse();
    match ferry::run(cli) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code().into()
        }
    }
}
