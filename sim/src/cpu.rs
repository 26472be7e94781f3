//! Which instruction set the CPU kernels run with: runtime dispatch between
//! the baseline x86-64 build (SSE2) and AVX2 / AVX-512 builds of the same
//! kernels, for the host's spin kernel and this crate's block kernel.
//!
//! Every path compiles the *same* Rust source (a `#[inline(always)]` body
//! instantiated inside a `#[target_feature]` function), so each lane does
//! the same operations in the same order: integer arithmetic is exact, and
//! Rust never contracts `a * b + c` into an FMA, so the f32 results are the
//! same bits. The draws are therefore identical whichever path runs; tests
//! force each available path and compare draws hashes.
//!
//! The path is chosen once per process: `THERMOROUTE_CPU_KERNEL`
//! (`auto`, `baseline`, `avx2`, `avx512`) when set, else the best the CPU
//! supports. Runs can also be given a path explicitly (the benches do).

use std::sync::OnceLock;

/// The environment variable that picks a path.
pub const ENV: &str = "THERMOROUTE_CPU_KERNEL";

/// An instruction-set path of the CPU kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CpuKernel {
    /// The baseline x86-64 (SSE2) build, or the portable build elsewhere.
    Baseline,
    /// AVX2 (256-bit vectors).
    Avx2,
    /// AVX-512 F/BW/DQ/VL (512-bit vectors, 64-bit multiplies).
    Avx512,
}

/// A path that was asked for but cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpuKernelError {
    #[error("unknown CPU kernel {0:?} (expected auto, baseline, avx2 or avx512)")]
    Unknown(String),
    #[error("this CPU does not support the {0} kernel (available: {1})")]
    Unavailable(&'static str, String),
}

impl CpuKernel {
    /// Every path, slowest first.
    pub const ALL: [CpuKernel; 3] = [CpuKernel::Baseline, CpuKernel::Avx2, CpuKernel::Avx512];

    /// The name used in provenance, benches and `THERMOROUTE_CPU_KERNEL`.
    pub fn name(self) -> &'static str {
        match self {
            CpuKernel::Baseline => "baseline",
            CpuKernel::Avx2 => "avx2",
            CpuKernel::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            CpuKernel::Baseline => true,
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("avx2")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The paths this CPU can run, slowest first.
    pub fn available() -> Vec<CpuKernel> {
        CpuKernel::ALL
            .into_iter()
            .filter(|k| k.is_available())
            .collect()
    }

    /// The fastest path this CPU can run.
    pub fn detect() -> CpuKernel {
        *CpuKernel::available()
            .last()
            .expect("the baseline is always available")
    }

    /// Parses a path name; `auto` is `None` (detect).
    pub fn parse(name: &str) -> Result<Option<CpuKernel>, CpuKernelError> {
        let name = name.trim().to_ascii_lowercase();
        if name == "auto" || name.is_empty() {
            return Ok(None);
        }
        CpuKernel::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .map(Some)
            .ok_or(CpuKernelError::Unknown(name))
    }

    /// The path if this CPU can run it, else a typed error naming those it can.
    pub fn check(self) -> Result<CpuKernel, CpuKernelError> {
        if self.is_available() {
            Ok(self)
        } else {
            let names: Vec<&str> = CpuKernel::available().iter().map(|k| k.name()).collect();
            Err(CpuKernelError::Unavailable(self.name(), names.join(", ")))
        }
    }

    /// The path `THERMOROUTE_CPU_KERNEL` asks for (`None`: unset or `auto`).
    /// The CLI calls this at start-up so that a bad value is an error.
    pub fn from_env() -> Result<Option<CpuKernel>, CpuKernelError> {
        match std::env::var(ENV) {
            Ok(value) => CpuKernel::parse(&value)?.map(CpuKernel::check).transpose(),
            Err(_) => Ok(None),
        }
    }

    /// The path runs take unless told otherwise: `THERMOROUTE_CPU_KERNEL`
    /// when it names a path this CPU runs, else [`CpuKernel::detect`].
    /// Read once per process.
    pub fn active() -> CpuKernel {
        static ACTIVE: OnceLock<CpuKernel> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            CpuKernel::from_env()
                .ok()
                .flatten()
                .unwrap_or_else(CpuKernel::detect)
        })
    }
}

impl std::fmt::Display for CpuKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `$body` (an expression built from `#[inline(always)]` code) compiled
/// for the path `$kernel`: the baseline inline, AVX2 and AVX-512 inside
/// `#[target_feature]` functions. Names every captured variable with its
/// type, since the body becomes a function.
#[macro_export]
#[doc(hidden)]
macro_rules! cpu_dispatch {
    ($kernel:expr, ($($arg:ident : $ty:ty),* $(,)?) -> $ret:ty, $body:block) => {{
        #[inline(always)]
        fn __body($($arg: $ty),*) -> $ret $body
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        fn __avx2($($arg: $ty),*) -> $ret {
            __body($($arg),*)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2")]
        fn __avx512($($arg: $ty),*) -> $ret {
            __body($($arg),*)
        }
        match $kernel {
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            $crate::cpu::CpuKernel::Avx2 if $crate::cpu::CpuKernel::Avx2.is_available() => {
                // SAFETY: the guard just checked (cached by std) that this
                // CPU supports AVX2, the only feature `__avx2` enables.
                unsafe { __avx2($($arg),*) }
            }
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            $crate::cpu::CpuKernel::Avx512 if $crate::cpu::CpuKernel::Avx512.is_available() => {
                // SAFETY: the guard just checked (cached by std) that this
                // CPU supports AVX-512 F, BW, DQ, VL and AVX2, exactly the
                // features `__avx512` enables.
                unsafe { __avx512($($arg),*) }
            }
            _ => __body($($arg),*),
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_errors() {
        for k in CpuKernel::ALL {
            assert_eq!(CpuKernel::parse(k.name()), Ok(Some(k)));
        }
        assert_eq!(CpuKernel::parse("auto"), Ok(None));
        assert_eq!(CpuKernel::parse(" AVX2 "), Ok(Some(CpuKernel::Avx2)));
        assert_eq!(
            CpuKernel::parse("avx9"),
            Err(CpuKernelError::Unknown("avx9".into()))
        );
        assert!(CpuKernel::Baseline.is_available());
        assert_eq!(CpuKernel::detect(), *CpuKernel::available().last().unwrap());
        for k in CpuKernel::ALL {
            assert_eq!(k.check().is_ok(), k.is_available());
        }
    }

    #[test]
    fn dispatch_runs_the_same_body_on_every_path() {
        for k in CpuKernel::available() {
            let owned: Vec<f32> = (0..100).map(|i| i as f32 * 0.37).collect();
            let xs: &[f32] = &owned;
            let got = crate::cpu_dispatch!(k, (xs: &[f32]) -> Vec<f32>, {
                xs.iter().map(|x| x * 1.5 + 0.25).collect()
            });
            let want: Vec<f32> = xs.iter().map(|x| x * 1.5 + 0.25).collect();
            assert_eq!(got, want, "{k}");
        }
    }
}
