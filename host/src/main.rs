//! `regstore`: load storage-driver components by name, run the conformance suite against them,
//! and work with the objects they store.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
