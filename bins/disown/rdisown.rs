//! `rdisown`: the same program as `disown`, under a name no shell builtin hides.

fn main() -> std::process::ExitCode {
    hupkit_disown::main()
}
