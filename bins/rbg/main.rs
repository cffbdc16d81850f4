//! `rbg`: continue jobs in the background. All logic is in `hupkit_rbg`.

fn main() -> std::process::ExitCode {
    hupkit_rbg::main()
}
