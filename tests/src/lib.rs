//! Support for the cross-crate scenarios in `tests/tests/`: the embedded app wired to the
//! sandbox (`harness`), and the contract suites every state/queue adapter must pass.

pub mod chaos;
pub mod chaos_refunds;
pub mod contract;
pub mod fleet;
pub mod harness;
pub mod moto;
