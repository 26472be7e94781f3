//! The 0.2 cost model's `score` arguments written into guest memory in one
//! pass per value.
//!
//! Why: wasmtime's derived `Lower` writes a record one field at a time, and
//! each field looks up the instance's memory and its canonical-ABI offset
//! again. A 0.2 decision has about 110 fields, so that bookkeeping cost more
//! than the guest's own work. Here the layout is computed at compile time
//! (the canonical ABI's rules, checked against wasmtime's sizes and
//! alignments below) and the memory is looked up once per value.
//!
//! The same bytes land in the same places, and the guest's `realloc` is
//! called in the same order as the derived path, as the suite's
//! `fast_lowering` test checks against an echoing guest. Anything this
//! path does not cover (a guest asking for UTF-16 strings) goes through the
//! derived `Lower`.

use std::mem::MaybeUninit;

use wasmtime::Store;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext, wasmtime_environ,
};
use wasmtime::component::{ComponentType, Lower, TypedFunc};

use super::bindings::v0_2::cost_model::{
    Candidate, CostTerms, Decision, Estimate, Guest, RiskPenalties, Weights,
};
use super::bindings::v0_2::types::{
    BudgetShare, DeviceState, Health, JobContext, Learned, NodeKind, NodeSummary, Priority,
    ProgramSummary, Qos, Risk, Target,
};
use super::sandbox::Sandbox;

/// The longest string the canonical ABI copies (wasmtime's own limit).
const MAX_STRING_BYTES: usize = (1 << 31) - 1;

/// `at` rounded up to a multiple of `align` (a power of two).
const fn align_to(at: usize, align: usize) -> usize {
    (at + align - 1) & !(align - 1)
}

/// The guest addresses and lengths of a value's strings and lists, in the
/// order the value lists them: filled by [`Flat::place`], read back by
/// [`Flat::write`].
#[derive(Default)]
struct Pointers {
    slots: [(u32, u32); 8],
    len: usize,
    next: usize,
}

impl Pointers {
    fn push(&mut self, ptr: usize, len: usize) -> wasmtime::Result<()> {
        let slot = self
            .slots
            .get_mut(self.len)
            .ok_or_else(|| wasmtime::format_err!("too many strings and lists in one value"))?;
        *slot = (u32::try_from(ptr)?, u32::try_from(len)?);
        self.len += 1;
        Ok(())
    }

    fn pop(&mut self) -> (u32, u32) {
        let slot = self.slots[self.next];
        self.next += 1;
        slot
    }
}

/// A value with a fixed canonical-ABI layout in a 32-bit memory.
trait Flat {
    /// Bytes the value takes.
    const SIZE: usize;
    /// Its alignment.
    const ALIGN: usize;
    /// Whether it holds strings or lists (which [`Flat::place`] allocates).
    const INDIRECT: bool = false;

    /// Allocates and fills this value's strings and lists in the guest, in
    /// the derived path's order, recording where they went.
    fn place<T: 'static>(
        &self,
        _cx: &mut LowerContext<'_, T>,
        _out: &mut Pointers,
    ) -> wasmtime::Result<()> {
        Ok(())
    }

    /// Writes the value at `off`, taking its strings' and lists' addresses
    /// from `ptrs`.
    fn write(&self, mem: &mut [u8], off: usize, ptrs: &mut Pointers);
}

macro_rules! flat_number {
    ($($ty:ty),*) => {$(
        impl Flat for $ty {
            const SIZE: usize = std::mem::size_of::<$ty>();
            const ALIGN: usize = std::mem::size_of::<$ty>();
            #[inline(always)]
            fn write(&self, mem: &mut [u8], off: usize, _: &mut Pointers) {
                mem[off..off + Self::SIZE].copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
flat_number!(u32, u64, f64);

impl Flat for bool {
    const SIZE: usize = 1;
    const ALIGN: usize = 1;
    #[inline(always)]
    fn write(&self, mem: &mut [u8], off: usize, _: &mut Pointers) {
        mem[off] = u8::from(*self);
    }
}

/// WIT enums: one byte, the case's index (the generated enums are
/// `repr(u8)` in WIT order).
macro_rules! flat_enum {
    ($($ty:ty),*) => {$(
        impl Flat for $ty {
            const SIZE: usize = 1;
            const ALIGN: usize = 1;
            #[inline(always)]
            fn write(&self, mem: &mut [u8], off: usize, _: &mut Pointers) {
                mem[off] = *self as u8;
            }
        }
    )*};
}

impl<V: Flat> Flat for Option<V> {
    const SIZE: usize = align_to(align_to(1, V::ALIGN) + V::SIZE, V::ALIGN);
    const ALIGN: usize = V::ALIGN;
    const INDIRECT: bool = V::INDIRECT;

    fn place<T: 'static>(
        &self,
        cx: &mut LowerContext<'_, T>,
        out: &mut Pointers,
    ) -> wasmtime::Result<()> {
        match self {
            Some(v) => v.place(cx, out),
            None => Ok(()),
        }
    }

    #[inline(always)]
    fn write(&self, mem: &mut [u8], off: usize, ptrs: &mut Pointers) {
        match self {
            None => mem[off] = 0,
            Some(v) => {
                mem[off] = 1;
                v.write(mem, off + align_to(1, V::ALIGN), ptrs);
            }
        }
    }
}

impl Flat for String {
    const SIZE: usize = 8;
    const ALIGN: usize = 4;
    const INDIRECT: bool = true;

    fn place<T: 'static>(
        &self,
        cx: &mut LowerContext<'_, T>,
        out: &mut Pointers,
    ) -> wasmtime::Result<()> {
        if self.len() > MAX_STRING_BYTES {
            return Err(wasmtime::format_err!(
                "string length of {} too large to copy into wasm",
                self.len()
            ));
        }
        let ptr = cx.realloc(0, 0, 1, self.len())?;
        cx.as_slice_mut()[ptr..][..self.len()].copy_from_slice(self.as_bytes());
        out.push(ptr, self.len())
    }

    #[inline(always)]
    fn write(&self, mem: &mut [u8], off: usize, ptrs: &mut Pointers) {
        let (ptr, len) = ptrs.pop();
        ptr.write(mem, off, ptrs);
        len.write(mem, off + 4, ptrs);
    }
}

/// Lists of values without strings or lists of their own: one allocation,
/// then every element written with the memory looked up once.
impl<V: Flat> Flat for Vec<V> {
    const SIZE: usize = 8;
    const ALIGN: usize = 4;
    const INDIRECT: bool = true;

    fn place<T: 'static>(
        &self,
        cx: &mut LowerContext<'_, T>,
        out: &mut Pointers,
    ) -> wasmtime::Result<()> {
        let ptr = place_list(cx, self)?;
        out.push(ptr, self.len())
    }

    #[inline(always)]
    fn write(&self, mem: &mut [u8], off: usize, ptrs: &mut Pointers) {
        let (ptr, len) = ptrs.pop();
        ptr.write(mem, off, ptrs);
        len.write(mem, off + 4, ptrs);
    }
}

/// Allocates `items` in the guest and writes them; their address.
fn place_list<T: 'static, V: Flat>(
    cx: &mut LowerContext<'_, T>,
    items: &[V],
) -> wasmtime::Result<usize> {
    const { assert!(!V::INDIRECT, "list elements must not hold strings or lists") };
    let bytes = items
        .len()
        .checked_mul(V::SIZE)
        .ok_or_else(|| wasmtime::format_err!("list too large"))?;
    let ptr = cx.realloc(0, 0, V::ALIGN as u32, bytes)?;
    let mem = cx.as_slice_mut();
    let mut none = Pointers::default();
    for (i, item) in items.iter().enumerate() {
        item.write(mem, ptr + i * V::SIZE, &mut none);
    }
    Ok(ptr)
}

/// A WIT record: fields in WIT order, laid out by the canonical ABI.
macro_rules! flat_record {
    ($ty:ty { $($field:ident: $fty:ty),* $(,)? }) => {
        impl Flat for $ty {
            const ALIGN: usize = {
                let mut a = 1;
                $(if <$fty as Flat>::ALIGN > a { a = <$fty as Flat>::ALIGN; })*
                a
            };
            const SIZE: usize = {
                let mut at = 0;
                $(at = align_to(at, <$fty as Flat>::ALIGN) + <$fty as Flat>::SIZE;)*
                align_to(at, Self::ALIGN)
            };
            const INDIRECT: bool = false $(|| <$fty as Flat>::INDIRECT)*;

            #[allow(unused_variables)]
            fn place<T: 'static>(
                &self,
                cx: &mut LowerContext<'_, T>,
                out: &mut Pointers,
            ) -> wasmtime::Result<()> {
                $(if <$fty as Flat>::INDIRECT { self.$field.place(cx, out)?; })*
                Ok(())
            }

            #[inline(always)]
            fn write(&self, mem: &mut [u8], off: usize, ptrs: &mut Pointers) {
                let mut at = 0;
                $(
                    at = align_to(at, <$fty as Flat>::ALIGN);
                    self.$field.write(mem, off + at, ptrs);
                    at += <$fty as Flat>::SIZE;
                )*
                let _ = at;
            }
        }
        // The layout above must be wasmtime's.
        const _: () = {
            assert!(<$ty as Flat>::SIZE == <$ty as ComponentType>::SIZE32);
            assert!(<$ty as Flat>::ALIGN == <$ty as ComponentType>::ALIGN32 as usize);
        };
    };
}

/// The records and enums both package versions share, laid out for the
/// version whose types are in scope.
macro_rules! shared_layouts {
    () => {
        flat_enum!(NodeKind, Target, Risk, Priority);
        flat_record!(ProgramSummary {
            n_vars: u64,
            n_spins: u64,
            n_categorical: u64,
            n_factors: u64,
            n_constraints: u64,
            n_edges: u64,
            n_clamped: u64,
            runtime_conditioning: bool,
            chains: u64,
            samples: u64,
            sweeps_per_chain: u64,
            updates: f64,
        });
        flat_record!(NodeSummary {
            kind: NodeKind,
            class: String,
            flops: f64,
            bytes: f64,
            program: Option<ProgramSummary>,
        });
        flat_record!(Weights {
            latency: f64,
            energy: f64,
            error: f64,
            risk: f64,
        });
        flat_record!(RiskPenalties {
            tsu_irreversible: f64,
            gpu_sim_irreversible: f64,
        });
        flat_record!(Estimate {
            latency_p50_ms: f64,
            latency_p95_ms: f64,
            queue_wait_ms: f64,
            energy_j: f64,
            error: f64,
        });
        flat_record!(Candidate {
            target: Target,
            estimate: Estimate,
        });
    };
}

flat_enum!(Health);
shared_layouts!();

flat_record!(Qos {
    latency_p50_ms: Option<f64>,
    latency_p95_ms: Option<f64>,
    energy_j: Option<f64>,
    energy_relative: Option<f64>,
    energy_budget_j: Option<f64>,
    max_error: Option<f64>,
    risk: Risk,
    priority: Priority,
});
flat_record!(JobContext {
    id: u64,
    class: String,
    arrival_ms: f64,
    now_ms: f64,
    energy_spent_j: f64,
    energy_remaining_j: Option<f64>,
});
flat_record!(BudgetShare {
    deadline_ms: Option<f64>,
    latency_ms: Option<f64>,
    energy_j: Option<f64>,
    timeout_ms: Option<f64>,
});
flat_record!(Learned {
    count: u64,
    mean_ms: f64,
    p95_ms: f64,
});
flat_record!(DeviceState {
    target: Target,
    queue_depth: u32,
    running: u32,
    room: u32,
    health: Health,
    learned: Option<Learned>,
});
flat_record!(Decision {
    node: NodeSummary,
    node_id: String,
    qos: Qos,
    job: JobContext,
    share: BudgetShare,
    weights: Weights,
    penalties: RiskPenalties,
    devices: Vec<DeviceState>,
});
/// Whether `cx` is a lowering this module's layout covers: UTF-8 strings
/// (every guest toolchain we know uses them; a component may ask for
/// UTF-16, which the derived path handles).
fn covered<T: 'static>(cx: &LowerContext<'_, T>) -> bool {
    matches!(
        cx.options().string_encoding,
        wasmtime_environ::component::StringEncoding::Utf8
    )
}

/// A record argument lowered by this module (`$name(&$ty)`), and a list
/// argument (`$list(&[$elem])`), both carrying the wrapped types' type
/// information.
macro_rules! fast_arguments {
    ($name:ident($ty:ty), $list:ident([$elem:ty]), $guest:ty => $answer:ty) => {
        /// Calls `guest`'s `score` with its arguments lowered by this module.
        pub(in crate::plugin) fn score(
            store: &mut Store<Sandbox>,
            guest: &$guest,
            decision: &$ty,
            candidates: &[$elem],
        ) -> wasmtime::Result<$answer> {
            // SAFETY: the wrappers carry `(&$ty, &[$elem])`'s type
            // information, which the generated bindings typechecked
            // `score` against when they loaded `guest`.
            #[allow(unsafe_code)]
            let score = unsafe {
                TypedFunc::<($name<'_>, $list<'_>), ($answer,)>::new_unchecked(
                    *guest.func_score().func(),
                )
            };
            let (answer,) = score.call(store, ($name(decision), $list(candidates)))?;
            Ok(answer)
        }

        /// A record argument lowered by this module.
        pub(in crate::plugin) struct $name<'a>(pub(in crate::plugin) &'a $ty);

        /// A list argument lowered by this module.
        pub(in crate::plugin) struct $list<'a>(pub(in crate::plugin) &'a [$elem]);

        // SAFETY: the type information is the wrapped type's, whose
        // canonical-ABI layout `Flat` reproduces (checked at compile time
        // above and by the suite's `fast_lowering` tests).
        #[allow(unsafe_code)]
        unsafe impl ComponentType for $name<'_> {
            type Lower = <$ty as ComponentType>::Lower;
            const ABI: CanonicalAbiInfo = <$ty as ComponentType>::ABI;

            fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
                <$ty as ComponentType>::typecheck(ty, types)
            }
        }

        // SAFETY: writes only inside the allocation wasmtime made for the
        // arguments (at `offset`) and inside allocations the guest's
        // `realloc` returned (bounds-checked by wasmtime); every slice
        // access is checked.
        #[allow(unsafe_code)]
        unsafe impl Lower for $name<'_> {
            fn linear_lower_to_flat<T>(
                &self,
                cx: &mut LowerContext<'_, T>,
                ty: InterfaceType,
                dst: &mut MaybeUninit<Self::Lower>,
            ) -> wasmtime::Result<()> {
                self.0.linear_lower_to_flat(cx, ty, dst)
            }

            fn linear_lower_to_memory<T>(
                &self,
                cx: &mut LowerContext<'_, T>,
                ty: InterfaceType,
                offset: usize,
            ) -> wasmtime::Result<()> {
                if !covered(cx) {
                    return self.0.linear_lower_to_memory(cx, ty, offset);
                }
                let mut ptrs = Pointers::default();
                self.0.place(cx, &mut ptrs)?;
                self.0.write(cx.as_slice_mut(), offset, &mut ptrs);
                Ok(())
            }
        }

        // SAFETY: as above, with `[$elem]`'s type information.
        #[allow(unsafe_code)]
        unsafe impl ComponentType for $list<'_> {
            type Lower = <[$elem] as ComponentType>::Lower;
            const ABI: CanonicalAbiInfo = <[$elem] as ComponentType>::ABI;

            fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
                <[$elem] as ComponentType>::typecheck(ty, types)
            }
        }

        // SAFETY: as above.
        #[allow(unsafe_code)]
        unsafe impl Lower for $list<'_> {
            fn linear_lower_to_flat<T>(
                &self,
                cx: &mut LowerContext<'_, T>,
                ty: InterfaceType,
                dst: &mut MaybeUninit<Self::Lower>,
            ) -> wasmtime::Result<()> {
                self.0.linear_lower_to_flat(cx, ty, dst)
            }

            fn linear_lower_to_memory<T>(
                &self,
                cx: &mut LowerContext<'_, T>,
                _ty: InterfaceType,
                offset: usize,
            ) -> wasmtime::Result<()> {
                let ptr = place_list(cx, self.0)?;
                let mem = cx.as_slice_mut();
                let mut none = Pointers::default();
                u32::try_from(ptr)?.write(mem, offset, &mut none);
                u32::try_from(self.0.len())?.write(mem, offset + 4, &mut none);
                Ok(())
            }
        }
    };
}

fast_arguments!(
    FastDecision(Decision),
    FastCandidates([Candidate]),
    Guest => Result<Vec<CostTerms>, String>
);

/// The same for the frozen 0.1.0 package's `score`.
pub(super) mod v1 {
    use std::mem::MaybeUninit;

    use wasmtime::Store;
    use wasmtime::component::__internal::{
        CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext,
    };
    use wasmtime::component::{ComponentType, Lower, TypedFunc};

    use super::super::bindings::v0_1::cost_model::{
        Candidate, CostTerms, Decision, Estimate, Guest, RiskPenalties, Weights,
    };
    use super::super::bindings::v0_1::types::{
        NodeKind, NodeSummary, Priority, ProgramSummary, Qos, Risk, Target,
    };
    use super::super::sandbox::Sandbox;
    use super::{Flat, Pointers, align_to, covered, place_list};

    shared_layouts!();
    flat_record!(Qos {
        latency_p50_ms: Option<f64>,
        latency_p95_ms: Option<f64>,
        energy_j: Option<f64>,
        max_error: Option<f64>,
        risk: Risk,
        priority: Priority,
    });
    flat_record!(Decision {
        node: NodeSummary,
        qos: Qos,
        weights: Weights,
        penalties: RiskPenalties,
    });
    fast_arguments!(
        FastDecision(Decision),
        FastCandidates([Candidate]),
        Guest => Result<Vec<CostTerms>, String>
    );
}
