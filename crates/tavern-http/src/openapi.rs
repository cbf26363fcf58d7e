//! The OpenAPI document's frame: its info and security scheme, and the
//! conventions every operation shares, written into the document once here
//! instead of on each handler: the error answers of authentication, of JSON
//! bodies and of query strings, and a description for every answer. Each
//! handler states who may call it with `x-tavern-access`, which the
//! authorization tests hold it to:
//! - `public`: anyone, no token;
//! - `user`: any signed-in user; the answer holds only what is theirs;
//! - `owner`: the owner of the world (or backup, session…) named, or an
//!   admin; to anyone else it does not exist (404);
//! - `self`: the user named, or an admin; anyone else is refused (403);
//! - `admin`: admins; a game master is refused (403).

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::Response;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::{Modify, OpenApi as _};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Tavern API", description = "Hosting Foundry VTT worlds for a community."),
    modifiers(&BearerAuth),
    components(schemas(
        tavern_api::shapes::Slug,
        tavern_api::shapes::Username,
        tavern_api::shapes::Release,
        tavern_api::shapes::Label,
        tavern_api::shapes::LicenseKeyText,
        tavern_api::shapes::Email,
        tavern_api::shapes::Webhook,
        tavern_api::shapes::Month,
        tavern_api::shapes::Password,
        tavern_api::shapes::DateTime,
        tavern_api::shapes::Role,
        tavern_api::shapes::WakeOnVisit,
        tavern_api::shapes::Runtime,
    )),
    security(("bearer" = []))
)]
pub(crate) struct ApiDoc;

/// The document's frame, before the routes' operations join it.
pub(crate) fn document() -> OpenApi {
    ApiDoc::openapi()
}

/// Writes the shared conventions into the finished document (with every
/// operation in it).
pub(crate) fn finish(doc: &mut OpenApi) {
    Conventions.modify(doc);
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

struct Conventions;

/// The description of an answer no handler describes.
fn describe(status: &str) -> &'static str {
    match status {
        "200" => "Done.",
        "201" => "Created.",
        "202" => "Accepted: the work goes on in the background.",
        "204" => "Done; nothing to answer.",
        "400" => "The request is malformed (its body or query string).",
        "401" => "No valid token: sign in first (`Authorization: Bearer …`).",
        "403" => "Not allowed for this user.",
        "404" => "No such thing, or not the caller's to see.",
        "409" => "It conflicts with how things stand now.",
        "413" => "The body is too large.",
        "415" => "The body is not `application/json`.",
        "422" => "A field is missing, of the wrong type, or not allowed.",
        "429" => "Too many attempts; wait (`Retry-After`).",
        "501" => "Not built for this setup.",
        _ => "An answer.",
    }
}

/// An error answer: `{"error":{"code","message"}}`.
fn error_response(status: &str) -> RefOr<Response> {
    let mut r = Response::new(describe(status));
    r.content.insert(
        "application/json".into(),
        RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody")))),
    );
    RefOr::T(r)
}

/// Whether an operation needs no token (`security(())`).
fn is_public(op: &Operation) -> bool {
    op.security.as_ref().is_some_and(|s| {
        s.iter()
            .all(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
    })
}

/// Whether an operation takes a JSON body.
fn takes_json(op: &Operation) -> bool {
    matches!(&op.request_body, Some(RefOr::T(b)) if b.content.contains_key("application/json"))
}

/// Whether an operation reads a query string.
fn takes_query(op: &Operation) -> bool {
    op.parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query)))
}

impl Modify for Conventions {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                let mut added: Vec<&str> = Vec::new();
                if !is_public(op) {
                    added.push("401");
                }
                if takes_json(op) {
                    added.extend(["400", "413", "415", "422"]);
                }
                if takes_query(op) {
                    added.push("400");
                }
                let responses = &mut op.responses.responses;
                for status in added {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(status));
                }
                for (status, r) in responses.iter_mut() {
                    if let RefOr::T(r) = r
                        && r.description.is_empty()
                    {
                        r.description = describe(status).to_owned();
                    }
                }
            }
        }
    }
}
