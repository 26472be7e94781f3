//! R-hat and bulk ESS agree with ArviZ (arviz-stats) to 1e-6 on committed
//! draws; `tests/fixtures/make_diagnostics_fixture.py` made the fixture.

use thermoroute::diagnostics::{Chains, ess_bulk, rhat_rank};

#[test]
fn rhat_and_ess_match_arviz() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/diagnostics.json"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let rows: Vec<Vec<f64>> = serde_json::from_value(case["values"].clone()).unwrap();
        let (chains, draws) = (rows.len(), rows[0].len());
        let values: Vec<f64> = rows.concat();
        let x = Chains {
            values: &values,
            chains,
            draws,
        };
        let (rhat, ess) = (rhat_rank(x), ess_bulk(x));
        let want_rhat = case["rhat"].as_f64().unwrap();
        let want_ess = case["ess_bulk"].as_f64().unwrap();
        assert!(
            (rhat - want_rhat).abs() < 1e-6,
            "{name}: rhat {rhat} vs ArviZ {want_rhat}"
        );
        assert!(
            (ess - want_ess).abs() < 1e-6,
            "{name}: ess_bulk {ess} vs ArviZ {want_ess}"
        );
    }
}

#[test]
fn stuck_chains_have_large_rhat() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/diagnostics.json"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let case = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "spins-stuck-modes")
        .unwrap();
    let rows: Vec<Vec<f64>> = serde_json::from_value(case["values"].clone()).unwrap();
    let values = rows.concat();
    let rhat = rhat_rank(Chains {
        values: &values,
        chains: rows.len(),
        draws: rows[0].len(),
    });
    assert!(
        rhat > 1.1,
        "chains stuck in different modes must be flagged, got R-hat {rhat}"
    );
}

#[test]
fn undefined_cases_are_nan() {
    let one_chain = vec![1.0, -1.0, 1.0, 1.0, -1.0, 1.0];
    assert!(
        rhat_rank(Chains {
            values: &one_chain,
            chains: 1,
            draws: 6
        })
        .is_nan()
    );
    let constant = vec![1.0; 16];
    assert!(
        rhat_rank(Chains {
            values: &constant,
            chains: 2,
            draws: 8
        })
        .is_nan()
    );
    // ArviZ returns the draw count for constant draws.
    assert_eq!(
        ess_bulk(Chains {
            values: &constant,
            chains: 2,
            draws: 8
        }),
        16.0
    );
}
