//! Integration tests: the real `ferry` binary, driven from the outside.

mod cli;
mod graph;
mod harness;
mod plans;
mod schema;
mod validate;
