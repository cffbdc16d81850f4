//! hupkit's end-to-end tests: one test binary, one module per tool.
mod util;
