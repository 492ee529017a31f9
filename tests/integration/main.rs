//! Integration tests: the real `ferry` binary, driven from the outside.

mod bandwidth;
mod cli;
mod cloud;
mod crash;
mod fidelity;
mod fuzz;
mod gc;
mod graph;
mod harness;
mod layers;
mod log;
mod metrics;
mod network;
mod plan_from;
mod plans;
mod reliability;
mod reports;
mod run;
mod s3;
mod scan;
mod schedule;
mod schema;
mod session;
mod shards;
mod validate;
mod verify;
