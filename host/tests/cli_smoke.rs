//! The binary starts, and `--version` reports the crate version. (Its
//! presence also makes `cargo test` build the binary that the workspace-level
//! CLI tests in `tests/` drive.)

#[test]
fn version_matches_crate() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_thermoroute"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}
