#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    triggered_cache::cli::main()
}
