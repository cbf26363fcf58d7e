//! `tavern login --sso`: signing in through the browser, in whatever way
//! the dashboard offers. The client listens on a loopback port; the person
//! approves on the dashboard, which sends the browser back here with a code
//! that only this client can redeem (it holds the verifier of the code's
//! challenge).

use std::convert::Infallible;
use std::io::IsTerminal as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use axum::body::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tavern_api::{CliCodeRequest, LoginResponse};
use tavern_core::auth::random_secret;
use tavern_core::cli_sign_in::challenge_of;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::http::Api;

/// How long the client waits for the browser.
const WAIT: Duration = Duration::from_secs(5 * 60);
/// How long one connection to the loopback port may take, and how many may
/// be open at once.
const CONNECTION_TIME: Duration = Duration::from_secs(30);
const CONNECTIONS: usize = 8;

/// Signs in through the browser: the new token.
pub(super) async fn sign_in(server: &str, open_browser: bool) -> anyhow::Result<String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("cannot listen on a loopback port for the browser's answer")?;
    let port = listener.local_addr()?.port();
    let (state, verifier) = (random_secret(), random_secret());
    let url = format!(
        "{server}/auth/cli?port={port}&state={state}&challenge={}",
        challenge_of(&verifier)
    );
    eprintln!(
        "To sign in, open this address in a browser on this computer \
         (waiting up to {} minutes):\n\n    {url}\n",
        WAIT.as_secs() / 60
    );
    if open_browser && std::io::stderr().is_terminal() && webbrowser::open(&url).is_err() {
        eprintln!("(Could not open a browser: open the address yourself.)");
    }
    let code = tokio::time::timeout(WAIT, answer(listener, &state))
        .await
        .map_err(|_| {
            anyhow!(
                "no answer from the browser within {} minutes: run `tavern login --sso` again",
                WAIT.as_secs() / 60
            )
        })??;
    let request = CliCodeRequest { code, verifier };
    let answer: LoginResponse = Api::new(server, None)?
        .post_for("/api/v1/auth/cli-code", &request)
        .await?;
    Ok(answer.token)
}

/// What the browser brought to the loopback port.
#[derive(Debug, PartialEq)]
enum Callback {
    /// The person approved: the code to redeem.
    Code(String),
    /// The person said no.
    Refused,
    /// Not an answer to this sign-in (another path, another `state`).
    NotOurs,
}

/// Reads a request for `path_and_query` against the `state` this client
/// sent.
fn read_callback(path_and_query: &str, state: &str) -> Callback {
    let Some(query) = path_and_query.strip_prefix("/callback?") else {
        return Callback::NotOurs;
    };
    let (mut theirs, mut code, mut error) = (None, None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "state" => theirs = Some(value),
            "code" => code = Some(value),
            "error" => error = Some(value),
            _ => {}
        }
    }
    match (theirs.as_deref() == Some(state), code, error) {
        (false, _, _) => Callback::NotOurs,
        (true, _, Some(_)) => Callback::Refused,
        (true, Some(code), None) if !code.is_empty() => Callback::Code(code.into_owned()),
        _ => Callback::NotOurs,
    }
}

/// Serves the loopback port until the browser brings this sign-in's
/// answer: the code.
async fn answer(listener: TcpListener, state: &str) -> anyhow::Result<String> {
    let (tx, mut rx) = mpsc::channel::<Callback>(1);
    let permits = std::sync::Arc::new(Semaphore::new(CONNECTIONS));
    let mut connections = JoinSet::new();
    let outcome = loop {
        tokio::select! {
            outcome = rx.recv() => break outcome,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
                let (tx, state) = (tx.clone(), state.to_owned());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        respond(req, state.clone(), tx.clone())
                    });
                    let serving = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .max_buf_size(16 * 1024)
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service);
                    let _ = tokio::time::timeout(CONNECTION_TIME, serving).await;
                    drop(permit);
                });
            }
        }
    };
    // Let the browser have its page before the client moves on.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    match outcome {
        Some(Callback::Code(code)) => Ok(code),
        Some(Callback::Refused) => bail!("sign-in cancelled in the browser"),
        Some(Callback::NotOurs) | None => bail!("the browser's answer was lost"),
    }
}

async fn respond(
    req: Request<Incoming>,
    state: String,
    tx: mpsc::Sender<Callback>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    let callback = read_callback(target, &state);
    let (status, message) = match &callback {
        Callback::Code(_) => (
            StatusCode::OK,
            "Signed in. You can close this tab and go back to the command line.",
        ),
        Callback::Refused => (
            StatusCode::OK,
            "Sign-in cancelled: the command line is not signed in.",
        ),
        Callback::NotOurs => (
            StatusCode::BAD_REQUEST,
            "This is not the sign-in `tavern login --sso` is waiting for.",
        ),
    };
    if callback != Callback::NotOurs {
        let _ = tx.try_send(callback);
    }
    let page = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">\
         <title>Tavern</title><p id=\"message\">{message}</p></html>"
    );
    let mut response = Response::new(Full::new(Bytes::from(page)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const STATE: &str = "s7ate-of-this_sign-in";

    #[test]
    fn only_this_sign_ins_answer_counts() {
        let code = |q: &str| read_callback(q, STATE);
        assert_eq!(
            code("/callback?code=abc&state=s7ate-of-this_sign-in"),
            Callback::Code("abc".into())
        );
        assert_eq!(
            code("/callback?state=s7ate-of-this_sign-in&error=access_denied"),
            Callback::Refused
        );
        assert_eq!(code("/callback?code=abc&state=other"), Callback::NotOurs);
        assert_eq!(code("/callback?code=abc"), Callback::NotOurs);
        assert_eq!(
            code("/callback?code=&state=s7ate-of-this_sign-in"),
            Callback::NotOurs
        );
        assert_eq!(
            code("/favicon.ico?code=abc&state=s7ate-of-this_sign-in"),
            Callback::NotOurs
        );
    }

    /// A query of pairs that may or may not name this sign-in's state.
    fn query(state: &'static str) -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("state".to_owned()),
            Just("code".to_owned()),
            Just("error".to_owned()),
            "\\PC{0,6}"
        ];
        let value = prop_oneof![Just(state.to_owned()), "\\PC{0,12}"];
        prop::collection::vec((key, value), 0..6).prop_map(|pairs| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &pairs {
                q.append_pair(k, v);
            }
            q.finish()
        })
    }

    proptest! {
        /// Whatever a browser (or another program on this computer) sends,
        /// nothing without this sign-in's `state` is taken for its answer,
        /// and a refusal is never taken for a code.
        #[test]
        fn nothing_without_the_state_is_an_answer(
            path in prop_oneof![Just("/callback?".to_owned()), "\\PC{0,12}"],
            query in query(STATE),
        ) {
            let target = format!("{path}{query}");
            let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let last = |key: &str| pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
            match read_callback(&target, STATE) {
                Callback::NotOurs => {}
                Callback::Refused => {
                    prop_assert_eq!(path.as_str(), "/callback?");
                    prop_assert_eq!(last("state"), Some(STATE));
                    prop_assert!(last("error").is_some());
                }
                Callback::Code(code) => {
                    prop_assert_eq!(path.as_str(), "/callback?");
                    prop_assert_eq!(last("state"), Some(STATE));
                    prop_assert_eq!(last("error"), None);
                    prop_assert_eq!(last("code"), Some(code.as_str()));
                }
            }
        }
    }
}
