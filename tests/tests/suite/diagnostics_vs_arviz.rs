//! R-hat and bulk ESS agree with ArviZ (arviz-stats) to 1e-6 on committed
//! draws; `tests/fixtures/make_diagnostics_fixture.py` made the fixture.

use thermoroute::diagnostics::{Chains, ess_bulk, rhat_rank};

/// One fixture case: its name, its (chains x draws) values, ArviZ's R-hat and ESS.
struct Case {
    name: String,
    rows: Vec<Vec<f64>>,
    rhat: f64,
    ess_bulk: f64,
}

impl Case {
    /// (R-hat, bulk ESS) computed by thermoroute.
    fn ours(&self) -> (f64, f64) {
        let values = self.rows.concat();
        let x = Chains {
            values: &values,
            chains: self.rows.len(),
            draws: self.rows[0].len(),
        };
        (rhat_rank(x), ess_bulk(x))
    }
}

fn fixture() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/diagnostics.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            rows: serde_json::from_value(c["values"].clone()).unwrap(),
            rhat: c["rhat"].as_f64().unwrap(),
            ess_bulk: c["ess_bulk"].as_f64().unwrap(),
        })
        .collect()
}

#[test]
fn rhat_and_ess_match_arviz() {
    let cases = fixture();
    assert!(cases.len() >= 6);
    for case in &cases {
        let (rhat, ess) = case.ours();
        let name = &case.name;
        assert!(
            (rhat - case.rhat).abs() < 1e-6,
            "{name}: rhat {rhat} vs ArviZ {}",
            case.rhat
        );
        assert!(
            (ess - case.ess_bulk).abs() < 1e-6,
            "{name}: ess_bulk {ess} vs ArviZ {}",
            case.ess_bulk
        );
    }
}

#[test]
fn stuck_chains_have_large_rhat() {
    let cases = fixture();
    let stuck = cases
        .iter()
        .find(|c| c.name == "spins-stuck-modes")
        .unwrap();
    let (rhat, _) = stuck.ours();
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
