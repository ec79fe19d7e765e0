//! The `http` processor: POSTs the job to a configured URL.
//!
//! 2xx answers `{"value": ..., "dependsOn": [...]}`; 5xx, 429 and transport
//! failures are retryable; other statuses are permanent, and the error
//! carries the start of the answer's body (JSON compacted, still JSON). One client (rustls,
//! connection pool) serves every set; the URL comes only from the
//! configuration, never from a message.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::{Job, Output, ProcessError, Processor, parse_answer};
use crate::aws::OnHeap;

/// The most of an error answer's body kept in the error message.
const MAX_BODY: usize = 500;

/// The HTTP client shared by every `http` processor of a process. It never
/// follows redirects: the processor calls only the URL in the configuration,
/// so a compromised or misconfigured endpoint cannot send jobs (and their
/// records) elsewhere.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("triggered-cache/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

pub struct HttpProcessor {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
}

impl std::fmt::Debug for HttpProcessor {
    // Headers may carry credentials: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProcessor")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl HttpProcessor {
    pub fn new(
        client: reqwest::Client,
        url: &str,
        headers: &BTreeMap<String, String>,
    ) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(url)?;
        let headers = header_map(headers)
            .map_err(|(name, problem)| anyhow::anyhow!("processor header {name} {problem}"))?;
        Ok(HttpProcessor {
            client,
            url,
            headers,
        })
    }
}

/// The configured request headers, marked sensitive (never printed). The
/// error names the header and what is wrong, never its value (it may be a
/// credential).
pub fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, (String, String)> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            (
                name.clone(),
                "is not a valid header name: use letters, digits and - only".to_owned(),
            )
        })?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            (
                name.clone(),
                "has a value that is not a valid header value: use visible ASCII characters and spaces only".to_owned(),
            )
        })?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

#[async_trait]
impl Processor for HttpProcessor {
    async fn process(&self, job: &Job) -> Result<Output, ProcessError> {
        let resp = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .headers(trace_headers())
            .json(job)
            .send()
            .on_heap()
            .await
            .map_err(|e| {
                ProcessError::Retryable(format!("POST {} failed: {}", self.url, without_url(&e)))
            })?;
        let status = resp.status();
        let resp_location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.bytes().await.map_err(|e| {
            ProcessError::Retryable(format!(
                "reading the answer of {}: {}",
                self.url,
                without_url(&e)
            ))
        })?;
        if status.is_success() {
            return parse_answer(&body);
        }
        if status.is_redirection() {
            let to = crate::message::printable(
                resp_location.as_deref().unwrap_or("(no Location header)"),
            );
            return Err(ProcessError::Permanent(format!(
                "POST {} answered {status} redirecting to {to}; redirects are not followed: configure the final URL as the processor's url",
                self.url
            )));
        }
        let msg = format!(
            "POST {} answered {status}: {}",
            self.url,
            super::excerpt(&body, MAX_BODY)
        );
        if status.is_server_error() || status.as_u16() == 429 {
            Err(ProcessError::Retryable(msg))
        } else {
            Err(ProcessError::Permanent(msg))
        }
    }
}

/// The current trace context as `traceparent`/`tracestate` headers.
fn trace_headers() -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in crate::telemetry::current_context() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            map.insert(name, value);
        }
    }
    map
}

fn without_url(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut msg = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if msg.is_empty() { e.to_string() } else { msg }
}
