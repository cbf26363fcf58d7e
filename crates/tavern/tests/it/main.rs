//! Black-box tests of the `tavern` binary: a real server on a temp dir and a
//! loopback port, driven through its CLI and HTTP API. The tests of a
//! driver or adapter that is a cargo feature (`docker`, `kubernetes`, `ecs`,
//! `postgres`, `s3`, `object-storage`) run in a build with it: `.ci/run` builds them all.

mod acme;
mod authz;
mod backups;
mod bad_input;
mod cli_sso;
mod dashboard;
mod deploy;
mod discord;
mod dns;
#[cfg(feature = "docker")]
mod docker;
mod economy;
#[cfg(feature = "ecs")]
mod ecs;
mod flood;
mod http2;
mod idle;
#[cfg(feature = "docker")]
mod image;
mod imports;
mod invites;
mod isolation;
mod kofi;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod layout;
#[cfg(feature = "kubernetes")]
mod manifests;
mod notifications;
mod openapi;
mod packages;
mod pages;
#[cfg(feature = "postgres")]
mod postgres;
mod proxy;
mod releases;
mod repository;
mod runtime;
mod second_factor;
mod secrets;
mod serve;
mod sso;
mod sso_discord;
mod standby;
#[cfg(feature = "object-storage")]
mod storage;
mod stub;
mod support;
mod tables;
mod tls;
mod usage;
mod web;
