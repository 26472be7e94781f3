//! Plugin hot reload through `notify`: files replaced the ways editors and
//! build tools replace them.

use std::time::Duration;

use thermoroute::hardware::PolicySpec;
use thermoroute::plugin::PluginCost;
use thermoroute::policy::CostModel;
use thermoroute_tests::{guest, plugin_runtime as runtime, wait_for_notice};

/// Editors and `cargo build` write a new file and rename it over the old
/// one, again and again: the watch must follow each new file (a watch on the
/// replaced inode would see only the first), as it does an in-place write.
#[test]
fn hot_reload_follows_files_replaced_by_rename_from_elsewhere_and_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let build = tempfile::tempdir_in(dir.path()).unwrap();
    let file = dir.path().join("cost.wasm");
    std::fs::copy(guest("fixture_nan_cost"), &file).unwrap();
    let model = PluginCost::open(
        runtime(),
        &file,
        PolicySpec::default(),
        Some(Duration::from_millis(25)),
    )
    .unwrap();
    let nan_version = model.version().unwrap();
    // An editor's save: a swap file beside it, renamed over it.
    let swap = dir.path().join(".cost.wasm.swp");
    std::fs::copy(guest("cost_rust"), &swap).unwrap();
    std::fs::rename(&swap, &file).unwrap();
    let notice = wait_for_notice(&model);
    assert!(notice.ok, "{notice:?}");
    let good_version = model.version().unwrap();
    assert_ne!(good_version, nan_version);
    // A build: written in another directory, renamed into place.
    let built = build.path().join("cost.wasm");
    std::fs::copy(guest("fixture_wrong_length"), &built).unwrap();
    std::fs::rename(&built, &file).unwrap();
    let notice = wait_for_notice(&model);
    assert!(!notice.ok, "the third file is seen: {notice:?}");
    assert_eq!(model.version().unwrap(), good_version);
    // In place, as `cp` writes: truncated and rewritten.
    std::fs::write(&file, std::fs::read(guest("fixture_nan_cost")).unwrap()).unwrap();
    let notice = wait_for_notice(&model);
    assert!(!notice.ok, "{notice:?}");
    std::fs::write(&file, std::fs::read(guest("cost_rust")).unwrap()).unwrap();
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, std::fs::read(guest("fixture_nan_cost")).unwrap()).unwrap();
    let notice = wait_for_notice(&model);
    assert!(!notice.ok, "deleted and created again: {notice:?}");
    assert_eq!(model.version().unwrap(), good_version);
}
