//! `huplab`: the separation lab. All logic is in `hupkit_huplab`.

fn main() -> std::process::ExitCode {
    hupkit_huplab::main()
}
