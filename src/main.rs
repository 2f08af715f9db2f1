//! The rootstrap command line: parse arguments, call the library, map errors
//! to messages and exit codes.

fn main() {
    eprintln!("rootstrap: under construction");
    std::process::exit(2);
}
