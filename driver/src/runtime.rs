//! What a runtime supplies to the driver: a WebSocket connection, a timer, a place to run a
//! handler that did not finish at once, and one HTTP request. Everything else (what to write,
//! when, to which socket; which handler; what to do with a result) is the driver's, written once.
//!
//! ```text
//!   Runtime::connect(uri)  -> a tungstenite Stream + Sink (tokio-tungstenite, async-tungstenite)
//!   Runtime::timer(at)     -> a resettable Timer
//!   Runtime::spawn(task)   -> run it elsewhere, or hand it back for the driver to poll itself
//!   HttpClient::send(req)  -> one http::Response<Vec<u8>>
//! ```
//!
//! The two implementations live beside the trait, as quinn keeps `runtime/tokio.rs` and
//! `runtime/async_io.rs` beside its `Runtime`: `Tokio` (feature `tokio`)
//! and `AsyncIo` (feature `async-io`, used by the async-std adapter
//! and, under its own `block_on`, by the blocking adapter).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dingtalk_core::error::ClientError;
use dingtalk_core::proxy::{Proxies, ProxyUrl};
use futures_util::{Sink, Stream};
use tungstenite::Message;

#[cfg(feature = "async-io")]
mod async_http;
#[cfg(feature = "async-io")]
mod async_io;
#[cfg(feature = "async-io")]
mod pool;
#[cfg(feature = "tokio")]
mod tokio;

#[cfg(feature = "async-io")]
pub use self::async_io::{AsyncIo, Ureq};
#[cfg(feature = "async-io")]
pub use self::pool::ThreadPool;
#[cfg(feature = "async-io")]
pub(crate) use self::pool::batch;
#[cfg(feature = "tokio")]
pub use self::tokio::{Reqwest, Tokio};

thread_local! {
    /// Set while a driver is polled on this thread: whether it is lightly loaded.
    static DRIVER_HAS_TIME: Cell<bool> = const { Cell::new(false) };
}

/// Whether the Stream driver being polled on this thread is lightly loaded: it read fewer than
/// 50 000 frames a second over its last 100 ms, and reads under that rate in the current 100 ms,
/// give or take a burst of 500 frames (a sustained burst after a quiet stretch turns it off
/// within the burst); `false` outside a driver's poll.
///
/// A handler called from the driver may then do deferred work on this thread before handing
/// the rest to another one. The blocking adapter parses the chatbot message here: under low
/// load its handler threads then allocate almost nothing, and allocators that keep freed blocks
/// per thread (glibc does) keep far less memory (measured with the soak bench, 1 000 000 frames:
/// 18.1 MB at the end, +3.3 % from the 10 % mark, instead of 21.8-22.3 MB, +12 to +18 %), for
/// at most 10 % of a core on the reader. Under heavier
/// load it is `false` and the reader only reads.
pub fn driver_has_time() -> bool {
    DRIVER_HAS_TIME.with(Cell::get)
}

/// Sets what [`driver_has_time`] answers on this thread (the driver, around each poll).
pub(crate) fn set_driver_has_time(value: bool) {
    DRIVER_HAS_TIME.with(|c| c.set(value));
}

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The WebSocket error type every runtime's connection reports (tungstenite's).
pub type WsError = tungstenite::Error;

/// A connected WebSocket: tungstenite messages in and out. tokio-tungstenite's and
/// async-tungstenite's `WebSocketStream` both are one as they come.
pub trait WebSocket:
    Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin + 'static
{
}

impl<T> WebSocket for T where
    T: Stream<Item = Result<Message, WsError>>
        + Sink<Message, Error = WsError>
        + Send
        + Unpin
        + 'static
{
}

/// A timer the driver re-arms to the core's next deadline.
pub trait Timer: Send + Unpin + 'static {
    /// Fires at `at` instead.
    fn reset(&mut self, at: Instant);
    /// Ready once the deadline has passed; registers the waker otherwise.
    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// How [`Runtime::connect`] opens a Stream connection.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The TLS configuration for `wss`.
    pub tls: Arc<rustls::ClientConfig>,
    /// The proxy to tunnel through, if any.
    pub proxy: Option<ProxyUrl>,
    /// The WebSocket settings (message size limits from the session's frame limit).
    pub websocket: tungstenite::protocol::WebSocketConfig,
}

impl ConnectOptions {
    /// Direct, with this TLS configuration and WebSocket messages of at most 4 × `max_frame`
    /// bytes (larger ones end the connection; smaller oversized ones reach the core, which
    /// nacks them).
    pub fn new(tls: Arc<rustls::ClientConfig>, max_frame: usize) -> Self {
        let max = max_frame.saturating_mul(4);
        Self {
            tls,
            proxy: None,
            websocket: tungstenite::protocol::WebSocketConfig::default()
                .max_message_size(Some(max))
                .max_frame_size(Some(max)),
        }
    }

    /// Through this proxy.
    #[must_use]
    pub fn proxy(mut self, proxy: Option<ProxyUrl>) -> Self {
        self.proxy = proxy;
        self
    }
}

/// How an [`HttpClient`] is set up.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The TLS configuration (reqwest uses it as given; ureq takes its crypto provider).
    pub tls: Arc<rustls::ClientConfig>,
    /// Timeout of each request.
    pub timeout: Duration,
    /// The proxies requests go through ([`Proxies::for_uri`] decides per request).
    pub proxies: Proxies,
}

impl HttpSettings {
    /// These TLS settings and timeout, no proxy.
    pub fn new(tls: Arc<rustls::ClientConfig>, timeout: Duration) -> Self {
        Self {
            tls,
            timeout,
            proxies: Proxies::none(),
        }
    }

    /// Sends through these proxies.
    #[must_use]
    pub fn proxies(mut self, proxies: Proxies) -> Self {
        self.proxies = proxies;
        self
    }
}

/// Sends one HTTP request and reads the whole answer (at most [`MAX_BODY`] bytes). Follows no
/// redirects. Transport errors carry no URL. A request goes through the proxy
/// [`Proxies::for_uri`] names for it (`CONNECT` for `https`), or direct.
pub trait HttpClient: Clone + Send + Sync + 'static {
    /// A client with these settings.
    fn new(settings: &HttpSettings) -> Result<Self, crate::Error>;
    /// Sends `request`.
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'static, Result<http::Response<Vec<u8>>, ClientError>>;
    /// Waits `duration` (the pause before retrying a rate-limited call).
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    /// Runs a background task to its end on the runtime this client sends on (an AI card's
    /// updates): a tokio task; a thread of its own on the async-io stack. `false` when it could
    /// not be started (no thread could be created); the task is then dropped.
    fn spawn(&self, task: BoxFuture<'static, ()>) -> bool;
}

/// Largest HTTP answer body read (a downloaded file included).
pub const MAX_BODY: u64 = 64 * 1024 * 1024;

/// An async runtime the driver can run on.
pub trait Runtime: Clone + Default + Send + Sync + Unpin + 'static {
    /// Its WebSocket connection.
    type WebSocket: WebSocket;
    /// Its timer.
    type Timer: Timer;
    /// Its HTTP client.
    type Http: HttpClient;

    /// TCP (`TCP_NODELAY`) to the host of `uri`, or to `options.proxy` and a `CONNECT` tunnel
    /// through it ([`open_tunnel`] does the handshake), then TLS for `wss` and the WebSocket
    /// handshake with `options.websocket`. The driver drops the future when the core's connect
    /// timeout passes. The error text carries no URL (the URI holds the one-use ticket) and no
    /// proxy credential.
    fn connect(
        &self,
        uri: &http::Uri,
        options: &ConnectOptions,
    ) -> BoxFuture<'static, Result<Self::WebSocket, String>>;

    /// A timer that fires at `at`.
    fn timer(&self, at: Instant) -> Self::Timer;

    /// Runs a handler call that did not finish when first polled. A multi-threaded runtime
    /// spawns it (`None`); otherwise it is handed back (`Some`) and the driver polls it inside
    /// its own task, so the call costs no task and its wake-up no cross-thread hop.
    fn spawn(&self, task: BoxFuture<'static, ()>) -> Option<BoxFuture<'static, ()>>;
}

/// The host (IPv6 without brackets) and port a WebSocket URI connects to.
pub fn host_port(uri: &http::Uri) -> Result<(String, u16), String> {
    let host = uri.host().ok_or("the endpoint has no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tls = matches!(uri.scheme_str(), Some("wss" | "https"));
    Ok((host, uri.port_u16().unwrap_or(if tls { 443 } else { 80 })))
}

/// A byte stream a `CONNECT` handshake runs over (the runtime's TCP stream).
pub trait TunnelIo: Send {
    /// Writes all of `buf`.
    fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> BoxFuture<'a, std::io::Result<()>>;
    /// Reads into `buf`; `0` at end of stream.
    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, std::io::Result<usize>>;
}

/// The IO of a `CONNECT` handshake through `proxy` to `host:port` (the decisions are
/// [`ProxyUrl::connect`]'s): writes the request, reads the answer. On `Ok` the next bytes on
/// `io` are the target's. The error text never holds the credentials.
pub async fn open_tunnel(
    io: &mut impl TunnelIo,
    proxy: &ProxyUrl,
    host: &str,
    port: u16,
) -> Result<(), String> {
    let mut handshake = proxy.connect(host, port);
    io.write_all(handshake.request())
        .await
        .map_err(|e| format!("proxy: {}", e.kind()))?;
    loop {
        let n = io
            .read(handshake.spare())
            .await
            .map_err(|e| format!("proxy: {}", e.kind()))?;
        if handshake.received(n).map_err(|e| e.to_string())? {
            return Ok(());
        }
    }
}
