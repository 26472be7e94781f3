//! The host writes a 0.2 cost model's `score` arguments into guest memory
//! with its own layout code (`plugin/fast_lower.rs`), not wasmtime's
//! field-by-field derived lowering. An echoing guest answers with what it
//! received; on hundreds of random decisions (every option present and
//! absent, 0–6 devices and candidates, empty, long and non-ASCII strings)
//! both lowerings must make it print the same thing. The same holds for
//! the frozen 0.1.0 package's `score`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thermoroute::plugin::v0_2::cost_model::{
    Candidate, Decision, Estimate, RiskPenalties, Weights,
};
use thermoroute::plugin::v0_2::types::{
    BudgetShare, DeviceState, Health, JobContext, Learned, NodeKind, NodeSummary, Priority,
    ProgramSummary, Qos, Risk, Target,
};
use thermoroute::plugin::{PluginFault, Runtime, v0_1 as v01};
use thermoroute_tests::{guest, plugin_runtime};

fn maybe(rng: &mut ChaCha8Rng) -> Option<f64> {
    rng.random_bool(0.5).then(|| figure(rng))
}

/// A float with varied magnitude and sign, sometimes a special value.
fn figure(rng: &mut ChaCha8Rng) -> f64 {
    match rng.random_range(0..10) {
        0 => 0.0,
        1 => -0.0,
        2 => f64::INFINITY,
        3 => f64::MIN_POSITIVE,
        _ => (rng.random::<f64>() - 0.3) * 10f64.powi(rng.random_range(-12..12)),
    }
}

fn text(rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..4) {
        0 => String::new(),
        1 => "sample:ising:2^6".into(),
        2 => "ß→é 🧊 ".repeat(rng.random_range(1..5)),
        _ => "x".repeat(rng.random_range(1..300)),
    }
}

fn target(rng: &mut ChaCha8Rng) -> Target {
    [
        Target::Cpu,
        Target::Gpu,
        Target::Tsu,
        Target::GpuSim,
        Target::CpuRef,
    ][rng.random_range(0..5)]
}

fn decision(rng: &mut ChaCha8Rng) -> Decision {
    let program = rng.random_bool(0.5).then(|| ProgramSummary {
        n_vars: rng.random(),
        n_spins: rng.random(),
        n_categorical: rng.random(),
        n_factors: rng.random(),
        n_constraints: rng.random(),
        n_edges: rng.random(),
        n_clamped: rng.random(),
        runtime_conditioning: rng.random(),
        chains: rng.random(),
        samples: rng.random(),
        sweeps_per_chain: rng.random(),
        updates: figure(rng),
    });
    let devices = (0..rng.random_range(0..7))
        .map(|_| DeviceState {
            target: target(rng),
            queue_depth: rng.random(),
            running: rng.random(),
            room: rng.random(),
            health: [Health::Ok, Health::Offline, Health::FailedEarlier][rng.random_range(0..3)],
            learned: rng.random_bool(0.5).then(|| Learned {
                count: rng.random(),
                mean_ms: figure(rng),
                p95_ms: figure(rng),
            }),
        })
        .collect();
    Decision {
        node: NodeSummary {
            kind: [
                NodeKind::Control,
                NodeKind::Tensor,
                NodeKind::Nn,
                NodeKind::Sample,
                NodeKind::Effect,
            ][rng.random_range(0..5)],
            class: text(rng),
            flops: figure(rng),
            bytes: figure(rng),
            program,
        },
        node_id: text(rng),
        qos: Qos {
            latency_p50_ms: maybe(rng),
            latency_p95_ms: maybe(rng),
            energy_j: maybe(rng),
            energy_relative: maybe(rng),
            energy_budget_j: maybe(rng),
            max_error: maybe(rng),
            risk: if rng.random() {
                Risk::Reversible
            } else {
                Risk::Irreversible
            },
            priority: if rng.random() {
                Priority::Interactive
            } else {
                Priority::Batch
            },
        },
        job: JobContext {
            id: rng.random(),
            class: text(rng),
            arrival_ms: figure(rng),
            now_ms: figure(rng),
            energy_spent_j: figure(rng),
            energy_remaining_j: maybe(rng),
        },
        share: BudgetShare {
            deadline_ms: maybe(rng),
            latency_ms: maybe(rng),
            energy_j: maybe(rng),
            timeout_ms: maybe(rng),
        },
        weights: Weights {
            latency: figure(rng),
            energy: figure(rng),
            error: figure(rng),
            risk: figure(rng),
        },
        penalties: RiskPenalties {
            tsu_irreversible: figure(rng),
            gpu_sim_irreversible: figure(rng),
        },
        devices,
    }
}

fn candidates(rng: &mut ChaCha8Rng) -> Vec<Candidate> {
    (0..rng.random_range(0..7))
        .map(|_| Candidate {
            target: target(rng),
            estimate: Estimate {
                latency_p50_ms: figure(rng),
                latency_p95_ms: figure(rng),
                queue_wait_ms: figure(rng),
                energy_j: figure(rng),
                error: figure(rng),
            },
        })
        .collect()
}

/// The guest's echo: its error message.
fn echo(answer: Result<Vec<impl std::fmt::Debug>, PluginFault>) -> String {
    match answer {
        Err(PluginFault::GuestError { message }) => message,
        other => panic!("the echo guest answers with an error, not {other:?}"),
    }
}

#[test]
fn the_fast_lowering_hands_the_guest_exactly_what_the_derived_one_does() {
    let plugin = plugin_runtime()
        .load(&guest("fixture_echo_cost"))
        .expect("the echo fixture loads");
    let mut instance = plugin.instance();
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    for i in 0..400 {
        let d = decision(&mut rng);
        let c = candidates(&mut rng);
        let fast = echo(instance.score_v2(&d, &c));
        let derived = echo(instance.score_v2_derived(&d, &c));
        assert_eq!(fast, derived, "decision {i}: {d:?}");
        // The echo is the guest's view of these very values, not a blank.
        assert!(
            fast.contains(&format!("id: {}", d.job.id)),
            "decision {i}: {fast}"
        );
        assert!(
            fast.contains(&format!("{:?}", d.node_id)),
            "decision {i}: node id {:?} missing from {fast}",
            d.node_id
        );
    }
}

#[test]
fn a_fresh_runtime_lowers_the_same_way() {
    // A separate runtime (own engine and instance pool): the first call
    // into a new instance goes through the fast path too.
    let runtime = Runtime::new(None).expect("a runtime starts");
    let plugin = runtime
        .load(&guest("fixture_echo_cost"))
        .expect("the echo fixture loads");
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let d = decision(&mut rng);
    let c = candidates(&mut rng);
    let fast = echo(plugin.instance().score_v2(&d, &c));
    let derived = echo(plugin.instance().score_v2_derived(&d, &c));
    assert_eq!(fast, derived);
}

/// The 0.2 decision's fields that 0.1.0 also has, in 0.1.0's types.
fn decision_v01(d: &Decision) -> v01::cost_model::Decision {
    use v01::types as t;
    let kind = match d.node.kind {
        NodeKind::Control => t::NodeKind::Control,
        NodeKind::Tensor => t::NodeKind::Tensor,
        NodeKind::Nn => t::NodeKind::Nn,
        NodeKind::Sample => t::NodeKind::Sample,
        NodeKind::Effect => t::NodeKind::Effect,
    };
    v01::cost_model::Decision {
        node: t::NodeSummary {
            kind,
            class: d.node.class.clone(),
            flops: d.node.flops,
            bytes: d.node.bytes,
            program: d.node.program.map(|p| t::ProgramSummary {
                n_vars: p.n_vars,
                n_spins: p.n_spins,
                n_categorical: p.n_categorical,
                n_factors: p.n_factors,
                n_constraints: p.n_constraints,
                n_edges: p.n_edges,
                n_clamped: p.n_clamped,
                runtime_conditioning: p.runtime_conditioning,
                chains: p.chains,
                samples: p.samples,
                sweeps_per_chain: p.sweeps_per_chain,
                updates: p.updates,
            }),
        },
        qos: t::Qos {
            latency_p50_ms: d.qos.latency_p50_ms,
            latency_p95_ms: d.qos.latency_p95_ms,
            energy_j: d.qos.energy_j,
            max_error: d.qos.max_error,
            risk: match d.qos.risk {
                Risk::Reversible => t::Risk::Reversible,
                Risk::Irreversible => t::Risk::Irreversible,
            },
            priority: match d.qos.priority {
                Priority::Interactive => t::Priority::Interactive,
                Priority::Batch => t::Priority::Batch,
            },
        },
        weights: v01::cost_model::Weights {
            latency: d.weights.latency,
            energy: d.weights.energy,
            error: d.weights.error,
            risk: d.weights.risk,
        },
        penalties: v01::cost_model::RiskPenalties {
            tsu_irreversible: d.penalties.tsu_irreversible,
            gpu_sim_irreversible: d.penalties.gpu_sim_irreversible,
        },
    }
}

fn candidates_v01(c: &[Candidate]) -> Vec<v01::cost_model::Candidate> {
    use v01::types::Target as T;
    c.iter()
        .map(|c| v01::cost_model::Candidate {
            target: match c.target {
                Target::Cpu => T::Cpu,
                Target::Gpu => T::Gpu,
                Target::Tsu => T::Tsu,
                Target::GpuSim => T::GpuSim,
                Target::CpuRef => T::CpuRef,
            },
            estimate: v01::cost_model::Estimate {
                latency_p50_ms: c.estimate.latency_p50_ms,
                latency_p95_ms: c.estimate.latency_p95_ms,
                queue_wait_ms: c.estimate.queue_wait_ms,
                energy_j: c.estimate.energy_j,
                error: c.estimate.error,
            },
        })
        .collect()
}

#[test]
fn a_0_1_component_gets_the_same_bytes_from_both_lowerings() {
    let plugin = plugin_runtime()
        .load(&guest("fixture_echo_cost_v01"))
        .expect("the 0.1 echo fixture loads");
    let mut instance = plugin.instance();
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for i in 0..300 {
        let d = decision_v01(&decision(&mut rng));
        let c = candidates_v01(&candidates(&mut rng));
        let fast = echo(instance.score(&d, &c));
        let derived = echo(instance.score_derived(&d, &c));
        assert_eq!(fast, derived, "decision {i}: {d:?}");
        assert!(
            fast.contains(&format!("{:?}", d.node.class)),
            "decision {i}: class {:?} missing from {fast}",
            d.node.class
        );
    }
}
