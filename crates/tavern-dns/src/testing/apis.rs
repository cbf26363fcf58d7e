//! Stand-ins for Cloudflare's and DigitalOcean's DNS APIs on a loopback
//! port, for tests: they answer the documented requests as the providers
//! do (their paths, filters, bodies, errors and limits), keep records in
//! memory, and write down every request they were sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::{Value, json};

/// The token the stand-ins take.
pub const TOKEN: &str = "stand-in-token-1234";
/// The Cloudflare zone's id.
pub const ZONE_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";

#[derive(Clone, Debug)]
struct Stored {
    id: u64,
    /// The full name, lower case, without its final dot.
    name: String,
    kind: String,
    data: String,
    ttl: u64,
}

#[derive(Default)]
struct Inner {
    records: Vec<Stored>,
    next_id: u64,
    requests: Vec<String>,
    down: bool,
}

#[derive(Clone)]
struct Shared {
    zone: String,
    inner: Arc<Mutex<Inner>>,
}

/// One provider's stand-in, stopped when dropped.
pub struct StandIn {
    /// The API's root, as a driver's `api_url`.
    pub url: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl StandIn {
    /// Cloudflare's API (v4) for the zone `zone`.
    pub async fn cloudflare(zone: &str) -> StandIn {
        let router = Router::new()
            .route("/client/v4/zones", get(cf_zones))
            .route(
                "/client/v4/zones/{zone}/dns_records",
                get(cf_list).post(cf_create),
            )
            .route(
                "/client/v4/zones/{zone}/dns_records/{id}",
                delete(cf_delete),
            );
        Self::serve(zone, router, "/client/v4").await
    }

    /// DigitalOcean's API (v2) holding the domain `zone`.
    pub async fn digitalocean(zone: &str) -> StandIn {
        let router = Router::new()
            .route("/v2/domains/{domain}/records", get(do_list).post(do_create))
            .route("/v2/domains/{domain}/records/{id}", delete(do_delete));
        Self::serve(zone, router, "/v2").await
    }

    async fn serve(zone: &str, router: Router<Shared>, root: &str) -> StandIn {
        let shared = Shared {
            zone: zone.to_ascii_lowercase(),
            inner: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router.with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandIn {
            url: format!("http://{addr}{root}"),
            shared,
            server,
        }
    }

    /// Every request so far, one line each: method, path and query, body.
    pub fn requests(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().requests.clone()
    }

    /// Every record held, `name kind data ttl`, sorted.
    pub fn records(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .shared
            .inner
            .lock()
            .unwrap()
            .records
            .iter()
            .map(|r| format!("{} {} {} {}", r.name, r.kind, r.data, r.ttl))
            .collect();
        all.sort();
        all
    }

    /// While down, every request is answered 503.
    pub fn set_down(&self, down: bool) {
        self.shared.inner.lock().unwrap().down = down;
    }
}

/// Writes the request down; the answer when it must go no further
/// (down, or without the token).
fn note(
    s: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    unauthorized: Value,
) -> Option<Response> {
    let mut inner = s.inner.lock().unwrap();
    let body = String::from_utf8_lossy(body);
    inner
        .requests
        .push(format!("{method} {uri} {body}").trim_end().to_owned());
    if inner.down {
        return Some((StatusCode::SERVICE_UNAVAILABLE, "down for the test").into_response());
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (bearer != Some(TOKEN)).then(|| {
        let status = match unauthorized.get("id") {
            Some(_) => StatusCode::UNAUTHORIZED,
            None => StatusCode::FORBIDDEN,
        };
        (status, axum::Json(unauthorized)).into_response()
    })
}

fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// Whether a record of `kind` may join what `name` holds: an alias
/// stands alone (RFC 1034 §3.6.2).
fn conflicts(records: &[Stored], name: &str, kind: &str) -> bool {
    records.iter().any(|r| {
        r.name == name
            && matches!(
                (kind, r.kind.as_str()),
                ("CNAME", "A" | "AAAA" | "CNAME") | ("A" | "AAAA", "CNAME")
            )
    })
}

fn valid_data(kind: &str, data: &str) -> bool {
    match kind {
        "A" => data.parse::<std::net::Ipv4Addr>().is_ok(),
        "AAAA" => data.parse::<std::net::Ipv6Addr>().is_ok(),
        "CNAME" => !data.is_empty() && !data.contains(' '),
        "TXT" => data.len() <= 2048,
        _ => false,
    }
}

fn filtered(inner: &Inner, q: &HashMap<String, String>) -> Vec<Stored> {
    inner
        .records
        .iter()
        .filter(|r| {
            q.get("name")
                .is_none_or(|n| n.trim_end_matches('.').eq_ignore_ascii_case(&r.name))
                && q.get("type").is_none_or(|t| *t == r.kind)
        })
        .cloned()
        .collect()
}

// Cloudflare: `{success, errors, messages, result}` around everything.

fn cf_error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "success": false,
            "errors": [{"code": code, "message": message}],
            "messages": [],
            "result": null,
        })),
    )
        .into_response()
}

fn cf_ok(result: Value) -> Response {
    axum::Json(json!({"success": true, "errors": [], "messages": [], "result": result}))
        .into_response()
}

fn cf_record(zone: &str, r: &Stored) -> Value {
    json!({
        "id": format!("{:032x}", r.id),
        "zone_id": ZONE_ID,
        "zone_name": zone,
        "name": r.name,
        "type": r.kind,
        "content": r.data,
        "proxiable": r.kind != "TXT",
        "proxied": false,
        "ttl": r.ttl,
    })
}

fn cf_unauthorized() -> Value {
    json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]})
}

async fn cf_zones(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = note(&s, &method, &uri, &headers, b"", cf_unauthorized()) {
        return r;
    }
    let found = q
        .get("name")
        .is_none_or(|n| n.eq_ignore_ascii_case(&s.zone));
    let zones = match found {
        true => json!([{"id": ZONE_ID, "name": s.zone, "status": "active"}]),
        false => json!([]),
    };
    cf_ok(zones)
}

async fn cf_list(
    State(s): State<Shared>,
    Path(zone): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = note(&s, &method, &uri, &headers, b"", cf_unauthorized()) {
        return r;
    }
    if zone != ZONE_ID {
        return cf_error(
            StatusCode::NOT_FOUND,
            7003,
            "Could not route to /zones, perhaps your object identifier is invalid?",
        );
    }
    let inner = s.inner.lock().unwrap();
    let list: Vec<Value> = filtered(&inner, &q)
        .iter()
        .map(|r| cf_record(&s.zone, r))
        .collect();
    cf_ok(Value::Array(list))
}

async fn cf_create(
    State(s): State<Shared>,
    Path(zone): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = note(&s, &method, &uri, &headers, &body, cf_unauthorized()) {
        return r;
    }
    if zone != ZONE_ID {
        return cf_error(
            StatusCode::NOT_FOUND,
            7003,
            "Could not route to /zones, perhaps your object identifier is invalid?",
        );
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return cf_error(StatusCode::BAD_REQUEST, 9207, "Request body is invalid.");
    };
    let (Some(kind), Some(name), Some(content)) = (
        b["type"].as_str(),
        b["name"].as_str(),
        b["content"].as_str(),
    ) else {
        return cf_error(
            StatusCode::BAD_REQUEST,
            9000,
            "DNS name, type and content are required.",
        );
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let ttl = b["ttl"].as_u64().unwrap_or(1);
    if !(ttl == 1 || (60..=86400).contains(&ttl)) {
        return cf_error(
            StatusCode::BAD_REQUEST,
            9021,
            "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
        );
    }
    if !in_zone(&name, &s.zone) || !valid_data(kind, content) {
        return cf_error(
            StatusCode::BAD_REQUEST,
            9005,
            "Content for record is invalid.",
        );
    }
    let mut inner = s.inner.lock().unwrap();
    if conflicts(&inner.records, &name, kind) {
        return cf_error(
            StatusCode::BAD_REQUEST,
            81053,
            "An A, AAAA, or CNAME record with that host already exists.",
        );
    }
    if inner
        .records
        .iter()
        .any(|r| r.name == name && r.kind == kind && r.data == content)
    {
        return cf_error(
            StatusCode::BAD_REQUEST,
            81058,
            "An identical record already exists.",
        );
    }
    inner.next_id += 1;
    let stored = Stored {
        id: inner.next_id,
        name,
        kind: kind.to_owned(),
        data: content.to_owned(),
        ttl,
    };
    inner.records.push(stored.clone());
    cf_ok(cf_record(&s.zone, &stored))
}

async fn cf_delete(
    State(s): State<Shared>,
    Path((zone, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = note(&s, &method, &uri, &headers, b"", cf_unauthorized()) {
        return r;
    }
    let mut inner = s.inner.lock().unwrap();
    let at = inner
        .records
        .iter()
        .position(|r| zone == ZONE_ID && format!("{:032x}", r.id) == id);
    match at {
        Some(i) => {
            inner.records.remove(i);
            cf_ok(json!({"id": id}))
        }
        None => cf_error(StatusCode::NOT_FOUND, 81044, "Record does not exist."),
    }
}

// DigitalOcean: `{"id": …, "message": …}` for errors; names within the
// domain (`@` for itself) when records are made and shown.

fn do_error(status: StatusCode, id: &str, message: &str) -> Response {
    (status, axum::Json(json!({"id": id, "message": message}))).into_response()
}

fn do_unauthorized() -> Value {
    json!({"id": "unauthorized", "message": "Unable to authenticate you"})
}

fn do_record(zone: &str, r: &Stored) -> Value {
    let label = match r.name.strip_suffix(&format!(".{zone}")) {
        Some(label) => label.to_owned(),
        None => "@".to_owned(),
    };
    json!({"id": r.id, "type": r.kind, "name": label, "data": r.data, "ttl": r.ttl,
           "priority": null, "port": null, "weight": null, "flags": null, "tag": null})
}

fn do_not_found() -> Response {
    do_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "The resource you were accessing could not be found.",
    )
}

async fn do_list(
    State(s): State<Shared>,
    Path(domain): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = note(&s, &method, &uri, &headers, b"", do_unauthorized()) {
        return r;
    }
    if !domain.eq_ignore_ascii_case(&s.zone) {
        return do_not_found();
    }
    let inner = s.inner.lock().unwrap();
    let list: Vec<Value> = filtered(&inner, &q)
        .iter()
        .map(|r| do_record(&s.zone, r))
        .collect();
    let total = list.len();
    axum::Json(json!({"domain_records": list, "links": {}, "meta": {"total": total}}))
        .into_response()
}

async fn do_create(
    State(s): State<Shared>,
    Path(domain): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = note(&s, &method, &uri, &headers, &body, do_unauthorized()) {
        return r;
    }
    if !domain.eq_ignore_ascii_case(&s.zone) {
        return do_not_found();
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return do_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "unable to parse request body",
        );
    };
    let (Some(kind), Some(label), Some(data)) =
        (b["type"].as_str(), b["name"].as_str(), b["data"].as_str())
    else {
        return do_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            "type, name and data are required",
        );
    };
    let ttl = b["ttl"].as_u64().unwrap_or(1800);
    if ttl < 30 {
        return do_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            "TTL must be at least 30",
        );
    }
    // A name within the domain; a host name without its final dot is read
    // as one within the domain too.
    let name = match label {
        "@" => s.zone.clone(),
        l => format!("{}.{}", l.to_ascii_lowercase(), s.zone),
    };
    let data = match (kind, data.strip_suffix('.')) {
        ("CNAME", Some(absolute)) => absolute.to_ascii_lowercase(),
        ("CNAME", None) => format!("{}.{}", data.to_ascii_lowercase(), s.zone),
        _ => data.to_owned(),
    };
    if !valid_data(kind, &data) {
        return do_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            "Data needs to be a valid value for its type",
        );
    }
    let mut inner = s.inner.lock().unwrap();
    if conflicts(&inner.records, &name, kind) {
        return do_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable_entity",
            "CNAME records cannot share a name with other records.",
        );
    }
    inner.next_id += 1;
    let stored = Stored {
        id: inner.next_id,
        name,
        kind: kind.to_owned(),
        data,
        ttl,
    };
    inner.records.push(stored.clone());
    (
        StatusCode::CREATED,
        axum::Json(json!({"domain_record": do_record(&s.zone, &stored)})),
    )
        .into_response()
}

async fn do_delete(
    State(s): State<Shared>,
    Path((domain, id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = note(&s, &method, &uri, &headers, b"", do_unauthorized()) {
        return r;
    }
    let mut inner = s.inner.lock().unwrap();
    let at = inner
        .records
        .iter()
        .position(|r| domain.eq_ignore_ascii_case(&s.zone) && r.id.to_string() == id);
    match at {
        Some(i) => {
            inner.records.remove(i);
            StatusCode::NO_CONTENT.into_response()
        }
        None => do_not_found(),
    }
}
