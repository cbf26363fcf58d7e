//! A world's backups on its own address (`<prefix>/_tavern/backups/`):
//! listed and downloaded, without Tavern's secrets, for its game master
//! and admins signed in with the session cookie; a sign-in link for
//! nobody signed in, and for anyone else the 404 page, as if it were not
//! there. Never passed to the world's server.

use askama::Template;
use futures_util::TryStreamExt as _;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tavern_types::Slug;

use crate::body::{BoxError, ProxyBody, plain};
use crate::port::Note;
use crate::proxy::Proxy;
use crate::standby::{cookie, html, not_found, see_other};

/// A backup as the page lists it.
struct Line {
    id: String,
    taken: String,
    kind: String,
    size: String,
    complete: bool,
    status: String,
}

#[derive(Template)]
#[template(path = "backups.html")]
struct Page<'a> {
    name: &'a str,
    prefix: &'a str,
    site: String,
    /// `None`: nobody is signed in.
    backups: Option<Vec<Line>>,
}

impl Proxy {
    /// `GET <prefix>/_tavern/backups/` and `…/backups/<id>[?format=zip]`;
    /// `rest` is what follows `backups`.
    pub(crate) async fn world_backups(
        &self,
        req: &Request<Incoming>,
        slug: &Slug,
        prefix: &str,
        rest: &str,
    ) -> Response<ProxyBody> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "Use GET");
        }
        let token = cookie(req);
        match rest {
            "" => see_other(&format!("{prefix}/_tavern/backups/")),
            "/" => self.backups_page(token.as_deref(), slug, prefix).await,
            id => {
                let zip = req.uri().query().is_some_and(|q| {
                    form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "format" && v == "zip")
                });
                let id = id.trim_start_matches('/');
                match self
                    .tavern
                    .world_backup(token.as_deref(), slug, id, zip)
                    .await
                {
                    Ok(d) => download(d),
                    Err(note) => self.refused(note, slug, prefix),
                }
            }
        }
    }

    async fn backups_page(
        &self,
        token: Option<&str>,
        slug: &Slug,
        prefix: &str,
    ) -> Response<ProxyBody> {
        let lines = match self.tavern.world_backups(token, slug).await {
            Ok(views) => views.iter().map(line).collect(),
            Err(note) => return self.refused(note, slug, prefix),
        };
        self.page(StatusCode::OK, slug, prefix, Some(lines))
    }

    /// Nobody signed in: where to sign in (401). Anyone else: the 404 page.
    fn refused(&self, note: Note, slug: &Slug, prefix: &str) -> Response<ProxyBody> {
        match note {
            Note::Unauthenticated => self.page(StatusCode::UNAUTHORIZED, slug, prefix, None),
            Note::NotTheirs => not_found(self.tavern.site_url()),
            _ => plain(
                StatusCode::CONFLICT,
                "That cannot be read now: the backup may not be complete yet, or this server takes no backups.",
            ),
        }
    }

    fn page(
        &self,
        status: StatusCode,
        slug: &Slug,
        prefix: &str,
        backups: Option<Vec<Line>>,
    ) -> Response<ProxyBody> {
        let page = Page {
            name: slug.as_str(),
            prefix,
            site: self.tavern.site_url(),
            backups,
        };
        match page.render() {
            Ok(body) => html(status, body),
            Err(e) => {
                tracing::error!(error = %e, "rendering a world's backups failed");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The page could not be drawn.",
                )
            }
        }
    }
}

fn line(v: &tavern_core::BackupView) -> Line {
    let b = &v.backup;
    Line {
        id: b.id.to_string(),
        taken: tavern_types::words::instant(b.created_at, &jiff::tz::TimeZone::UTC),
        kind: b.kind.to_string().replace('_', " "),
        size: b
            .archive
            .as_ref()
            .map(|a| tavern_types::words::size(a.size))
            .unwrap_or_default(),
        complete: b.status == tavern_types::BackupStatus::Complete,
        status: b.status.to_string().replace('_', " "),
    }
}

/// The archive as an attachment, streamed.
fn download(d: tavern_core::BackupDownload) -> Response<ProxyBody> {
    let (kind, disposition) = (d.content_type(), d.disposition());
    let body = StreamBody::new(
        d.stream
            .map_ok(Frame::data)
            .map_err(|e| Box::new(e) as BoxError),
    );
    let mut r = Response::new(body.boxed_unsync());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
