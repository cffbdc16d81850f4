//! hupkit's developer tasks, as a library so that the test suite can check that
//! the committed generated files are fresh (the rust-analyzer pattern).
//!
//! - [`generated`]: every generated file (completions for bash, zsh and fish, and
//!   man pages), rendered from the tools' clap definitions, deterministic (no
//!   dates), with its path relative to the workspace root.
//! - [`bench`]: the suite's benchmarks against the anchors, run in one process.
//! - [`install`]: `cargo xtask install` and `uninstall` (PREFIX, DESTDIR, a
//!   manifest); [`deb`]: the Debian package, and its check in a chroot.

pub mod bench;
pub mod container;
pub mod deb;
pub mod install;

use std::path::PathBuf;

use clap::Command;
use clap_complete::Shell;

/// What the generators need to know about one tool.
pub struct Tool {
    /// The installed name.
    pub name: &'static str,
    /// The clap definition, with the installed name as program name.
    pub command: Command,
    /// The `EXIT STATUS` entries: (status, meaning).
    pub exit_status: &'static [(&'static str, &'static str)],
    /// Further man page sections: (title, text).
    pub man_sections: &'static [(&'static str, &'static str)],
}

/// Every tool of the suite.
#[must_use]
pub fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "rnohup",
            command: hupkit_rnohup::cli::command("rnohup"),
            exit_status: hupkit_rnohup::cli::EXIT_STATUS,
            man_sections: hupkit_rnohup::cli::MAN_SECTIONS,
        },
        Tool {
            name: "detach",
            command: hupkit_detach::cli::command(),
            exit_status: hupkit_detach::cli::EXIT_STATUS,
            man_sections: hupkit_detach::cli::MAN_SECTIONS,
        },
        Tool {
            name: "rjobs",
            command: hupkit_rjobs::cli::command(),
            exit_status: hupkit_rjobs::cli::EXIT_STATUS,
            man_sections: hupkit_rjobs::cli::MAN_SECTIONS,
        },
        Tool {
            name: "rbg",
            command: hupkit_rbg::command(),
            exit_status: hupkit_rbg::EXIT_STATUS,
            man_sections: hupkit_rbg::MAN_SECTIONS,
        },
        Tool {
            name: "disown",
            command: hupkit_disown::cli::command(),
            exit_status: hupkit_disown::cli::EXIT_STATUS,
            man_sections: hupkit_disown::cli::MAN_SECTIONS,
        },
        Tool {
            name: "rdisown",
            command: hupkit_disown::cli::command().name("rdisown"),
            exit_status: hupkit_disown::cli::EXIT_STATUS,
            man_sections: hupkit_disown::cli::MAN_SECTIONS,
        },
        Tool {
            name: "huplab",
            command: hupkit_huplab::command(),
            exit_status: hupkit_huplab::EXIT_STATUS,
            man_sections: hupkit_huplab::MAN_SECTIONS,
        },
        Tool {
            name: "rfg",
            command: hupkit_rfg::command(),
            exit_status: hupkit_rfg::EXIT_STATUS,
            man_sections: hupkit_rfg::MAN_SECTIONS,
        },
    ]
}

/// Escapes text for roff: backslashes, and a leading `.` or `'` on a line.
fn roff_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split('\n') {
        if !out.is_empty() {
            out.push('\n');
        }
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(&line.replace('\\', "\\e").replace('-', "\\-"));
    }
    out
}

/// The SYNOPSIS line of a tool without a usage of its own: every option with
/// its value name (`[-o|--output FILE]`), and `...` after a repeatable operand.
/// (`clap_mangen`'s own leaves value names and repetition out.)
fn synopsis(cmd: &Command) -> String {
    let mut options = Vec::new();
    let mut operands = Vec::new();
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let values: Vec<String> = arg.get_value_names().map_or_else(
            || vec![format!("\\fI{}\\fR", arg.get_id().as_str().to_uppercase())],
            |v| v.iter().map(|n| format!("\\fI{n}\\fR")).collect(),
        );
        let values = values.join(" ");
        let required = arg.is_required_set();
        if arg.is_positional() {
            let repeated = if matches!(arg.get_action(), clap::ArgAction::Append) {
                "..."
            } else {
                ""
            };
            operands.push(if required {
                format!("{values}{repeated}")
            } else {
                format!("[{values}]{repeated}")
            });
            continue;
        }
        let mut names = Vec::new();
        if let Some(c) = arg.get_short() {
            names.push(format!("\\fB\\-{c}\\fR"));
        }
        if let Some(l) = arg.get_long() {
            names.push(format!("\\fB\\-\\-{}\\fR", roff_escape(l)));
        }
        let mut text = names.join("|");
        if arg.get_action().takes_values() {
            text = format!("{text} {values}");
        }
        options.push(if required { text } else { format!("[{text}]") });
    }
    let mut line = format!("\\fB{}\\fR", roff_escape(cmd.get_name()));
    for part in options.iter().chain(&operands) {
        line.push(' ');
        line.push_str(part);
    }
    line
}

/// Renders a man page: `clap_mangen`'s title, NAME, SYNOPSIS (ours, see
/// [`synopsis`], unless the tool writes its own usage), DESCRIPTION and
/// OPTIONS, then EXIT STATUS and the tool's own sections, then VERSION.
pub fn man_page(tool: &Tool) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(tool.command.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    if tool.command.get_overridden_usage().is_some() {
        man.render_synopsis_section(&mut out)?;
    } else {
        out.extend_from_slice(format!(".SH SYNOPSIS\n{}\n", synopsis(&tool.command)).as_bytes());
    }
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    out.extend_from_slice(b".SH \"EXIT STATUS\"\n");
    for (code, what) in tool.exit_status {
        out.extend_from_slice(format!(".TP\n\\fB{code}\\fR\n{}\n", roff_escape(what)).as_bytes());
    }
    for (title, text) in tool.man_sections {
        out.extend_from_slice(format!(".SH \"{title}\"\n").as_bytes());
        for (i, para) in text.split('\n').enumerate() {
            if i > 0 {
                out.extend_from_slice(b".br\n");
            }
            out.extend_from_slice(format!("{}\n", roff_escape(para)).as_bytes());
        }
    }
    man.render_version_section(&mut out)?;
    Ok(out)
}

fn completion(tool: &Tool, shell: Shell) -> Vec<u8> {
    let mut cmd = tool.command.clone();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, tool.name, &mut out);
    out
}

/// Every generated file: (path relative to the workspace root, contents).
pub fn generated() -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    for tool in tools() {
        let n = tool.name;
        files.push((
            PathBuf::from(format!("completions/{n}.bash")),
            completion(&tool, Shell::Bash),
        ));
        files.push((
            PathBuf::from(format!("completions/_{n}")),
            completion(&tool, Shell::Zsh),
        ));
        files.push((
            PathBuf::from(format!("completions/{n}.fish")),
            completion(&tool, Shell::Fish),
        ));
        files.push((PathBuf::from(format!("man/{n}.1")), man_page(&tool)?));
    }
    Ok(files)
}

/// The workspace root (the parent of this crate's folder).
#[must_use]
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map_or(here.clone(), std::path::Path::to_path_buf)
}
