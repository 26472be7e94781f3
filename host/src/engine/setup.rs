//! Building an engine: job classes compiled for the hardware and policy,
//! arrivals checked, backends registered (execute mode), the trace opened
//! and the first events scheduled.

use std::collections::{BinaryHeap, VecDeque};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::plan::{ClassPlan, attach_mixing};
use super::report::ClassStats;
use super::state::{DeviceRt, EventKind, JobSlab, TaskSlab};
use super::{Arrivals, Counters, Engine, EngineConfig, EngineError, JobClass, Mode};
use crate::backends::registry::{BackendOptions, Registry};
use crate::backends::tsu::TsuDriver;
use crate::device::PerDevice;
use crate::hardware::Hardware;
use crate::model::limits::{MAX_JOBS, MAX_STREAMED_JOBS};
use crate::perf::PerfTables;
use crate::policy::Policy;
use crate::review::ReviewQueue;
use crate::trace::{NodeRecord, TRACE_FORMAT, TRACE_VERSION, TraceEvent, TraceWriter};

impl Engine {
    /// Compiles the job classes for this hardware and policy and schedules
    /// the first arrival. `tables` are the routing tables learned so far.
    pub fn new(
        classes: Vec<JobClass>,
        hw: Hardware,
        policy: Policy,
        tables: PerfTables,
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        if classes.is_empty() {
            return Err(EngineError::NoClasses);
        }
        let mix = if config.mix.is_empty() {
            vec![1.0; classes.len()]
        } else {
            config.mix.clone()
        };
        let total: f64 = mix.iter().sum();
        if mix.len() != classes.len()
            || mix.iter().any(|w| !(w.is_finite() && *w >= 0.0))
            || total.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        {
            return Err(EngineError::BadMix {
                got: mix.len(),
                classes: classes.len(),
            });
        }
        let mut acc = 0.0;
        let class_cdf = mix
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        let mut tables = tables;
        let truth_tables = tables.clone();
        let tsu_driver = if hw.tsu.count > 0 {
            Some(TsuDriver::from_hardware(&hw)?)
        } else {
            None
        };
        let mut plans: Vec<ClassPlan> = classes
            .into_iter()
            .map(|c| {
                ClassPlan::compile(
                    c,
                    &hw,
                    &policy,
                    &mut tables,
                    &truth_tables,
                    tsu_driver.as_ref(),
                )
            })
            .collect();
        // Jobs that stream (Poisson, no per-job records) are bounded by
        // their latencies; the others by what is held or recorded per job.
        let (jobs, limit) = match &config.arrivals {
            Arrivals::Poisson { jobs, .. } if !config.record_jobs => (*jobs, MAX_STREAMED_JOBS),
            Arrivals::AtOnce { jobs } | Arrivals::Poisson { jobs, .. } => (*jobs, MAX_JOBS),
            Arrivals::Recorded(list) => (list.len() as u64, MAX_JOBS),
        };
        if jobs > limit {
            return Err(EngineError::TooManyJobs { jobs, limit });
        }
        if config.mode == Mode::Simulate {
            attach_mixing(&mut plans, &hw);
        }
        let (arrivals_left, rate, recorded) = match &config.arrivals {
            Arrivals::AtOnce { jobs } => (*jobs, f64::INFINITY, VecDeque::new()),
            Arrivals::Poisson { jobs, rate_per_s } => {
                if !(rate_per_s.is_finite() && *rate_per_s > 0.0) {
                    return Err(EngineError::BadRate(*rate_per_s));
                }
                (*jobs, *rate_per_s, VecDeque::new())
            }
            Arrivals::Recorded(list) => {
                for (i, a) in list.iter().enumerate() {
                    if !(a.t_ms.is_finite() && a.t_ms >= 0.0) {
                        return Err(EngineError::BadArrival {
                            index: i,
                            reason: format!("time {} is not a finite number >= 0", a.t_ms),
                        });
                    }
                    if a.class >= plans.len() {
                        return Err(EngineError::BadArrival {
                            index: i,
                            reason: format!(
                                "class {} does not exist ({} class(es))",
                                a.class,
                                plans.len()
                            ),
                        });
                    }
                }
                let mut list = list.clone();
                list.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
                (list.len() as u64, f64::INFINITY, list.into())
            }
        };
        let devices = PerDevice::from_fn(|d| DeviceRt::new(hw.slots(d)));
        let backends = match config.mode {
            Mode::Execute => Registry::build(
                &hw,
                &BackendOptions {
                    threads: config.threads,
                    tsu: tsu_driver.as_ref(),
                },
            ),
            Mode::Simulate => Registry::default(),
        };
        let trace = match &config.trace {
            Some(path) => Some(TraceWriter::create(
                path,
                config.mode == Mode::Execute,
                config.trace_max,
            )?),
            None => None,
        };
        let reviews = match (&config.reviews, config.mode) {
            (Some(path), Mode::Execute) => Some(ReviewQueue::open(path)?),
            // Simulated holds are only recorded, unless the hardware file
            // asks for them in the queue.
            (Some(path), Mode::Simulate) if hw.simulate.hold_reviews => {
                Some(ReviewQueue::open(path)?)
            }
            _ => None,
        };
        let summaries = plans.iter().map(ClassStats::new).collect();
        let native = Policy::native(&hw);
        let mut engine = Engine {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            hw,
            policy_notices: policy.gives_notices(),
            policy,
            native,
            classes: plans,
            class_cdf,
            tables,
            backends,
            now_ms: 0.0,
            seq: 0,
            events: BinaryHeap::new(),
            jobs: JobSlab::default(),
            tasks: TaskSlab::default(),
            devices,
            arrivals_left,
            rate_per_s: rate,
            recorded,
            span: tracing::debug_span!("run", mode = ?config.mode, seed = config.seed),
            next_job_id: 0,
            paused: false,
            trace,
            reviews,
            summaries,
            counters: Counters::default(),
            fault_tally: Default::default(),
            records: Vec::new(),
            brief_records: false,
            scratch: Vec::new(),
            scratch_inputs: Vec::new(),
            scratch_costs: Vec::new(),
            situation: Default::default(),
            scratch_notices: Vec::new(),
            ready: Vec::new(),
            draining: false,
            wall_start: std::time::Instant::now(),
            held: Vec::new(),
            hold_seq: 0,
            config,
        };
        let header = TraceEvent::Header {
            format: TRACE_FORMAT.into(),
            version: TRACE_VERSION,
            mode: match engine.config.mode {
                Mode::Execute => "execute".into(),
                Mode::Simulate => "simulate".into(),
            },
            seed: engine.config.seed,
            policy: engine.policy.describe(),
            classes: engine.classes.iter().map(|c| c.name.clone()).collect(),
            hardware: Box::new(engine.hw.clone()),
            class_qos: engine.classes.iter().map(|c| c.graph.qos).collect(),
            class_nodes: engine
                .classes
                .iter()
                .map(|c| {
                    c.graph
                        .nodes
                        .iter()
                        .zip(&c.nodes)
                        .map(|(n, np)| NodeRecord {
                            id: n.id.clone(),
                            node: np.summary.clone(),
                        })
                        .collect()
                })
                .collect(),
            part: 0,
        };
        engine.emit(header)?;
        engine.trace_eligibility_faults()?;
        for t in engine.hw.availability_edges() {
            engine.push(t, EventKind::Edge);
        }
        engine.schedule_next_arrival();
        Ok(engine)
    }
}
