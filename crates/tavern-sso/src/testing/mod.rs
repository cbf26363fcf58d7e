//! For tests: an OpenID provider (oidc-provider-mock, PyPI) started on a
//! loopback port, stopped by its pid when dropped.

pub mod provider;
