//! The `decom` binary: parse arguments, run, map the outcome to an exit code.
//! Everything else lives in the library (`decom::cli::run`).

fn main() -> std::process::ExitCode {
    decom::cli::run()
}
