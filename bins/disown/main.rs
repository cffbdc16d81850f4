//! `disown`: cut running jobs loose from their terminal. All logic is in `hupkit_disown`.

fn main() -> std::process::ExitCode {
    hupkit_disown::main()
}
