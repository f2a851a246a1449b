//! The subcommands of `els` (binary-only: argument structs and the handlers that parse, call
//! the library and print). `main.rs` dispatches to them.

pub mod api;
pub mod backend;
pub mod bench;
pub mod connect;
pub mod cost;
pub mod doctor;
pub mod inventory;
pub mod migrate;
pub mod orders;
pub mod restore;
pub mod serve;
pub mod settings;
pub mod sweep;
