//! Route lines read into just what replay uses: node ids as indices,
//! violation names as bits, and the recorded cost terms and reasons only
//! when the replayed roles need them (serde types that borrow or skip).

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::device::Target;
use crate::engine::decide::route::VIOLATIONS;
use crate::policy::{CostTerms, Estimate, Ineligible};

/// A recorded candidate, as much of it as replay reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cand {
    pub target: Target,
    pub eligible: bool,
    /// One of its reasons is the host's own (read only when eligibility
    /// is replayed).
    pub host_reason: bool,
    pub estimate: Option<Estimate>,
    /// Its recorded cost terms (read only when the cost model is not
    /// replayed; a listed change reads them again from the line).
    pub cost: Option<CostTerms>,
    /// Its budget violations as bits of [`VIOLATIONS`].
    pub violations: u8,
    pub queue_has_room: Option<bool>,
    pub late_ok: bool,
}

/// A recorded routing decision.
#[derive(Debug, Clone)]
pub(super) struct RouteLine {
    pub t_ms: f64,
    pub job: u64,
    /// The node, by its index in [`NodeNames`] (`None`: no class of the
    /// header has it).
    pub node: Option<u32>,
    pub attempt: u32,
    pub chosen: Option<Target>,
    pub candidates: Vec<Cand>,
    /// Where the line is in its batch's text.
    pub span: Range<usize>,
}

/// Budget violation names, read as bits of [`VIOLATIONS`] (names this build
/// does not know are left out, as the engine's rule does).
#[derive(Default)]
struct Violations(u8);

impl<'de> Deserialize<'de> for Violations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bits;
        impl<'de> Visitor<'de> for Bits {
            type Value = Violations;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Violations, A::Error> {
                let mut bits = 0u8;
                while let Some(ViolationName(b)) = seq.next_element()? {
                    if let Some(b) = b {
                        bits |= 1 << b;
                    }
                }
                Ok(Violations(bits))
            }
        }
        d.deserialize_seq(Bits)
    }
}

/// One violation name: its bit, if this build knows it.
struct ViolationName(Option<u8>);

impl<'de> Deserialize<'de> for ViolationName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = ViolationName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ViolationName, E> {
                Ok(ViolationName(
                    VIOLATIONS.iter().position(|n| *n == v).map(|b| b as u8),
                ))
            }
        }
        d.deserialize_str(Name)
    }
}

/// Whether any of a candidate's recorded reasons is the host's own.
#[derive(Default)]
pub(super) struct HostReasons(bool);

impl<'de> Deserialize<'de> for HostReasons {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let reasons = Vec::<Ineligible>::deserialize(d)?;
        Ok(HostReasons(reasons.iter().any(host_reason)))
    }
}

/// The reasons only the host gives (not a policy): a candidate with one
/// stays out whatever replayed rules say.
fn host_reason(r: &Ineligible) -> bool {
    matches!(
        r,
        Ineligible::NotPresent
            | Ineligible::NotBuilt { .. }
            | Ineligible::Offline
            | Ineligible::Capacity { .. }
            | Ineligible::Precision { .. }
    ) || matches!(r, Ineligible::Failed { detail } if detail == "failed earlier for this node")
}

/// The recorded cost terms, or a skipped value.
pub(super) trait CostPart {
    fn terms(self) -> Option<CostTerms>;
}

impl CostPart for CostTerms {
    fn terms(self) -> Option<CostTerms> {
        Some(self)
    }
}

impl CostPart for IgnoredAny {
    fn terms(self) -> Option<CostTerms> {
        None
    }
}

/// The recorded reasons, or a skipped value.
pub(super) trait ReasonPart {
    fn host(&self) -> bool;
}

impl ReasonPart for HostReasons {
    fn host(&self) -> bool {
        self.0
    }
}

impl ReasonPart for IgnoredAny {
    fn host(&self) -> bool {
        false
    }
}

/// A candidate as written (`device` must be there, as for the full event).
#[derive(Deserialize)]
#[serde(bound(deserialize = "C: Deserialize<'de>, R: Deserialize<'de> + Default"))]
struct RawCand<C, R> {
    target: Target,
    #[allow(dead_code)]
    device: IgnoredAny,
    eligible: bool,
    #[serde(default)]
    reasons: R,
    #[serde(default)]
    estimate: Option<Estimate>,
    #[serde(default)]
    cost: Option<C>,
    #[serde(default)]
    violations: Violations,
    #[serde(default)]
    queue_has_room: Option<bool>,
    #[serde(default)]
    late_ok: bool,
}

/// The candidates of a route, straight into [`Cand`]s.
struct Cands<C, R>(Vec<Cand>, PhantomData<(C, R)>);

impl<'de, C, R> Deserialize<'de> for Cands<C, R>
where
    C: Deserialize<'de> + CostPart,
    R: Deserialize<'de> + Default + ReasonPart,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Seq<C, R>(PhantomData<(C, R)>);
        impl<'de, C, R> Visitor<'de> for Seq<C, R>
        where
            C: Deserialize<'de> + CostPart,
            R: Deserialize<'de> + Default + ReasonPart,
        {
            type Value = Cands<C, R>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cands<C, R>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(16));
                while let Some(c) = seq.next_element::<RawCand<C, R>>()? {
                    out.push(Cand {
                        target: c.target,
                        eligible: c.eligible,
                        host_reason: c.reasons.host(),
                        estimate: c.estimate,
                        cost: c.cost.and_then(CostPart::terms),
                        violations: c.violations.0,
                        queue_has_room: c.queue_has_room,
                        late_ok: c.late_ok,
                    });
                }
                Ok(Cands(out, PhantomData))
            }
        }
        d.deserialize_seq(Seq(PhantomData))
    }
}

/// A route event as written, with only what replay reads.
#[derive(Deserialize)]
#[serde(bound(
    deserialize = "'de: 'a, C: Deserialize<'de> + CostPart, R: Deserialize<'de> + Default + ReasonPart"
))]
struct RawRoute<'a, C, R> {
    t_ms: f64,
    job: u64,
    #[serde(borrow)]
    node: Cow<'a, str>,
    attempt: u32,
    chosen: Option<Target>,
    candidates: Cands<C, R>,
}

pub(super) fn route_as<'a, C, R>(
    line: &'a [u8],
    node_index: impl Fn(&str) -> Option<u32>,
    span: Range<usize>,
) -> Result<RouteLine, serde_json::Error>
where
    C: Deserialize<'a> + CostPart,
    R: Deserialize<'a> + Default + ReasonPart,
{
    let r: RawRoute<'a, C, R> = from_line(line)?;
    Ok(RouteLine {
        t_ms: r.t_ms,
        job: r.job,
        node: node_index(&r.node),
        attempt: r.attempt,
        chosen: r.chosen,
        candidates: r.candidates.0,
        span,
    })
}

/// The recorded cost terms of a route's candidates, read again from its
/// line (for a listed change, when they were skipped the first time).
pub(super) fn recorded_costs(line: &[u8]) -> Vec<Option<CostTerms>> {
    from_line::<RawRoute<'_, CostTerms, IgnoredAny>>(line.trim_ascii())
        .map(|r| r.candidates.0.iter().map(|c| c.cost).collect())
        .unwrap_or_default()
}

/// Parses a line as `T`. Checking the line's UTF-8 once spares the parser
/// checking every string and key; a line that is not UTF-8 is left to the
/// byte parser, which says where.
pub(super) fn from_line<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(line) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(line),
    }
}
