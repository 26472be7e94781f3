//! The TSU cycle-level simulator (chip config, TSU image format,
//! cycle/energy accounting, fault injection).
//!
//! Not built yet: this crate reserves its place in the workspace so that it
//! stays free of any dependency on the host. See the TSU issue for its scope.
