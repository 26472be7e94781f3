//! The review store's unit tests.

use super::*;

fn item() -> ReviewItem {
    ReviewItem {
        id: String::new(),
        graph: "g".into(),
        job: 0,
        node: "act".into(),
        action: "block card".into(),
        risk: Risk::Irreversible,
        reasons: vec!["low ESS".into()],
        evidence: vec![],
        status: ReviewStatus::Pending,
        decided_by: None,
        note: None,
    }
}

#[test]
fn held_items_persist_until_decided() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q/reviews.db");
    let mut q = ReviewQueue::open(&path).unwrap();
    let a = q.hold(item()).unwrap();
    let b = q.hold(item()).unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("R0001", "R0002"));
    let mut q = ReviewQueue::open(&path).unwrap();
    assert_eq!(q.pending().unwrap().len(), 2);
    assert_eq!(
        q.decide(&a, true, None, None).unwrap().status,
        ReviewStatus::Applied
    );
    assert!(matches!(
        q.decide(&a, false, None, None),
        Err(ReviewError::AlreadyDecided { .. })
    ));
    assert!(matches!(
        q.decide("R9999", true, None, None),
        Err(ReviewError::UnknownId { .. })
    ));
    q.decide(&b, false, Some("ops".into()), None).unwrap();
    let q = ReviewQueue::open(&path).unwrap();
    assert!(q.pending().unwrap().is_empty());
    let items = q.items().unwrap();
    assert_eq!(items[1].status, ReviewStatus::Dropped);
    assert_eq!(items[1].decided_by.as_deref(), Some("ops"));
    assert_eq!(q.export().unwrap().next_id, 3);
}

#[test]
fn a_decision_made_elsewhere_is_not_reverted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.db");
    let mut run = ReviewQueue::open(&path).unwrap();
    let a = run.hold(item()).unwrap();
    let mut reviewer = ReviewQueue::open(&path).unwrap();
    reviewer.decide(&a, true, None, None).unwrap();
    // The run's connection goes on holding; the approval stays.
    let b = run.hold(item()).unwrap();
    assert_ne!(a, b);
    let items = ReviewQueue::open(&path).unwrap().items().unwrap();
    assert_eq!(items[0].status, ReviewStatus::Applied);
    assert_eq!(items[1].status, ReviewStatus::Pending);
    assert!(matches!(
        run.decide(&a, false, None, None),
        Err(ReviewError::AlreadyDecided { .. })
    ));
}

#[test]
fn a_json_queue_is_imported_once_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reviews.json");
    let mut items: Vec<ReviewItem> = (0..4).map(|_| item()).collect();
    items[0].id = "R0001".into();
    items[1].id = "R0007".into();
    items[1].status = ReviewStatus::Applied;
    items[2].id = "R0007".into(); // a clash from a stale next_id
    items[3].id = "R4294967296".into(); // out of range
    let text = serde_json::to_string(&QueueExport {
        format: FORMAT.into(),
        version: VERSION,
        next_id: 2,
        items,
    })
    .unwrap();
    std::fs::write(&path, &text).unwrap();
    let mut q = ReviewQueue::open(&path).unwrap();
    let Opened::Imported {
        items: n,
        backup,
        renamed,
    } = q.opened().clone()
    else {
        panic!("not imported: {:?}", q.opened());
    };
    assert_eq!(n, 4);
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), text);
    assert_eq!(
        renamed,
        vec![
            ("R0007".to_string(), "R0008".to_string()),
            ("R4294967296".to_string(), "R0009".to_string())
        ]
    );
    let ids: Vec<String> = q.items().unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(ids, ["R0001", "R0007", "R0008", "R0009"]);
    assert_eq!(backup, dir.path().join("reviews.json.bak"));
    assert_eq!(q.items().unwrap()[1].status, ReviewStatus::Applied);
    assert_eq!(q.hold(item()).unwrap(), "R0010");
    // Opened again: a database now, nothing imported twice.
    let q = ReviewQueue::open(&path).unwrap();
    assert_eq!(q.opened(), &Opened::Database);
    assert_eq!(q.items().unwrap().len(), 5);
}

#[test]
fn foreign_or_corrupt_files_are_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text", b"hello, not a queue".to_vec()),
        (
            "json",
            br#"{"format": "other", "version": 1, "next_id": 1, "items": []}"#.to_vec(),
        ),
        (
            "torn-json",
            br#"{"format": "thermoroute-reviews", "vers"#.to_vec(),
        ),
        ("sqlite-garbage", {
            let mut b = SQLITE_MAGIC.to_vec();
            b.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
            b
        }),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let e = ReviewQueue::open(&path).expect_err(name);
        assert!(matches!(e, ReviewError::Parse { .. }), "{name}: {e}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} changed");
    }
    // Another program's database.
    let path = dir.path().join("other.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    let e = ReviewQueue::open(&path).unwrap_err();
    assert!(e.to_string().contains("without a review queue"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
