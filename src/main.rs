//! Entry point: hands the command line to the library and turns its outcome into an exit code.
fn main() -> std::process::ExitCode {
    whatsapp_mcp::cli::main()
}
