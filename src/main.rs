//! `unilip`: run, validate, inspect and benchmark UniLIP node graphs from the command line.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // A bug must still not greet the user with a Rust backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("unilip: internal error: {info}");
        eprintln!("this is a bug; please report it with the command you ran");
    }));
    unilip_nodes::link();
    match cli::main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.code())
        }
    }
}
