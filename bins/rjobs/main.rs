//! `rjobs`: list jobs from the kernel's view. All logic is in `hupkit_rjobs`.

fn main() -> std::process::ExitCode {
    hupkit_rjobs::main()
}
