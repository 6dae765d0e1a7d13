//! The `honker` command: see the library's `main_from`.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(honker_cli::main_from(std::env::args_os()))
}
