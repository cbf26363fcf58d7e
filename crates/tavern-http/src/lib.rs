//! The HTTP side of `tavern serve` on the bare domain: the API (axum
//! handlers over the core service, the one place where `CoreError` becomes
//! an HTTP status, request limits, bearer authentication, the OpenAPI
//! document generated from the handlers) and the web dashboard.

mod api;
pub mod bot;
mod dashboard;
mod error;
mod extract;
mod hooks;
mod metrics;
mod openapi;
mod outside;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tavern_core::Tavern;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use error::ApiError;
pub use hooks::DiscordEdge;
pub use outside::{DiscordSignIn, OidcEdge, SignInWays};

/// HTTP knobs with sensible defaults.
#[derive(Clone)]
pub struct HttpSettings {
    /// Largest accepted request body (default 1 MiB).
    pub body_limit: usize,
    /// Discord's interactions (none: `/discord/interactions` is 404).
    pub discord: Option<DiscordEdge>,
    /// Signing in with an OpenID provider or Discord (none: only
    /// passwords).
    pub sign_in: SignInWays,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            discord: None,
            sign_in: SignInWays::default(),
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub tavern: Tavern,
    pub(crate) discord: Option<DiscordEdge>,
    pub(crate) sign_in: SignInWays,
}

/// The whole API as a router, ready to serve with client addresses
/// (`into_make_service_with_connect_info::<SocketAddr>()`).
pub fn router(tavern: Tavern, settings: HttpSettings) -> Router {
    let state = AppState {
        tavern,
        discord: settings.discord.clone(),
        sign_in: settings.sign_in.clone(),
    };
    let (api, mut openapi) = api::routes().split_for_parts();
    openapi::finish(&mut openapi);
    let openapi_json = std::sync::Arc::new(openapi);
    api.route("/metrics", axum::routing::get(metrics::metrics))
        .merge(dashboard::routes())
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = openapi_json.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .with_state(state)
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(
            TraceLayer::new_for_http()
                // The path only (a query may hold a signed link's token),
                // without an invitation's code.
                .make_span_with(|req: &axum::http::Request<_>| {
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %loggable_path(req.uri().path()),
                        version = ?req.version(),
                    )
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

/// A request path as it may be logged: an invitation's code (a secret
/// that makes accounts) is hidden.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    for prefix in ["/api/v1/invites/", "/auth/invite/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let (code, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let is_id = prefix.starts_with("/api") && tail.is_empty();
            if !code.is_empty() && !is_id {
                return format!("{prefix}***{tail}").into();
            }
        }
    }
    path.into()
}

/// How long a graceful shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn invitation_codes_are_not_logged() {
        assert_eq!(
            loggable_path("/api/v1/invites/s3cret/accept"),
            "/api/v1/invites/***/accept"
        );
        assert_eq!(loggable_path("/auth/invite/s3cret"), "/auth/invite/***");
        // An invitation's id (to withdraw it) is not a secret.
        assert_eq!(
            loggable_path("/api/v1/invites/0190-id"),
            "/api/v1/invites/0190-id"
        );
        assert_eq!(loggable_path("/api/v1/invites"), "/api/v1/invites");
        assert_eq!(loggable_path("/api/v1/instances/x"), "/api/v1/instances/x");
    }
}
