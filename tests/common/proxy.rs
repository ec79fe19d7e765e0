//! A pass-through HTTP proxy to the emulator that can hold requests: a
//! test points a daemon at it to stop it at an exact step (for example,
//! between an upload and its commit) and then kill it there.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::emulator::endpoint;

/// Which requests the proxy holds (never answers).
pub type Hold = dyn Fn(&HeaderMap, &[u8]) -> bool + Send + Sync;

/// A running proxy: its URL, and how many requests it holds now.
pub struct Proxy {
    pub url: String,
    pub held: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy that forwards everything to the emulator but the
    /// requests `hold` picks, which it holds forever.
    pub async fn start(hold: Arc<Hold>) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let held = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::new();
        let target = endpoint();
        let counter = held.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (client, target, hold, counter) = (
                    client.clone(),
                    target.clone(),
                    hold.clone(),
                    counter.clone(),
                );
                async move {
                    if hold(&headers, &body) {
                        counter.fetch_add(1, Ordering::SeqCst);
                        std::future::pending::<()>().await;
                    }
                    forward(&client, &target, method, uri, headers, body).await
                }
            },
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Proxy { url, held, task }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    client: &reqwest::Client,
    target: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut req = client.request(method, format!("{target}{path}")).body(body);
    for (name, value) in &headers {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            req = req.header(name, value);
        }
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let mut out = HeaderMap::new();
            for (name, value) in r.headers() {
                if !matches!(
                    name.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                ) {
                    out.insert(name, value.clone());
                }
            }
            let bytes = r.bytes().await.unwrap_or_default();
            (status, out, bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
