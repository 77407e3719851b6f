//! The tokio runtime: tokio-tungstenite for the Stream, reqwest for HTTP, `tokio::spawn` for
//! handlers that wait on a multi-threaded runtime.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dingtalk_core::error::ClientError;
use futures_util::FutureExt;

use super::{BoxFuture, HttpClient, MAX_BODY, Runtime, Timer};

/// Drives the client on the tokio runtime it is polled on (multi-thread or current-thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Runtime for Tokio {
    type WebSocket = Ws;
    type Timer = Sleep;
    type Http = Reqwest;

    fn connect(
        &self,
        uri: &http::Uri,
        tls: &Arc<rustls::ClientConfig>,
    ) -> BoxFuture<'static, Result<Ws, String>> {
        let uri = uri.clone();
        let connector = tokio_tungstenite::Connector::Rustls(tls.clone());
        Box::pin(async move {
            tokio_tungstenite::connect_async_tls_with_config(
                uri,
                Some(crate::driver::ws_config()),
                true, // TCP_NODELAY: acks are small and latency-sensitive
                Some(connector),
            )
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| crate::driver::ws_error_text(&e))
        })
    }

    fn timer(&self, at: Instant) -> Sleep {
        Sleep(Box::pin(tokio::time::sleep_until(at.into())))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) -> Option<BoxFuture<'static, ()>> {
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread => {
                drop(h.spawn(task));
                None
            }
            _ => Some(task),
        }
    }
}

/// tokio's resettable sleep.
#[derive(Debug)]
pub struct Sleep(std::pin::Pin<Box<tokio::time::Sleep>>);

impl Timer for Sleep {
    fn reset(&mut self, at: Instant) {
        self.0.as_mut().reset(at.into());
    }

    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_unpin(cx)
    }
}

/// reqwest with the client's rustls configuration, `TCP_NODELAY`, keep-alive pooling and no
/// redirects.
#[derive(Debug, Clone)]
pub struct Reqwest(reqwest::Client);

impl HttpClient for Reqwest {
    fn new(tls: Arc<rustls::ClientConfig>, timeout: Duration) -> Result<Self, crate::Error> {
        reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map(Self)
            .map_err(|e| crate::Error::Tls(e.to_string()))
    }

    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'static, Result<http::Response<Vec<u8>>, ClientError>> {
        let client = self.0.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(transport)?;
            let mut response = client.execute(request).await.map_err(transport)?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            if response.content_length().is_some_and(|n| n > MAX_BODY) {
                return Err(ClientError::Transport("answer body too large".into()));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(transport)? {
                if body.len().saturating_add(chunk.len()) as u64 > MAX_BODY {
                    return Err(ClientError::Transport("answer body too large".into()));
                }
                body.extend_from_slice(&chunk);
            }
            let mut out = http::Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A transport error without its URL (which may carry an access token or a signature).
fn transport(e: reqwest::Error) -> ClientError {
    ClientError::Transport(e.without_url().to_string())
}
