//! The TSU compiler (`thermoroute-sim`): a spin problem built from the
//! fuzzer's bytes, compiled for a preset chip, and the image's queries.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use thermoroute_sim::{ChipConfig, Schedule, SpinProblem, compile};

#[derive(Debug)]
struct Input {
    chip: ChipConfig,
    problem: SpinProblem,
    tolerance: f64,
}

fn f64_any(u: &mut Unstructured) -> Result<f64> {
    // Mostly ordinary values, sometimes the edges (NaN, infinities, huge).
    Ok(match u.int_in_range(0u8..=15)? {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => -1e300,
        3 => f64::from_bits(u.arbitrary()?),
        _ => f64::from(u.int_in_range(-4000i32..=4000)?) / 1000.0,
    })
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let chip = if u.arbitrary()? {
            ChipConfig::devkit()
        } else {
            ChipConfig::z1_like()
        };
        let n = u.int_in_range(0usize..=300)?;
        let biases = (0..n).map(|_| f64_any(u)).collect::<Result<_>>()?;
        let n_edges = u.int_in_range(0usize..=600)?;
        let mut edges = Vec::with_capacity(n_edges);
        let mut weights = Vec::with_capacity(n_edges);
        for _ in 0..n_edges {
            // Indices may fall outside 0..n and repeat: the compiler must say so.
            let i = u.int_in_range(0usize..=n + 1)?;
            let j = u.int_in_range(0usize..=n + 1)?;
            edges.push([i, j]);
            weights.push(f64_any(u)?);
        }
        let clamp = (0..n)
            .map(|_| {
                Ok(match u.int_in_range(0u8..=7)? {
                    0 => Some(1),
                    1 => Some(-1),
                    2 => Some(u.arbitrary()?),
                    _ => None,
                })
            })
            .collect::<Result<_>>()?;
        let big = |u: &mut Unstructured| -> Result<u64> {
            Ok(if u.ratio(1u8, 8)? {
                u.arbitrary()?
            } else {
                u.int_in_range(0u64..=2000)?
            })
        };
        let schedule = Schedule {
            warmup: big(u)?,
            samples: big(u)?,
            steps_per_sample: big(u)?,
            chains: big(u)?,
        };
        Ok(Input {
            chip,
            problem: SpinProblem {
                biases,
                edges,
                weights,
                beta: f64_any(u)?,
                clamp,
                schedule,
            },
            tolerance: f64_any(u)?.abs(),
        })
    }
}

fuzz_target!(|input: Input| {
    if let Ok(image) = compile(&input.problem, &input.chip, input.tolerance) {
        let _ = image.hash();
        let _ = image.uniform_degree();
    }
});
