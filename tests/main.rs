//! hupkit's end-to-end tests: one test binary, one module per tool, real
//! processes on real pseudo-terminals.
mod rnohup;
mod util;
