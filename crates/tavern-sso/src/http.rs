//! Tavern's HTTP client for talking to providers: no redirects followed,
//! time limits, answers of at most 1 MiB; usable by the `oauth2` and
//! `openidconnect` crates (their `AsyncHttpClient`) and for plain JSON.

use std::time::Duration;

use crate::{SsoError, chain};

/// The largest answer read from a provider.
const ANSWER_LIMIT: usize = 1024 * 1024;

/// Tavern's HTTP client, as the `oauth2` crate's (futures that are `Send`,
/// for axum's handlers).
pub(crate) struct Http(reqwest::Client);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

impl Http {
    pub(crate) fn new() -> Result<Self, SsoError> {
        // No redirects: a provider's answers are read where they are asked.
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(20))
            .build()
            .map(Self)
            .map_err(|e| SsoError::Config(chain(&e)))
    }

    /// `GET url` with a bearer token: the status and the body.
    pub(crate) async fn get_bearer(
        &self,
        url: &str,
        token: &str,
    ) -> Result<(http::StatusCode, Vec<u8>), HttpError> {
        let request = http::Request::get(url)
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| HttpError(e.to_string()))?;
        let answer = send(&self.0, request).await?;
        Ok((answer.status(), answer.into_body()))
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// One request, sent with Tavern's client.
async fn send(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let (parts, body) = request.into_parts();
    let mut answer = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| HttpError(chain(&e)))?;
    let mut response = http::Response::builder().status(answer.status());
    if let Some(headers) = response.headers_mut() {
        *headers = answer.headers().clone();
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.chunk().await.map_err(|e| HttpError(chain(&e)))? {
        if bytes.len() + chunk.len() > ANSWER_LIMIT {
            return Err(HttpError("the provider's answer is too large".into()));
        }
        bytes.extend_from_slice(&chunk);
    }
    response.body(bytes).map_err(|e| HttpError(e.to_string()))
}
