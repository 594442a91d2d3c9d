//! The `metasystem` binary: the daemon and its CLI. All logic is in the library.

fn main() -> std::process::ExitCode {
    metasystem::cli::main()
}
