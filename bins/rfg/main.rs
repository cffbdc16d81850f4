//! `rfg`: bring a job to the foreground. All logic is in `hupkit_rfg`.

fn main() -> std::process::ExitCode {
    hupkit_rfg::main()
}
