//! What a visitor gets from a world that is not running: the standby page
//! (its name, its state, its next session; a Start button for its owner or
//! an admin; a sign-in form when nobody is signed in), the world woken on a
//! visit as `wake_on_visit` allows, and the forms' endpoints under
//! `/_tavern/`. Sign-in and starts go through the API itself, so rate
//! limits, ownership, quotas and the audit log apply; the session cookie
//! holds an API token and is scoped to the parent domain, so one sign-in
//! serves every world.

use std::net::SocketAddr;

use askama::Template;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tavern_core::auth::SESSION_COOKIE as COOKIE;
use tavern_core::routes::Route;
use tavern_types::{DesiredState, ObservedState, WakeOnVisit};

use crate::forward::{Peer, Proxy, ProxyBody};

#[derive(Template)]
#[template(path = "standby.html")]
struct Page<'a> {
    name: &'a str,
    what: &'a str,
    refresh: bool,
    /// While it starts: seconds since it began.
    starting_for: Option<i64>,
    reason: Option<&'a str>,
    next_session: Option<String>,
    note: Option<&'a str>,
    can_start: bool,
    sign_in: bool,
    prefix: &'a str,
}

/// What people read about the world's state, and whether the page should
/// look again soon.
fn describe(route: &Route) -> (&'static str, bool) {
    match (route.state, route.desired) {
        (ObservedState::Failed, _) => ("has failed", false),
        (_, DesiredState::Running) => ("is starting", true),
        (ObservedState::Stopping, _) => ("is going to sleep", true),
        _ => ("is sleeping", false),
    }
}

/// The sentence for a `note` code in the page's query.
fn note_text(code: &str) -> &'static str {
    match code {
        "signin_failed" => "Wrong username or password.",
        "rate_limited" => "Too many sign-in attempts; wait a minute.",
        "no_license_available" => "No license key is free right now; try again later.",
        "quota_exceeded" => "Your quota does not allow starting another world now.",
        "not_found" => "Only its owner can start this world.",
        "unauthenticated" => "Sign in first.",
        _ => "The world could not be started.",
    }
}

fn cookie(req: &Request<Incoming>) -> Option<String> {
    let values = req.headers().get_all(header::COOKIE);
    tavern_core::auth::cookie_value(values.iter().filter_map(|v| v.to_str().ok()), COOKIE)
        .map(str::to_owned)
}

fn see_other(location: &str) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn html(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl Proxy {
    /// Calls the API in-process, as the visitor; answers status and JSON.
    async fn call_api(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        peer: SocketAddr,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let bytes = match &body {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        let body: ProxyBody = Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync();
        let Ok(mut req) = b.body(body) else {
            return (StatusCode::BAD_REQUEST, Value::Null);
        };
        req.extensions_mut().insert(Peer(peer));
        let resp = crate::forward::call_api_service(&self.api, req).await;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// The page for a world that is not running; a visit may wake it.
    pub(crate) async fn standby(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        route: &Route,
        prefix: &str,
    ) -> Response<ProxyBody> {
        let slug = route.slug.as_str();
        let token = cookie(&req);
        let mut signed_in = false;
        let mut owner = false;
        if let Some(t) = token.as_deref() {
            signed_in = self
                .call_api(Method::GET, "/api/v1/auth/whoami", Some(t), None, peer)
                .await
                .0
                == StatusCode::OK;
            if signed_in {
                owner =
                    self.call_api(
                        Method::GET,
                        &format!("/api/v1/instances/{slug}"),
                        Some(t),
                        None,
                        peer,
                    )
                    .await
                    .0 == StatusCode::OK;
            }
        }
        let query_note = req.uri().query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "note")
                .map(|(_, v)| note_text(&v))
        });
        let sleeping =
            route.desired == DesiredState::Stopped && route.state == ObservedState::Stopped;
        let mut woke = false;
        let mut note = query_note;
        let wake = match route.wake_on_visit.unwrap_or(self.settings.wake_on_visit) {
            WakeOnVisit::Owner => owner,
            WakeOnVisit::Anyone => true,
            WakeOnVisit::Off => false,
        };
        if sleeping && wake && req.method() == Method::GET {
            let result = match (owner, token.as_deref()) {
                (true, Some(t)) => {
                    let (status, body) = self
                        .call_api(
                            Method::POST,
                            &format!("/api/v1/instances/{slug}/start"),
                            Some(t),
                            Some(json!({})),
                            peer,
                        )
                        .await;
                    if status.is_success() {
                        Ok(())
                    } else {
                        Err(body["error"]["code"].as_str().unwrap_or("").to_owned())
                    }
                }
                _ => self
                    .tavern
                    .wake_for_visitor(slug)
                    .await
                    .map_err(|e| e.code().to_owned()),
            };
            match result {
                Ok(()) => woke = true,
                Err(code) => note = Some(note_text(&code)),
            }
        }
        let (what, refresh) = if woke {
            ("is starting", true)
        } else {
            describe(route)
        };
        let starting = woke
            || (route.desired == DesiredState::Running
                && matches!(
                    route.state,
                    ObservedState::Stopped | ObservedState::Starting
                ));
        let page = Page {
            name: slug,
            what,
            refresh,
            starting_for: starting.then(|| {
                if woke {
                    0
                } else {
                    jiff::Timestamp::now()
                        .duration_since(route.since)
                        .as_secs()
                        .max(0)
                }
            }),
            reason: route
                .reason
                .as_deref()
                .filter(|_| route.state == ObservedState::Failed),
            next_session: route
                .next_session
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string()),
            note,
            can_start: owner
                && !woke
                && (route.desired != DesiredState::Running || route.state == ObservedState::Failed),
            sign_in: !signed_in,
            prefix,
        };
        let body = page.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "rendering the standby page failed");
            format!("{slug} is not running")
        });
        let mut r = html(StatusCode::SERVICE_UNAVAILABLE, body);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r
    }

    /// `POST <prefix>/_tavern/login` and `POST <prefix>/_tavern/start`.
    pub(crate) async fn tavern_form(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        slug: &str,
        prefix: &str,
        action: &str,
    ) -> Response<ProxyBody> {
        if req.method() != Method::POST {
            return crate::forward::plain(StatusCode::METHOD_NOT_ALLOWED, "Use the form");
        }
        // Forms are posted from the page itself; SameSite=Lax keeps the
        // cookie off other sites' posts, and a foreign Origin is refused.
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|h| h.to_str().ok());
        if let (Some(origin), Some(host)) = (origin, host)
            && origin.split_once("://").map(|(_, h)| h) != Some(host)
        {
            return crate::forward::plain(StatusCode::FORBIDDEN, "Forbidden");
        }
        let back = format!("{prefix}/");
        match action {
            "login" => {
                let form = match Limited::new(req.into_body(), 8 * 1024).collect().await {
                    Ok(c) => c.to_bytes(),
                    Err(_) => {
                        return crate::forward::plain(StatusCode::PAYLOAD_TOO_LARGE, "Too large");
                    }
                };
                let field = |name: &str| {
                    form_urlencoded::parse(&form)
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                let (status, body) = self
                    .call_api(
                        Method::POST,
                        "/api/v1/auth/login",
                        None,
                        Some(json!({"username": field("username"), "password": field("password")})),
                        peer,
                    )
                    .await;
                match body["token"].as_str() {
                    Some(token) if status == StatusCode::OK => {
                        let mut r = see_other(&back);
                        let c = tavern_core::auth::cookie_line(
                            COOKIE,
                            token,
                            30 * 24 * 3600,
                            self.settings.scheme == "https",
                            Some(&self.settings.site.domain),
                        );
                        if let Ok(v) = HeaderValue::from_str(&c) {
                            r.headers_mut().insert(header::SET_COOKIE, v);
                        }
                        r
                    }
                    _ if status == StatusCode::TOO_MANY_REQUESTS => {
                        see_other(&format!("{back}?note=rate_limited"))
                    }
                    _ => see_other(&format!("{back}?note=signin_failed")),
                }
            }
            "start" => {
                let Some(token) = cookie(&req) else {
                    return see_other(&format!("{back}?note=unauthenticated"));
                };
                let (status, body) = self
                    .call_api(
                        Method::POST,
                        &format!("/api/v1/instances/{slug}/start"),
                        Some(&token),
                        Some(json!({})),
                        peer,
                    )
                    .await;
                if status.is_success() {
                    see_other(&back)
                } else {
                    let code = body["error"]["code"].as_str().unwrap_or("failed");
                    see_other(&format!("{back}?note={code}"))
                }
            }
            _ => crate::forward::plain(StatusCode::NOT_FOUND, "Not found"),
        }
    }
}

#[cfg(test)]
mod tests {
    use tavern_types::Slug;

    use super::*;

    fn route(state: ObservedState, desired: DesiredState) -> Route {
        Route {
            slug: Slug::parse("dragon").unwrap(),
            upstream: None,
            state,
            since: jiff::Timestamp::now(),
            desired,
            reason: None,
            next_session: None,
            wake_on_visit: None,
        }
    }

    #[test]
    fn states_read_as_people_say_them() {
        assert_eq!(
            describe(&route(ObservedState::Stopped, DesiredState::Stopped)),
            ("is sleeping", false)
        );
        assert_eq!(
            describe(&route(ObservedState::Starting, DesiredState::Running)),
            ("is starting", true)
        );
        assert_eq!(
            describe(&route(ObservedState::Failed, DesiredState::Running)),
            ("has failed", false)
        );
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let page = Page {
            name: "dragon",
            what: "has failed",
            refresh: false,
            starting_for: None,
            reason: Some("crashed <5> times"),
            next_session: None,
            note: None,
            can_start: true,
            sign_in: true,
            prefix: "",
        }
        .render()
        .unwrap();
        assert!(
            page.contains("crashed &#60;5&#62; times") || page.contains("crashed &lt;5&gt; times"),
            "{page}"
        );
        assert!(page.contains("/_tavern/start") && page.contains("/_tavern/login"));
    }
}
