//! The embedded deployment and the operator CLI of ecwid-lightspeed-sync.
//!
//! [`embedded`] runs the same core services as the Lambda functions in one process: an axum
//! endpoint takes Ecwid webhooks, and a worker loop drains the queue into the sale poster.
//! State and queue live in one SQLite file.

pub mod bench;
pub mod connect;
pub mod cost_model;
pub mod demo;
pub mod doctor;
pub mod embedded;
pub mod lightspeed_auth;
pub mod ops;
pub mod sandbox_setup;
pub mod stock_jobs;
pub mod stock_webhooks;
pub mod sweep;
