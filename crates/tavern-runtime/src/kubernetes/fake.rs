//! A fake Kubernetes API server for tests (feature `fake-kube`): it speaks
//! the few endpoints the driver uses on loopback, keeps the objects it is
//! given, records every request, and answers anything else with 500, so a
//! test sees exactly what the driver asked of a cluster. A small "kubelet"
//! gives a Deployment with replicas a pod, which goes away some lists after
//! the Deployment is scaled to 0.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the fake received it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The query, with its parameters sorted.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub query: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub content_type: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub body: Value,
    pub status: u16,
}

#[derive(Default)]
struct State {
    namespace: String,
    /// Objects by (resource plural, name).
    objects: BTreeMap<(String, String), Value>,
    /// Pods by name, with how many more lists a terminating one is seen in.
    pods: BTreeMap<String, (Value, Option<u32>)>,
    requests: Vec<Recorded>,
    /// Lists a pod stays in after its Deployment is scaled to 0.
    linger: u32,
    /// A reason a world's container waits with (by slug), e.g. CrashLoopBackOff.
    waiting: BTreeMap<String, String>,
    /// Answers forced for the next requests of a method and resource.
    failures: Vec<(String, String, u16)>,
    next_ip: u8,
}

/// The fake server; stops when dropped.
pub struct FakeApiServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    /// Listens on 127.0.0.1 for objects in `namespace`.
    pub async fn start(namespace: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            namespace: namespace.to_owned(),
            linger: 1,
            next_ip: 1,
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake API server");
        let addr = listener.local_addr().expect("its address");
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { handle(&state, method, uri, headers, body) }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of this server.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("a URI"));
        kube::Client::try_from(config).expect("a client")
    }

    /// A kubeconfig file's text that points at this server.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {}\n\
             current-context: fake\n",
            self.url(),
            self.state().namespace
        )
    }

    /// Every request since the last call.
    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.state().requests)
    }

    /// An object as the fake holds it now.
    pub fn object(&self, plural: &str, name: &str) -> Option<Value> {
        self.state()
            .objects
            .get(&(plural.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The names of the objects of a kind.
    pub fn names(&self, plural: &str) -> Vec<String> {
        let state = self.state();
        let mut names: Vec<String> = state
            .objects
            .keys()
            .filter(|(p, _)| p == plural)
            .map(|(_, n)| n.clone())
            .collect();
        if plural == "pods" {
            names.extend(state.pods.keys().cloned());
        }
        names
    }

    /// The pods there are now.
    pub fn pod_count(&self) -> usize {
        self.state().pods.len()
    }

    /// How many lists a pod is still seen in after a scale to 0.
    pub fn set_linger(&self, lists: u32) {
        self.state().linger = lists;
    }

    /// Makes a world's container wait with `reason` (e.g. CrashLoopBackOff).
    pub fn set_waiting(&self, slug: &str, reason: &str) {
        let mut state = self.state();
        state.waiting.insert(slug.to_owned(), reason.to_owned());
        refresh_pods(&mut state);
    }

    /// Answers the next `method` request on `plural` with `status`.
    pub fn fail_next(&self, method: &str, plural: &str, status: u16) {
        self.state()
            .failures
            .push((method.to_owned(), plural.to_owned(), status));
    }
}

/// `/api/v1/namespaces/NS/PLURAL[/NAME[/SUB]]` or
/// `/apis/GROUP/VERSION/namespaces/NS/PLURAL[/NAME[/SUB]]`.
fn parse_path(path: &str) -> Option<(String, String, Option<String>, Option<String>)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", "v1", rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => return None,
    };
    match rest {
        ["namespaces", ns, plural] => Some((ns.to_string(), plural.to_string(), None, None)),
        ["namespaces", ns, plural, name] => Some((
            ns.to_string(),
            plural.to_string(),
            Some(name.to_string()),
            None,
        )),
        ["namespaces", ns, plural, name, sub] => Some((
            ns.to_string(),
            plural.to_string(),
            Some(name.to_string()),
            Some(sub.to_string()),
        )),
        _ => None,
    }
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "message": message, "reason": reason, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn handle(
    state: &Mutex<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    let mut query: Vec<String> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|q| !q.is_empty())
        .map(|q| {
            percent_encoding::percent_decode_str(q)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    query.sort();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body_json: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    let (code, response) = answer(
        &mut state,
        &method,
        uri.path(),
        &query,
        &content_type,
        &body_json,
    );
    state.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: query.join("&"),
        content_type: if body.is_empty() {
            String::new()
        } else {
            content_type
        },
        body: body_json,
        status: code,
    });
    response
}

fn param<'q>(query: &'q [String], key: &str) -> Option<&'q str> {
    query
        .iter()
        .find_map(|q| q.strip_prefix(key)?.strip_prefix('='))
}

fn answer(
    state: &mut State,
    method: &Method,
    path: &str,
    query: &[String],
    content_type: &str,
    body: &Value,
) -> (u16, Response) {
    let Some((ns, plural, name, sub)) = parse_path(path) else {
        return (
            500,
            status(
                500,
                "InternalError",
                format!("the fake does not serve {path}"),
            ),
        );
    };
    if ns != state.namespace {
        return (
            500,
            status(500, "InternalError", format!("unexpected namespace {ns}")),
        );
    }
    if let Some(i) = state
        .failures
        .iter()
        .position(|(m, p, _)| m == method.as_str() && *p == plural)
    {
        let (_, _, code) = state.failures.remove(i);
        return (
            code,
            status(
                code,
                "Forced",
                format!("the fake was told to answer {code}"),
            ),
        );
    }
    let key = |n: &str| (plural.clone(), n.to_owned());
    match (method.as_str(), name, sub.as_deref()) {
        ("GET", None, None) => {
            let selector = param(query, "labelSelector").unwrap_or_default().to_owned();
            let items: Vec<Value> = if plural == "pods" {
                let mut items = Vec::new();
                for (pod, seen) in state.pods.values_mut() {
                    if matches_selector(pod, &selector) {
                        items.push(pod.clone());
                        if let Some(left) = seen {
                            *left = left.saturating_sub(1);
                        }
                    }
                }
                state.pods.retain(|_, (_, seen)| *seen != Some(0));
                items
            } else {
                state
                    .objects
                    .iter()
                    .filter(|((p, _), o)| *p == plural && matches_selector(o, &selector))
                    .map(|(_, o)| o.clone())
                    .collect()
            };
            let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items});
            (200, axum::Json(list).into_response())
        }
        ("GET", Some(name), Some("log")) if plural == "pods" => {
            let Some((pod, _)) = state.pods.get(&name) else {
                return (
                    404,
                    status(404, "NotFound", format!("pods \"{name}\" not found")),
                );
            };
            let tail: usize = param(query, "tailLines")
                .and_then(|t| t.parse().ok())
                .unwrap_or(usize::MAX);
            let lines: Vec<String> = (1..=5)
                .map(|i| {
                    format!(
                        "{} log line {i}",
                        pod["metadata"]["name"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            let skip = lines.len().saturating_sub(tail);
            (200, lines[skip..].join("\n").into_response())
        }
        ("GET", Some(name), None) => match state.objects.get(&key(&name)) {
            Some(o) => (200, axum::Json(o.clone()).into_response()),
            None => (
                404,
                status(404, "NotFound", format!("{plural} \"{name}\" not found")),
            ),
        },
        ("PATCH", Some(name), None) if content_type == "application/apply-patch+yaml" => {
            let mut object = body.clone();
            if let Some(old) = state.objects.get(&key(&name)) {
                // What the server set itself stays.
                if let Some(ip) = old.pointer("/spec/clusterIP") {
                    object["spec"]["clusterIP"] = ip.clone();
                }
            } else if plural == "services" {
                object["spec"]["clusterIP"] = json!(format!("10.96.0.{}", state.next_ip));
                state.next_ip += 1;
            }
            state.objects.insert(key(&name), object.clone());
            refresh_pods(state);
            (200, axum::Json(object).into_response())
        }
        ("PATCH", Some(name), None) if content_type == "application/merge-patch+json" => {
            let Some(object) = state.objects.get_mut(&key(&name)) else {
                return (
                    404,
                    status(404, "NotFound", format!("{plural} \"{name}\" not found")),
                );
            };
            merge_patch(object, body);
            let object = object.clone();
            refresh_pods(state);
            (200, axum::Json(object).into_response())
        }
        ("DELETE", Some(name), None) => match state.objects.remove(&key(&name)) {
            Some(o) => {
                refresh_pods(state);
                (200, axum::Json(o).into_response())
            }
            None => (
                404,
                status(404, "NotFound", format!("{plural} \"{name}\" not found")),
            ),
        },
        _ => (
            500,
            status(
                500,
                "InternalError",
                format!("the fake does not serve {method} {path}"),
            ),
        ),
    }
}

/// RFC 7386: objects merge, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("an object");
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// `a,b=c,d!=e` against the object's labels.
fn matches_selector(object: &Value, selector: &str) -> bool {
    let labels = &object["metadata"]["labels"];
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k].as_str() != Some(v)
        } else if let Some((k, v)) = term.split_once('=') {
            labels[k.trim_end_matches('=')].as_str() == Some(v)
        } else {
            labels.get(term).is_some()
        }
    })
}

/// The kubelet: one pod per Deployment with replicas; a scaled-down or
/// deleted Deployment's pod terminates and is gone after `linger` lists.
fn refresh_pods(state: &mut State) {
    let deployments: Vec<Value> = state
        .objects
        .iter()
        .filter(|((p, _), _)| p == "deployments")
        .map(|(_, o)| o.clone())
        .collect();
    let linger = state.linger;
    for (pod, seen) in state.pods.values_mut() {
        let owner = pod["metadata"]["annotations"]["fake/deployment"]
            .as_str()
            .unwrap_or_default();
        let wanted = deployments.iter().any(|d| {
            d["metadata"]["name"].as_str() == Some(owner)
                && d["spec"]["replicas"].as_i64().unwrap_or(1) > 0
        });
        if !wanted && seen.is_none() {
            *seen = Some(linger);
        }
    }
    state.pods.retain(|_, (_, seen)| *seen != Some(0));
    for d in deployments {
        let name = d["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if d["spec"]["replicas"].as_i64().unwrap_or(1) < 1 {
            continue;
        }
        let labels = d["spec"]["template"]["metadata"]["labels"].clone();
        let slug = labels["tavern.io/instance"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let container = match state.waiting.get(&slug) {
            Some(reason) => json!({
                "name": "foundry", "ready": false, "restartCount": 3, "image": "", "imageID": "",
                "state": {"waiting": {"reason": reason}},
                "lastState": {"terminated": {"exitCode": 1}},
            }),
            None => json!({
                "name": "foundry", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                "state": {"running": {}},
            }),
        };
        let pod_name = format!("{name}-5d8f7c9b4-x2x7q");
        let live = state
            .pods
            .get(&pod_name)
            .is_some_and(|(_, seen)| seen.is_none());
        if live && !state.waiting.contains_key(&slug) {
            continue;
        }
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": pod_name, "namespace": state.namespace, "labels": labels,
                "annotations": {"fake/deployment": name},
            },
            "status": {"phase": "Running", "containerStatuses": [container]},
        });
        state.pods.insert(pod_name, (pod, None));
    }
}
