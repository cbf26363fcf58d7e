//! Tavern's decisions and services. [`Tavern`] is the one service every edge
//! (HTTP API, CLI bootstrap, later the scheduler) calls: it checks who may do
//! what, validates input, and writes through the Store port with an audit
//! event. It never imports an adapter or an HTTP framework.

pub mod auth;
mod error;
pub mod reconciler;
pub mod secrets;
mod service;

pub use error::CoreError;
pub use service::{
    Caller, InstanceView, LicenseView, NewInstance, NewLicense, NewUser, RUNTIME_KINDS, Settings,
    Tavern,
};
