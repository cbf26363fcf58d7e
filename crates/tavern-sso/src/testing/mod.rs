//! For tests: an OpenID provider (oidc-provider-mock, PyPI) started on a
//! loopback port and stopped by its pid when dropped, and a stand-in for
//! Discord's OAuth2 and API served in-process.

pub mod discord;
pub mod provider;

/// A query parameter of a URL (where a provider sends the browser).
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
