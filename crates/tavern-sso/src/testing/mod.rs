//! For tests: an OpenID provider (oidc-provider-mock, PyPI) started on a
//! loopback port and stopped by its pid when dropped, and a stand-in for
//! Discord's OAuth2 and API served in-process.

pub mod discord;
pub mod provider;
