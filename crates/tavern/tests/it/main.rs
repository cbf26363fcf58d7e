//! Black-box tests of the `tavern` binary: a real server on a temp dir and a
//! loopback port, driven through its CLI and HTTP API.

mod acme;
mod authz;
mod backups;
mod bad_input;
mod dashboard;
mod deploy;
mod discord;
mod docker;
mod economy;
mod flood;
mod idle;
mod image;
mod invites;
mod isolation;
mod kofi;
mod kubernetes;
mod manifests;
mod notifications;
mod openapi;
mod pages;
mod postgres;
mod proxy;
mod releases;
mod runtime;
mod secrets;
mod serve;
mod standby;
mod stub;
mod support;
mod tls;
mod usage;
mod web;
