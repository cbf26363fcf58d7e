//! Pure decisions: no I/O, no clocks, no async. Each is a function of the
//! facts handed to it, with property tests for the invariants it keeps.

pub mod idle;
pub mod kept;
pub mod licenses;
pub mod notifications;
pub mod packages;
pub mod quotas;
pub mod reservations;
pub mod supporters;
pub mod usage;
