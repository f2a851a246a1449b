//! The pure core of ecwid-lightspeed-sync.
//!
//! Everything here is rules and data: the Ecwid order model, the mapping of an order to a
//! Lightspeed sale with exact decimal money, the order ledger's state machine, webhook
//! verification, the inventory mirror's stock rules, and the port traits that adapters
//! implement. No I/O happens in this crate; the services ([`poster::SalePoster`],
//! [`ingest::Ingestor`], [`inventory::mirror::InventoryMirror`]) only call ports.
//!
//! Rule ids (O1-O6, S1-S4, C1-C4, P1-P2) refer to the project's mission document.

pub mod auth;
pub mod connection;
pub mod customers;
pub mod deadline;
pub mod decimal;
pub mod doctor;
pub mod ecwid;
pub mod error;
/// Fakes of the APIs and the clock for the services' unit tests.
#[cfg(test)]
mod fakes;
/// Fuzz harnesses (`crates/fuzz`, the corpus test); not part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
pub mod ids;
pub mod ingest;
pub mod inventory;
pub mod jobs;
pub mod ledger;
pub mod lightspeed;
pub mod ls_webhooks;
pub mod mask;
/// Every state port in memory (tests, trying things out).
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod money;
pub mod ports;
pub mod poster;
pub mod retry;
pub mod settle;
pub mod setup;
pub mod sweep;
pub mod webhook;

pub use connection::{Connection, DomainPrefix, LightspeedAccount, Secret, Settings};
pub use error::{ApiError, QueueError, StoreError};
pub use ids::{Sku, StoreId};
pub use ledger::{LedgerEntry, OrderKey, OrderState, ReasonCode};
pub use ports::{
    Clock, ConnectionStore, Delivery, EcwidApi, InventoryStateStore, LedgerStore, LightspeedApi,
    LinkStore, OrderMessage, StateStore, SweepStateStore, WebhookEventStore, WorkQueue,
};
