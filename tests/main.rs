//! hupkit's end-to-end tests: one test binary, one module per tool, real
//! processes on real pseudo-terminals, plus the freshness check of the generated
//! files.

// A failed step in a test helper is a failed test: panicking there is the point.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]
mod detach;
mod disown;
mod generated;
mod huplab;
mod jobcontrol;
mod logout;
mod reliability;
mod rnohup;
mod util;
