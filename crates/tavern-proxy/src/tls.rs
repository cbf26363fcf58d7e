//! TLS on the public listener from certificate and key files (a wildcard
//! for `*.<domain>` is common), and the plain-HTTP listener that sends
//! browsers to HTTPS and answers ACME's HTTP-01 challenges.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
pub use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::acme::Certificates;
use crate::admission::{Admission, ConnectionLimits, accept_loop, first_bytes, serve_http1};
use crate::route::host_name;

/// Where the CA fetches HTTP-01 answers (RFC 8555, section 8.3).
const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate file {path}")]
    Certificate {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("the certificate file {path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot read the private key file {path}")]
    Key {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("the certificate and key do not make a TLS configuration")]
    Config(#[source] rustls::Error),
}

/// A TLS acceptor for the certificate chain and key in these PEM files.
pub fn acceptor_from_files(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certificate {
            path: cert.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_owned(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = crate::admission::http_alpn();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Answers every plain-HTTP request with a permanent redirect to the same
/// address over HTTPS (on `https_port` when it is not 443), until `cancel`;
/// with `acme`, answers the CA's HTTP-01 challenges first. Within the same
/// connection limits as the public listener (its own count).
pub async fn redirect_to_https(
    listener: TcpListener,
    https_port: Option<u16>,
    acme: Option<Certificates>,
    limits: ConnectionLimits,
    cancel: CancellationToken,
) {
    let admission = Admission::new(limits);
    let tracker = TaskTracker::new();
    accept_loop(
        &listener,
        &admission,
        true,
        &cancel,
        &tracker,
        |stream, _, ticket| {
            let acme = acme.clone();
            let cancel = cancel.clone();
            async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        std::future::ready(Ok::<_, Infallible>(redirect(
                            &req,
                            https_port,
                            acme.as_ref(),
                        )))
                    });
                if first_bytes(&stream, &ticket, &cancel).await {
                    let _ = serve_http1(TokioIo::new(stream), service, ticket, cancel).await;
                }
            }
        },
    )
    .await;
    tracker.close();
}

/// The answer to one plain-HTTP request: an HTTP-01 challenge's, else the
/// redirect to HTTPS (400 without a usable Host).
fn redirect(
    req: &http::Request<hyper::body::Incoming>,
    https_port: Option<u16>,
    acme: Option<&Certificates>,
) -> Response<Full<Bytes>> {
    let answer = req
        .uri()
        .path()
        .strip_prefix(ACME_CHALLENGE_PATH)
        .zip(acme)
        .and_then(|(token, certs)| certs.http01_answer(token));
    if let Some(answer) = answer {
        let mut r = Response::new(Full::new(Bytes::from(answer)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return r;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_name);
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut r = Response::new(Full::new(Bytes::new()));
    match host {
        Some(host) => {
            let port = https_port.map(|p| format!(":{p}")).unwrap_or_default();
            *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
            if let Ok(v) = HeaderValue::from_str(&format!("https://{host}{port}{path}")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
        }
        None => *r.status_mut() = StatusCode::BAD_REQUEST,
    }
    r
}
