//! Backends that execute nodes. Only the CPU backend exists so far.

pub mod cpu;
