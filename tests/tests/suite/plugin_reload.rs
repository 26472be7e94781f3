//! Plugin hot reload through `notify`: files replaced the ways editors and
//! build tools replace them; the queue roles reload like the others.

use std::time::Duration;

use thermoroute::device::Target;
use thermoroute::hardware::{Hardware, PolicySpec};
use thermoroute::model::graph::{NodeKind, Priority, Risk};
use thermoroute::plugin::{PluginCost, PluginSet};
use thermoroute::policy::{Admission, CostModel, PolicyNotice, QueueTask, QueueView};
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

/// The next reload notice `take` hands out (waits up to two minutes).
fn next_notice(take: impl Fn(&mut Vec<PolicyNotice>)) -> PolicyNotice {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut notices = Vec::new();
        take(&mut notices);
        if let Some(n) = notices.pop() {
            return n;
        }
        assert!(std::time::Instant::now() < deadline, "no reload notice");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn queue_task(job: u64, priority: Priority) -> QueueTask {
    QueueTask {
        id: job << 20,
        job_id: job,
        job_class: "c".into(),
        node_id: "n".into(),
        kind: NodeKind::Tensor,
        priority,
        risk: Risk::Reversible,
        arrival_ms: 0.0,
        enqueued_ms: 0.0,
        deadline_ms: None,
        service_ms: 1.0,
        preemptible: false,
    }
}

/// The queue roles' files are watched like the others: a good new version
/// serves at once (a fresh instance), one that fails its role's
/// conformance cases or serves another role is refused and the old one
/// serves on, and each change is a notice naming the role.
#[test]
fn queue_role_components_hot_reload_and_broken_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let order_file = dir.path().join("queue-order.wasm");
    let admit_file = dir.path().join("admit.wasm");
    std::fs::copy(guest("fixture_batch_first"), &order_file).unwrap();
    std::fs::copy(guest("fixture_reject_all"), &admit_file).unwrap();
    let set = PluginSet {
        queue_order: Some(order_file.clone()),
        admit: Some(admit_file.clone()),
        ..Default::default()
    };
    let policy = set
        .policy(&Hardware::default(), Some(Duration::from_millis(25)))
        .unwrap();
    let order = policy.queue.order.as_ref().unwrap();
    let admit = policy.queue.admit.as_ref().unwrap();
    let arriving = queue_task(9, Priority::Interactive);
    let view = QueueView {
        target: Target::Cpu,
        now_ms: 0.0,
        free_slots: 0,
        slots: 2,
        waiting: vec![
            queue_task(1, Priority::Interactive),
            queue_task(2, Priority::Batch),
        ],
        running: vec![],
        limit: 8,
    };
    assert!(matches!(
        admit.decide(&arriving, &view).unwrap(),
        Admission::Reject { .. }
    ));
    let rejecting = admit.version().unwrap();

    // A good new version, renamed into place as a build writes it.
    let swap = dir.path().join(".admit.wasm.swp");
    std::fs::copy(guest("admit_rust"), &swap).unwrap();
    std::fs::rename(&swap, &admit_file).unwrap();
    let notice = next_notice(|out| admit.take_notices(out));
    assert!(notice.ok, "{notice:?}");
    assert_eq!(notice.role, "admit");
    let good = admit.version().unwrap();
    assert_ne!(good, rejecting);
    assert!(
        notice.detail.contains(&format!("was {rejecting}")),
        "{notice:?}"
    );
    // The new version answers: interactive work is accepted.
    assert_eq!(admit.decide(&arriving, &view).unwrap(), Admission::Accept);

    // A component of another role: refused, the accepting version serves on.
    std::fs::write(
        &admit_file,
        std::fs::read(guest("fixture_batch_first")).unwrap(),
    )
    .unwrap();
    let notice = next_notice(|out| admit.take_notices(out));
    assert!(!notice.ok, "{notice:?}");
    assert!(
        notice.detail.starts_with(&format!("kept {good}")),
        "{notice:?}"
    );
    assert!(notice.detail.contains("admit-plugin"), "{notice:?}");
    assert_eq!(admit.version().unwrap(), good);
    assert_eq!(admit.decide(&arriving, &view).unwrap(), Admission::Accept);

    // A queue order that fails its conformance cases: refused.
    let batch_first = order.version().unwrap();
    assert_eq!(order.order(&view).unwrap(), [1, 0]);
    std::fs::write(
        &order_file,
        std::fs::read(guest("fixture_duplicate_order")).unwrap(),
    )
    .unwrap();
    let notice = next_notice(|out| order.take_notices(out));
    assert!(!notice.ok, "{notice:?}");
    assert_eq!(notice.role, "queue-order");
    assert!(notice.detail.contains("fails conformance"), "{notice:?}");
    assert_eq!(order.version().unwrap(), batch_first);
    assert_eq!(order.order(&view).unwrap(), [1, 0]);
}
