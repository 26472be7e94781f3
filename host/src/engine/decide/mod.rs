//! The engine's decisions as pure functions: plain data in (candidates and
//! estimates, queue snapshots, budgets, evidence), a decision out. Only the
//! event loop in the parent module mutates state and writes the trace, so
//! each decision is tested here on hand-built inputs.

pub mod admit;
pub mod explain;
pub mod gate;
pub mod route;
pub mod sampling;
