//! The tokio runtime: tokio-tungstenite for the Stream, reqwest for HTTP, `tokio::spawn` for
//! handlers that wait on a multi-threaded runtime.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dingtalk_core::error::ClientError;
use dingtalk_core::proxy::{Proxies, ProxyUrl};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BoxFuture, HttpClient, HttpSettings, MAX_BODY, Runtime, Timer, TunnelIo};

/// Drives the client on the tokio runtime it is polled on (multi-thread or current-thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

impl TunnelIo for TcpStream {
    fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> BoxFuture<'a, std::io::Result<()>> {
        Box::pin(AsyncWriteExt::write_all(self, buf))
    }

    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, std::io::Result<usize>> {
        Box::pin(AsyncReadExt::read(self, buf))
    }
}

/// TCP to `uri`'s host, or through a `CONNECT` tunnel of `proxy`, with `TCP_NODELAY` (acks are
/// small and latency-sensitive).
async fn tcp(uri: &http::Uri, proxy: Option<ProxyUrl>) -> Result<TcpStream, String> {
    let (host, port) = super::host_port(uri)?;
    let mut tcp = match &proxy {
        None => TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("TCP connect: {}", e.kind()))?,
        Some(p) => TcpStream::connect((p.host(), p.port()))
            .await
            .map_err(|e| format!("TCP connect to the proxy: {}", e.kind()))?,
    };
    tcp.set_nodelay(true).map_err(|e| e.kind().to_string())?;
    if let Some(p) = &proxy {
        super::open_tunnel(&mut tcp, p, &host, port).await?;
    }
    Ok(tcp)
}

impl Runtime for Tokio {
    type WebSocket = Ws;
    type Timer = Sleep;
    type Http = Reqwest;

    fn connect(
        &self,
        uri: &http::Uri,
        options: &super::ConnectOptions,
    ) -> BoxFuture<'static, Result<Ws, String>> {
        let uri = uri.clone();
        let proxy = options.proxy.clone();
        let websocket = options.websocket;
        let connector = tokio_tungstenite::Connector::Rustls(options.tls.clone());
        Box::pin(async move {
            let tcp = tcp(&uri, proxy).await?;
            tokio_tungstenite::client_async_tls_with_config(
                uri,
                tcp,
                Some(websocket),
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

/// reqwest with the client's rustls configuration, `TCP_NODELAY`, keep-alive pooling, no
/// redirects, and the client's proxies only (reqwest's own reading of the environment is off:
/// the driver reads it once, the same way for every adapter).
#[derive(Debug, Clone)]
pub struct Reqwest {
    client: reqwest::Client,
    proxies: Arc<Proxies>,
}

/// A reqwest proxy for the targets of one scheme family that `proxies` sends through `proxy`.
fn reqwest_proxy(proxies: &Proxies, proxy: &ProxyUrl, https: bool) -> reqwest::Proxy {
    let proxies = proxies.clone();
    let url = proxy.to_string();
    let p = reqwest::Proxy::custom(move |target| {
        let secure = matches!(target.scheme(), "https" | "wss");
        if secure != https {
            return None;
        }
        proxies
            .for_target(target.scheme(), target.host_str()?)
            .map(|_| url.clone())
    });
    match proxy.credentials() {
        Some((user, pass)) => p.basic_auth(user, pass),
        None => p,
    }
}

impl HttpClient for Reqwest {
    fn new(settings: &HttpSettings) -> Result<Self, crate::Error> {
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls((*settings.tls).clone())
            .timeout(settings.timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(p) = settings.proxies.http() {
            builder = builder.proxy(reqwest_proxy(&settings.proxies, p, false));
        }
        if let Some(p) = settings.proxies.https() {
            builder = builder.proxy(reqwest_proxy(&settings.proxies, p, true));
        }
        builder
            .build()
            .map(|client| Self {
                client,
                proxies: Arc::new(settings.proxies.clone()),
            })
            .map_err(|e| crate::Error::Tls(e.to_string()))
    }

    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'static, Result<http::Response<Vec<u8>>, ClientError>> {
        let client = self.client.clone();
        let mut request = request;
        if request.uri().scheme_str() == Some("http")
            && self.proxies.for_uri(request.uri()).is_some()
        {
            // A plain-http request is forwarded by the proxy, which may close the connection
            // after the answer without saying so (tinyproxy does): reusing it would race that
            // close. Only loopback targets are plain http, so the lost reuse costs nothing.
            request.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
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

    fn spawn(&self, task: BoxFuture<'static, ()>) -> bool {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(task);
            return true;
        }
        // Called outside a runtime: the task gets a small one of its own.
        let spawned = std::thread::Builder::new()
            .name("dingtalk-task".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(task),
                    Err(e) => tracing::error!(error = %e, "could not start a background runtime"),
                }
            });
        match spawned {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, "could not start a background thread");
                false
            }
        }
    }
}

/// A transport error without its URL (which may carry an access token or a signature), with
/// its causes (hyper's and the socket's texts, which hold no URL).
fn transport(e: reqwest::Error) -> ClientError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    ClientError::Transport(text)
}
