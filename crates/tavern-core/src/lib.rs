//! Tavern's decisions and services. [`Tavern`] is the one service every edge
//! (HTTP API, CLI bootstrap, later the scheduler) calls: it checks who may do
//! what, validates input, and writes desired state through the Store port
//! with an audit event; the [`reconciler`] makes the Runtime port follow it.
//! It never imports a store adapter or an HTTP framework.

pub mod auth;
mod error;
pub mod policy;
pub mod reconciler;
pub mod secrets;
mod service;

pub use error::CoreError;
pub use service::{
    Caller, InstanceView, LicenseView, NewInstance, NewLicense, NewUser, Overview, RUNTIME_KINDS,
    Settings, Tavern,
};
