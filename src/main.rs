use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    fixed_mmap_threshold();
    let cli = ferry::cli::Cli::parse();
    match ferry::run(cli) {
        Ok(exit) => exit.into(),
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code().into()
        }
    }
}

/// Buffers of a megabyte or more are mapped on their own and given back to the system
/// when freed. glibc otherwise raises that limit to the size of the largest buffer
/// freed (a package buffer, tens of megabytes), after which its arenas, one per
/// thread, keep up to twice that each: with many workers and reads, the process held
/// several times what `resources.memory` allows (measured in BENCHMARKS.md). Fixing
/// the limit fixes the trim threshold with it.
#[expect(
    unsafe_code,
    reason = "mallopt has no safe binding; called before any thread"
)]
fn fixed_mmap_threshold() {
    // SAFETY: mallopt only sets allocator parameters; it is called first thing in
    // main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
