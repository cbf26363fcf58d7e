//! What a visitor gets from a world that is not running, and from an
//! address with no world: the standby page in the dashboard's look (its
//! state, steps while it starts, its next session, who may wake it and
//! what a player does; a Start button for its owner or an admin; a sign-in
//! form when nobody is signed in), the world woken on a visit as
//! `wake_on_visit` allows, the 404 page, and the endpoints under
//! `/_tavern/` (sign-in, start, the dashboard's sign-in handed over, and
//! the world's backups: [`crate::backups`]).
//! Sign-in and starts go to the core through the proxy's port
//! ([`crate::port`]), so the API's rate limits, ownership, quotas and audit
//! log apply; the session cookie holds an API token, the parent domain's
//! where browsers allow it.

use std::net::SocketAddr;

use askama::Template;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tavern_core::auth::SESSION_COOKIE as COOKIE;
use tavern_core::routes::Route;
use tavern_types::{DesiredState, ObservedState, Slug, WakeOnVisit};

use crate::body::{ProxyBody, plain};
use crate::port::{Note, SignedIn};
use crate::proxy::Proxy;

#[derive(Template)]
#[template(path = "standby.html")]
struct Page<'a> {
    name: &'a str,
    /// The world's state in the dashboard's words.
    state: &'static str,
    /// Seconds until the page looks again by itself, if it should.
    refresh: Option<u32>,
    /// While it starts: seconds since it began.
    starting_for: Option<i64>,
    /// While it starts: its server is coming up (a key is held).
    booting: bool,
    reason: Option<&'a str>,
    /// When the next session begins: machine-readable, and as people read it.
    next_session: Option<(String, String)>,
    note: Option<&'static str>,
    who_wakes: &'static str,
    owner: bool,
    can_start: bool,
    sign_in: bool,
    signed_in_as: Option<String>,
    prefix: &'a str,
    /// The dashboard's address, ending in `/`.
    site: String,
    /// Outside accounts to sign in with: (provider, label).
    ways: &'a [(String, String)],
    /// Passwords sign game masters in.
    passwords: bool,
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFound {
    site: String,
}

/// The world's state in the dashboard's words, and how soon the page
/// should look again (`None`: not by itself).
fn describe(route: &Route) -> (&'static str, Option<u32>) {
    let word = tavern_types::state_word(route.state, route.desired);
    (
        word,
        matches!(word, "starting" | "stopping" | "running").then_some(3),
    )
}

/// Who may wake a sleeping world, as the page says it.
fn who_wakes(policy: WakeOnVisit) -> &'static str {
    match policy {
        WakeOnVisit::Owner => {
            "Its game master: by visiting this address signed in, or from the Tavern dashboard. \
             It also starts by itself a little before a scheduled session."
        }
        WakeOnVisit::Anyone => "Anyone: a visit to this address wakes it.",
        WakeOnVisit::Off => {
            "Its game master, from the Tavern dashboard. \
             It also starts by itself a little before a scheduled session."
        }
    }
}

/// The sentence for a note; `signed_in` is only worth a word when the
/// sign-in did not take.
fn note_text(note: Note, signed_in: bool) -> Option<&'static str> {
    Some(match note {
        Note::SignedIn if signed_in => return None,
        Note::SignedIn => {
            "Your browser did not keep the sign-in: it refused Tavern's cookie. \
             Allow cookies for this site, then sign in again."
        }
        Note::HandoffExpired => {
            "That sign-in link has expired or is for another world; sign in here instead."
        }
        Note::SignInFailed => "Wrong username or password.",
        Note::RateLimited => "Too many sign-in attempts; wait a minute.",
        Note::NoLicenseFree => {
            "Every license key is in use right now; try again when a session ends."
        }
        Note::QuotaExceeded => "Your quota does not allow starting another world now.",
        Note::NotTheirs => "Only its game master can start this world.",
        Note::Unauthenticated => "Sign in first.",
        Note::Failed => "The world could not be started.",
    })
}

/// Back to the page at `back`, with `note` to tell.
fn see_note(back: &str, note: Note) -> Response<ProxyBody> {
    see_other(&format!("{back}?note={}", note.code()))
}

/// The styled page for an address where no world lives.
pub(crate) fn not_found(site: String) -> Response<ProxyBody> {
    let body = NotFound { site }
        .render()
        .unwrap_or_else(|_| "No world lives at this address.".to_owned());
    html(StatusCode::NOT_FOUND, body)
}

pub(crate) fn cookie(req: &Request<Incoming>) -> Option<String> {
    let values = req.headers().get_all(header::COOKIE);
    tavern_core::auth::cookie_value(values.iter().filter_map(|v| v.to_str().ok()), COOKIE)
        .map(str::to_owned)
}

pub(crate) fn see_other(location: &str) -> Response<ProxyBody> {
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

pub(crate) fn html(status: StatusCode, body: String) -> Response<ProxyBody> {
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
    /// The page for a world that is not running; a visit may wake it.
    pub(crate) async fn standby(
        &self,
        req: Request<Incoming>,
        route: &Route,
        prefix: &str,
    ) -> Response<ProxyBody> {
        let slug = route.slug.as_str();
        let token = cookie(&req);
        let mut signed_in_as = None;
        let mut owner = false;
        if let Some(t) = token.as_deref()
            && let Some(visitor) = self.tavern.visitor(t, &route.slug).await
        {
            signed_in_as = Some(visitor.username);
            owner = visitor.runs_it;
        }
        let signed_in = signed_in_as.is_some();
        let query_note = req.uri().query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "note")
                .and_then(|(_, v)| note_text(Note::from_code(&v), signed_in))
        });
        let sleeping =
            route.desired == DesiredState::Stopped && route.state == ObservedState::Stopped;
        let mut woke = false;
        let mut note = query_note;
        let policy = route.wake_on_visit.unwrap_or(self.settings.wake_on_visit);
        let wake = match policy {
            WakeOnVisit::Owner => owner,
            WakeOnVisit::Anyone => true,
            WakeOnVisit::Off => false,
        };
        if sleeping && wake && req.method() == Method::GET {
            let result = match (owner, token.as_deref()) {
                (true, Some(t)) => self.tavern.start(t, &route.slug).await,
                _ => self.tavern.wake_for_visitor(&route.slug).await,
            };
            match result {
                Ok(()) => woke = true,
                Err(refused) => note = note_text(refused, signed_in),
            }
        }
        let (state, mut refresh) = if woke {
            ("starting", Some(3))
        } else {
            describe(route)
        };
        // Someone who cannot wake it waits for its game master: the page
        // looks again now and then, and opens the world once it runs.
        if state == "sleeping" && !owner && policy != WakeOnVisit::Anyone {
            refresh = Some(30);
        }
        let starting = woke
            || (route.desired == DesiredState::Running
                && matches!(
                    route.state,
                    ObservedState::Stopped | ObservedState::Starting
                ));
        let page = Page {
            name: slug,
            state,
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
            booting: route.state == ObservedState::Starting,
            // Why it failed, for anyone; why it sleeps (who stopped it, or
            // how long it went without players), for its game master.
            reason: route
                .reason
                .as_deref()
                .filter(|_| route.state == ObservedState::Failed || (owner && state == "sleeping")),
            next_session: route.next_session.map(|t| {
                (
                    t.to_string(),
                    t.strftime("%A %-d %B %Y, %H:%M UTC").to_string(),
                )
            }),
            note,
            who_wakes: who_wakes(policy),
            owner,
            can_start: owner
                && !woke
                && (route.desired != DesiredState::Running || route.state == ObservedState::Failed),
            sign_in: !signed_in,
            signed_in_as,
            prefix,
            site: self.tavern.site_url(),
            ways: &self.settings.sign_in_ways,
            passwords: self.settings.passwords,
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
        slug: &Slug,
        prefix: &str,
        action: &str,
    ) -> Response<ProxyBody> {
        let back = format!("{prefix}/");
        if action == "handoff" {
            return self.handoff(&req, slug, prefix);
        }
        if let Some(rest) = action.strip_prefix("backups") {
            return self.world_backups(&req, slug, prefix, rest).await;
        }
        if req.method() != Method::POST {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "Use the form");
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
            return plain(StatusCode::FORBIDDEN, "Forbidden");
        }
        match action {
            "login" => {
                let form = match Limited::new(req.into_body(), 8 * 1024).collect().await {
                    Ok(c) => c.to_bytes(),
                    Err(_) => {
                        return plain(StatusCode::PAYLOAD_TOO_LARGE, "Too large");
                    }
                };
                let field = |name: &str| {
                    form_urlencoded::parse(&form)
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default()
                };
                let signed_in = self
                    .tavern
                    .sign_in(&field("username"), &field("password"), peer.ip())
                    .await;
                match signed_in {
                    Ok(SignedIn::Token(token)) => self.signed_in(&back, &token),
                    // On to the dashboard for the code, then back here
                    // through a handoff.
                    Ok(SignedIn::NeedsCode(path)) => {
                        let next = format!("/auth/handoff?world={slug}");
                        see_other(&format!(
                            "{}{path}&next={}",
                            self.tavern.site_url(),
                            form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                        ))
                    }
                    Err(refused) => see_note(&back, refused),
                }
            }
            "start" => {
                let Some(token) = cookie(&req) else {
                    return see_note(&back, Note::Unauthenticated);
                };
                match self.tavern.start(&token, slug).await {
                    Ok(()) => see_other(&back),
                    Err(refused) => see_note(&back, refused),
                }
            }
            _ => plain(StatusCode::NOT_FOUND, "Not found"),
        }
    }

    /// `GET <prefix>/_tavern/handoff?code=…[&to=backups]`: the dashboard's
    /// sign-in, carried over to this world's address (where the browser
    /// would not send the dashboard's cookie); then on to the world's page,
    /// or its backups.
    fn handoff(&self, req: &Request<Incoming>, slug: &Slug, prefix: &str) -> Response<ProxyBody> {
        let field = |name: &str| {
            req.uri().query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            })
        };
        // Only to a place of this world's address Tavern knows.
        let back = match field("to").as_deref() {
            Some("backups") => format!("{prefix}/_tavern/backups/"),
            _ => format!("{prefix}/"),
        };
        match field("code").and_then(|c| self.tavern.redeem_handoff(&c, slug)) {
            Some(token) => self.signed_in(&back, &token),
            None => see_note(&format!("{prefix}/"), Note::HandoffExpired),
        }
    }

    /// Back to the page, holding the session cookie `token`: for every
    /// world where the browser allows (a dotted domain), else for this
    /// address. The page is told to expect it, so that a browser that
    /// drops it is noticed.
    fn signed_in(&self, back: &str, token: &str) -> Response<ProxyBody> {
        let mut r = see_note(back, Note::SignedIn);
        let c = tavern_core::auth::cookie_line(
            COOKIE,
            token,
            30 * 24 * 3600,
            self.settings.scheme.is_secure(),
            tavern_core::auth::shared_cookie_domain(&self.settings.site.domain),
        );
        if let Ok(v) = HeaderValue::from_str(&c) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r
    }
}

#[cfg(test)]
mod tests {

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
            ("sleeping", None)
        );
        assert_eq!(
            describe(&route(ObservedState::Starting, DesiredState::Running)),
            ("starting", Some(3))
        );
        assert_eq!(
            describe(&route(ObservedState::Failed, DesiredState::Running)),
            ("failed", None)
        );
    }

    #[test]
    fn a_sign_in_that_took_needs_no_word_and_one_that_did_not_says_why() {
        assert_eq!(note_text(Note::SignedIn, true), None);
        assert!(note_text(Note::SignedIn, false).unwrap().contains("cookie"));
        assert!(note_text(Note::from_code("anything"), false).is_some());
    }

    fn page<'a>(reason: Option<&'a str>, sign_in: bool, owner: bool) -> Page<'a> {
        Page {
            name: "dragon",
            state: "failed",
            refresh: None,
            starting_for: None,
            booting: false,
            reason,
            next_session: None,
            note: None,
            who_wakes: who_wakes(WakeOnVisit::Owner),
            owner,
            can_start: owner,
            sign_in,
            signed_in_as: None,
            prefix: "",
            site: "http://localhost:8080/".into(),
            ways: &[],
            passwords: true,
        }
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let page = page(Some("crashed <5> times"), true, true)
            .render()
            .unwrap();
        assert!(
            page.contains("crashed &#60;5&#62; times") || page.contains("crashed &lt;5&gt; times"),
            "{page}"
        );
        assert!(page.contains("/_tavern/start") && page.contains("/_tavern/login"));
    }

    #[test]
    fn the_page_looks_like_the_dashboard_and_leads_back_to_it() {
        let html = page(None, true, false).render().unwrap();
        assert!(html.contains(r#"href="http://localhost:8080/static/dashboard.css""#));
        assert!(html.contains(r#"href="http://localhost:8080/dashboard""#));
        assert!(html.contains("auth/handoff?world=dragon"), "{html}");
        assert!(html.contains("Ask your game master"), "{html}");
        // With outside accounts on: each signs in, then on to the world.
        let ways = [("discord".to_owned(), "Discord".to_owned())];
        let html = Page {
            ways: &ways,
            ..page(None, true, false)
        }
        .render()
        .unwrap();
        assert!(
            html.contains(
                r#"href="http://localhost:8080/auth/sso/discord?next=%2Fauth%2Fhandoff%3Fworld%3Ddragon""#
            ) && html.contains("Sign in with Discord"),
            "{html}"
        );
        // With passwords off, no password form, only the ways.
        let html = Page {
            ways: &ways,
            passwords: false,
            ..page(None, true, false)
        }
        .render()
        .unwrap();
        assert!(!html.contains(r#"id="password""#), "{html}");
        assert!(html.contains("Sign in with Discord"), "{html}");
        // Its owner is not told to ask themselves.
        let own = page(None, false, true).render().unwrap();
        assert!(!own.contains("Ask your game master"), "{own}");
    }
}
