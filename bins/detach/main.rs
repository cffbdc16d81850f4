//! `detach`: run a command as a daemon. All logic is in `hupkit_detach`.

fn main() -> std::process::ExitCode {
    hupkit_detach::main()
}
