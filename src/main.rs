//! The rootstrap command line: parse arguments, call the library, map errors
//! to messages and exit codes.

mod cli;
mod term;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let _ = cli;
    eprintln!("rootstrap: under construction");
    std::process::exit(2);
}
