//! Builds the guest plugins under `plugins/` (Rust, `wasm32-wasip2`) and
//! hands their directory to the tests as `GUEST_DIR`, like wasmtime's
//! `test-programs` crate.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("../plugins");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // target/<profile>/build/<pkg>/out → target/guests (outside the
    // profile directory this cargo holds locked).
    let target = out_dir
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.clone())
        .join("guests");
    println!("cargo:rerun-if-changed=../wit");
    println!("cargo:rerun-if-changed=../plugins/Cargo.toml");
    println!("cargo:rerun-if-changed=../plugins/Cargo.lock");
    for dir in [
        "cost-rust",
        "eligibility-rust",
        "gate-rust",
        "queue-order-rust",
        "admit-rust",
        "preempt-rust",
        "fixtures",
    ] {
        println!("cargo:rerun-if-changed=../plugins/{dir}");
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        // The outer build's flags and wrappers are for the host, not guests.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_RUSTC_WRAPPER")
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building the guest plugins failed; is the target installed? `rustup target add wasm32-wasip2` (scripts/test.sh does it)"
    );
    println!(
        "cargo:rustc-env=GUEST_DIR={}",
        target.join("wasm32-wasip2/release").display()
    );
}
