//! A fake Kubernetes API server for tests (feature `fake-kube`): it speaks
//! the few endpoints the driver uses on loopback, keeps the objects it is
//! given, records every request, and answers anything else with 500, so a
//! test sees exactly what the driver asked of a cluster. A Deployment with
//! replicas gets a pod, which goes away some lists after it is scaled to 0;
//! with a [`Kubelet`], pods run for real as processes on loopback: the init
//! container (`tavern foundry-config`) and the stand-in, on the address the
//! fake gives the world's Service.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

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
    kubelet: Option<Kubelet>,
    /// Leases' `spec` fields by the field manager that set them: an apply
    /// that would change another manager's field is a conflict (409), as
    /// server-side apply has it.
    owners: BTreeMap<String, BTreeMap<String, String>>,
    /// The stand-ins the kubelet runs, by pod.
    children: BTreeMap<String, Child>,
}

/// Runs pods as processes on this machine: `EXE foundry-config` for the
/// init container, and `EXE foundry-stub` for a container of the stand-in's
/// image, bound to the world's Service address on loopback.
#[derive(Clone, Debug)]
pub struct Kubelet {
    /// The `tavern` binary (Tavern's image).
    pub exe: PathBuf,
    /// The stand-in's image: other images fail to pull.
    pub stub_image: String,
    /// Where claims (`claims/NAME`) and pods' seeds and logs go.
    pub dir: PathBuf,
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
        // The pods' processes, stopped by their pids.
        for child in self.state().children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl FakeApiServer {
    /// Listens on 127.0.0.1 for objects in `namespace`.
    pub async fn start(namespace: &str) -> Self {
        Self::start_with(namespace, None).await
    }

    /// Like [`Self::start`], with pods that run for real.
    pub async fn start_with_kubelet(namespace: &str, kubelet: Kubelet) -> Self {
        Self::start_with(namespace, Some(kubelet)).await
    }

    async fn start_with(namespace: &str, kubelet: Option<Kubelet>) -> Self {
        let state = Arc::new(Mutex::new(State {
            namespace: namespace.to_owned(),
            linger: 1,
            next_ip: 1,
            kubelet,
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
                reap(state);
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
            let lines: Vec<String> = match &state.kubelet {
                Some(k) => std::fs::read_to_string(k.dir.join("pods").join(&name).join("log"))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect(),
                None => (1..=5)
                    .map(|i| {
                        format!(
                            "{} log line {i}",
                            pod["metadata"]["name"].as_str().unwrap_or_default()
                        )
                    })
                    .collect(),
            };
            let skip = lines.len().saturating_sub(tail);
            (200, lines[skip..].join("\n").into_response())
        }
        ("PATCH", Some(name), None)
            if plural == "pods" && content_type == "application/apply-patch+yaml" =>
        {
            if state.pods.contains_key(&name) {
                return (
                    409,
                    status(
                        409,
                        "AlreadyExists",
                        format!("pods \"{name}\" already exists"),
                    ),
                );
            }
            let pod = run_direct_pod(state, body.clone());
            (200, axum::Json(pod).into_response())
        }
        ("GET", Some(name), None) if plural == "pods" => match state.pods.get_mut(&name) {
            Some((pod, _)) => {
                probe_readiness(pod);
                (200, axum::Json(pod.clone()).into_response())
            }
            None => (
                404,
                status(404, "NotFound", format!("pods \"{name}\" not found")),
            ),
        },
        ("DELETE", Some(name), None) if plural == "pods" => match state.pods.remove(&name) {
            Some((pod, _)) => {
                if let Some(mut child) = state.children.remove(&name) {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                (200, axum::Json(pod).into_response())
            }
            None => (
                404,
                status(404, "NotFound", format!("pods \"{name}\" not found")),
            ),
        },
        ("GET", Some(name), None) => match state.objects.get(&key(&name)) {
            Some(o) => (200, axum::Json(o.clone()).into_response()),
            None => (
                404,
                status(404, "NotFound", format!("{plural} \"{name}\" not found")),
            ),
        },
        ("POST", None, None) if plural == "leases" => {
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if state.objects.contains_key(&key(&name)) {
                return (
                    409,
                    status(
                        409,
                        "AlreadyExists",
                        format!("leases \"{name}\" already exists"),
                    ),
                );
            }
            let mut object = body.clone();
            object["metadata"]["namespace"] = json!(state.namespace);
            state.objects.insert(key(&name), object.clone());
            (
                201,
                (StatusCode::CREATED, axum::Json(object)).into_response(),
            )
        }
        ("PATCH", Some(name), None) if plural == "leases" => {
            let manager = param(query, "fieldManager").unwrap_or_default().to_owned();
            let force = param(query, "force") == Some("true");
            let Some(object) = state.objects.get_mut(&key(&name)) else {
                return (
                    404,
                    status(404, "NotFound", format!("leases \"{name}\" not found")),
                );
            };
            let owners = state.owners.entry(name.clone()).or_default();
            let fields = body["spec"].as_object().cloned().unwrap_or_default();
            if content_type == "application/apply-patch+yaml" && !force {
                for (field, value) in &fields {
                    let theirs = owners.get(field).is_some_and(|m| *m != manager);
                    if theirs && object["spec"][field] != *value {
                        let message = format!(
                            "Apply failed with 1 conflict: conflict with \"{}\": .spec.{field}",
                            owners[field]
                        );
                        return (409, status(409, "Conflict", message));
                    }
                }
            }
            for (field, value) in &fields {
                if value.is_null() {
                    owners.remove(field);
                } else {
                    owners.insert(field.clone(), manager.clone());
                }
            }
            merge_patch(object, &json!({"spec": Value::Object(fields)}));
            (200, axum::Json(object.clone()).into_response())
        }
        ("PATCH", Some(name), None) if content_type == "application/apply-patch+yaml" => {
            let mut object = body.clone();
            if let Some(old) = state.objects.get(&key(&name)) {
                // What the server set itself stays.
                if let Some(ip) = old.pointer("/spec/clusterIP") {
                    object["spec"]["clusterIP"] = ip.clone();
                }
            } else if plural == "services" {
                let ip = if state.kubelet.is_some() {
                    free_loopback(&mut state.next_ip, super::objects::FOUNDRY_PORT).to_string()
                } else {
                    let ip = format!("10.96.0.{}", state.next_ip);
                    state.next_ip += 1;
                    ip
                };
                object["spec"]["clusterIP"] = json!(ip);
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
                if let (Some(k), "persistentvolumeclaims") = (&state.kubelet, plural.as_str()) {
                    let _ = std::fs::remove_dir_all(k.dir.join("claims").join(&name));
                }
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
    for (name, (pod, seen)) in state.pods.iter_mut() {
        // A pod made directly (a data agent) has no Deployment.
        let Some(owner) = pod["metadata"]["annotations"]["fake/deployment"].as_str() else {
            continue;
        };
        let wanted = deployments.iter().any(|d| {
            d["metadata"]["name"].as_str() == Some(owner)
                && d["spec"]["replicas"].as_i64().unwrap_or(1) > 0
        });
        if wanted || seen.is_some() || !pod["metadata"]["deletionTimestamp"].is_null() {
            continue;
        }
        match state.children.get(name) {
            // The kubelet's stop: SIGTERM; the pod goes when its process
            // has (see `reap`).
            Some(child) => {
                pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            None => *seen = Some(linger),
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
        let pod_name = format!("{name}-5d8f7c9b4-x2x7q");
        let waiting = state.waiting.get(&slug).cloned();
        match state.pods.get(&pod_name) {
            // The old pod is still going (strategy Recreate).
            Some((p, _)) if !p["metadata"]["deletionTimestamp"].is_null() => continue,
            Some((_, None)) if waiting.is_none() => continue,
            _ => {}
        }
        let started = if state.pods.contains_key(&pod_name) {
            Ok(())
        } else {
            run_pod(state, &d, &pod_name)
        };
        let container = match (waiting, started) {
            (Some(reason), _) => json!({
                "name": "foundry", "ready": false, "restartCount": 3, "image": "", "imageID": "",
                "state": {"waiting": {"reason": reason}},
                "lastState": {"terminated": {"exitCode": 1}},
            }),
            (None, Err(reason)) => json!({
                "name": "foundry", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                "state": {"waiting": {"reason": reason}},
            }),
            (None, Ok(())) => json!({
                "name": "foundry", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                "state": {"running": {}},
            }),
        };
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

/// Removes the pods whose process has exited after a stop.
fn reap(state: &mut State) {
    let gone: Vec<String> = state
        .children
        .iter_mut()
        .filter_map(|(name, c)| (!matches!(c.try_wait(), Ok(None))).then(|| name.clone()))
        .collect();
    for name in gone {
        let terminating = state
            .pods
            .get(&name)
            .is_some_and(|(p, _)| !p["metadata"]["deletionTimestamp"].is_null());
        if terminating {
            state.children.remove(&name);
            state.pods.remove(&name);
        }
    }
}

/// A loopback address whose port 30000 is free, from a range of this
/// process's own, so that tests running side by side do not meet.
fn free_loopback(next: &mut u8, port: u16) -> Ipv4Addr {
    let base = 20 + (std::process::id() % 200) as u8;
    loop {
        let ip = Ipv4Addr::new(127, base, 30, next.saturating_add(1));
        *next = next.wrapping_add(1);
        if std::net::TcpListener::bind((ip, port)).is_ok() {
            return ip;
        }
    }
}

/// A container's mounts as directories on this machine, longest path
/// first: a claim is `claims/NAME` (and its `subPath`), a Secret's files are
/// written under the pod's own directory.
fn local_mounts(
    state: &State,
    kubelet: &Kubelet,
    spec: &Value,
    container: &Value,
    pod: &str,
) -> Result<Vec<(String, PathBuf)>, String> {
    let config_error = || "CreateContainerConfigError".to_owned();
    let mut mounts = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().ok_or_else(config_error)?;
        let path = m["mountPath"].as_str().ok_or_else(config_error)?;
        let volume = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name)
            .ok_or_else(config_error)?;
        let mut local = if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
            if !state
                .objects
                .contains_key(&("persistentvolumeclaims".to_owned(), claim.to_owned()))
            {
                return Err("the claim does not exist".into());
            }
            kubelet.dir.join("claims").join(claim)
        } else if let Some(secret) = volume["secret"]["secretName"].as_str() {
            let data = state
                .objects
                .get(&("secrets".to_owned(), secret.to_owned()))
                .map(|s| s["data"].clone())
                .ok_or_else(config_error)?;
            let dir = kubelet.dir.join("pods").join(pod).join(name);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            for (file, value) in data.as_object().into_iter().flatten() {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(value.as_str().unwrap_or_default())
                    .map_err(|_| config_error())?;
                std::fs::write(dir.join(file), bytes).map_err(|e| e.to_string())?;
            }
            dir
        } else {
            return Err(config_error());
        };
        if let Some(sub) = m["subPath"].as_str() {
            local = local.join(sub);
        }
        std::fs::create_dir_all(&local).map_err(|e| e.to_string())?;
        mounts.push((path.to_owned(), local));
    }
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    Ok(mounts)
}

/// An argument with the paths of its mounts made local.
fn map_arg(arg: &str, mounts: &[(String, PathBuf)]) -> String {
    for (path, local) in mounts {
        if let Some((flag, value)) = arg.split_once('=')
            && let Some(rest) = value.strip_prefix(path.as_str())
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return format!("{flag}={}{rest}", local.display());
        }
    }
    arg.to_owned()
}

/// Runs one container of `exe` with its arguments made local; answers
/// the child, or waits for it (`wait`) and answers how it ended.
fn run_container(
    kubelet: &Kubelet,
    args: &[String],
    env: &Value,
    log: &std::path::Path,
) -> Result<Child, String> {
    let log = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut command = std::process::Command::new(&kubelet.exe);
    command
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log);
    for var in env.as_array().into_iter().flatten() {
        if let (Some(k), Some(v)) = (var["name"].as_str(), var["value"].as_str()) {
            command.env(k, v);
        }
    }
    command.spawn().map_err(|e| e.to_string())
}

/// The kubelet's start of a world's pod: its init containers, then the
/// stand-in on the Service's address. `Err` is the reason its container
/// waits with.
fn run_pod(state: &mut State, deployment: &Value, pod: &str) -> Result<(), String> {
    let Some(kubelet) = state.kubelet.clone() else {
        return Ok(());
    };
    let spec = &deployment["spec"]["template"]["spec"];
    let pod_dir = kubelet.dir.join("pods").join(pod);
    std::fs::create_dir_all(&pod_dir).map_err(|e| e.to_string())?;
    for init in spec["initContainers"].as_array().into_iter().flatten() {
        let mounts = local_mounts(state, &kubelet, spec, init, pod)?;
        let args: Vec<String> = init["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(|a| map_arg(a, &mounts)))
            .collect();
        let mut child = run_container(&kubelet, &args, &init["env"], &pod_dir.join("init.log"))?;
        if !child.wait().map_err(|e| e.to_string())?.success() {
            return Err("Init:Error".into());
        }
    }
    let main = &spec["containers"][0];
    if main["image"].as_str() != Some(kubelet.stub_image.as_str()) {
        return Err("ErrImagePull".into());
    }
    let mounts = local_mounts(state, &kubelet, spec, main, pod)?;
    let data = mounts
        .iter()
        .find(|(path, _)| path == "/data")
        .map(|(_, local)| local.clone())
        .ok_or("CreateContainerConfigError")?;
    let service = deployment["metadata"]["name"].as_str().unwrap_or_default();
    let ip = state
        .objects
        .get(&("services".to_owned(), service.to_owned()))
        .and_then(|s| s["spec"]["clusterIP"].as_str().map(str::to_owned))
        .ok_or("CreateContainerConfigError")?;
    let args = [
        "foundry-stub".to_owned(),
        format!("--dataPath={}", data.display()),
        format!("--port={}", super::objects::FOUNDRY_PORT),
        format!("--bind={ip}"),
    ];
    let child = run_container(&kubelet, &args, &main["env"], &pod_dir.join("log"))?;
    state.children.insert(pod.to_owned(), child);
    Ok(())
}

/// The kubelet's start of a pod made directly (Tavern's data agent): its
/// one container, on a loopback address of its own; answers the pod as the
/// API shows it.
fn run_direct_pod(state: &mut State, mut pod: Value) -> Value {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    pod["metadata"]["namespace"] = json!(state.namespace);
    let started = match state.kubelet.clone() {
        None => Err("no kubelet".to_owned()),
        Some(kubelet) => (|| {
            let spec = pod["spec"].clone();
            let container = &spec["containers"][0];
            let mounts = local_mounts(state, &kubelet, &spec, container, &name)?;
            let port = container["ports"][0]["containerPort"]
                .as_u64()
                .unwrap_or(8081) as u16;
            let ip = free_loopback(&mut state.next_ip, port);
            // Every interface of the pod is its own loopback address here.
            let args: Vec<String> = container["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .map(|a| match a.strip_prefix("--listen=0.0.0.0:") {
                    Some(port) => format!("--listen={ip}:{port}"),
                    None => map_arg(a, &mounts),
                })
                .collect();
            let dir = kubelet.dir.join("pods").join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let child = run_container(&kubelet, &args, &container["env"], &dir.join("log"))?;
            state.children.insert(name.clone(), child);
            Ok(ip)
        })(),
    };
    pod["status"] = match started {
        Ok(ip) => json!({
            "phase": "Running", "podIP": ip.to_string(),
            "conditions": [{"type": "Ready", "status": "False"}],
        }),
        Err(why) => json!({"phase": "Failed", "message": why}),
    };
    state.pods.insert(name, (pod.clone(), None));
    pod
}

/// The kubelet's readiness probe of a pod made directly: ready once its
/// container's port takes a connection.
fn probe_readiness(pod: &mut Value) {
    if pod["status"]["conditions"][0]["status"] != "False" {
        return;
    }
    let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
    let port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
        .as_u64()
        .unwrap_or_default();
    let Ok(addr) = format!("{ip}:{port}").parse::<SocketAddr>() else {
        return;
    };
    if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(100)).is_ok() {
        pod["status"]["conditions"][0]["status"] = json!("True");
    }
}
