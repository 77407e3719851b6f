//! The async-io runtime: async-net + async-tungstenite (futures-rustls) for the Stream, ureq for
//! HTTP. It spawns nothing: the driver polls every waiting handler inside its own task, so the
//! client runs unchanged under async-std, smol, `futures_lite::future::block_on`, or the
//! blocking adapter's `async_io::block_on` (which waits in the reactor itself: the thread sleeps
//! until a socket is ready, a handler finishes or the core's next deadline).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dingtalk_core::error::ClientError;
use dingtalk_core::proxy::ProxyUrl;
use futures_util::FutureExt;
use futures_util::io::{AsyncReadExt, AsyncWriteExt};

use super::{BoxFuture, HttpClient, HttpSettings, MAX_BODY, Runtime, Timer, TunnelIo};

/// Drives the client on the async-io reactor, under any executor.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncIo;

type Ws =
    async_tungstenite::WebSocketStream<async_tungstenite::smol::ClientStream<async_net::TcpStream>>;

impl Runtime for AsyncIo {
    type WebSocket = Ws;
    type Timer = IoTimer;
    type Http = Ureq;

    fn connect(
        &self,
        uri: &http::Uri,
        options: &super::ConnectOptions,
    ) -> BoxFuture<'static, Result<Ws, String>> {
        let uri = uri.clone();
        let proxy = options.proxy.clone();
        let websocket = options.websocket;
        let connector = futures_rustls::TlsConnector::from(options.tls.clone());
        Box::pin(async move {
            let (host, port) = super::host_port(&uri)?;
            let mut tcp = match &proxy {
                None => async_net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|e| format!("TCP connect: {}", e.kind()))?,
                Some(p) => async_net::TcpStream::connect((p.host(), p.port()))
                    .await
                    .map_err(|e| format!("TCP connect to the proxy: {}", e.kind()))?,
            };
            tcp.set_nodelay(true).map_err(|e| e.kind().to_string())?;
            if let Some(p) = &proxy {
                super::open_tunnel(&mut tcp, p, &host, port).await?;
            }
            async_tungstenite::smol::client_async_tls_with_connector_and_config(
                uri,
                tcp,
                Some(connector),
                Some(websocket),
            )
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| crate::driver::ws_error_text(&e))
        })
    }

    fn timer(&self, at: Instant) -> IoTimer {
        IoTimer(async_io::Timer::at(at))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) -> Option<BoxFuture<'static, ()>> {
        Some(task)
    }
}

impl TunnelIo for async_net::TcpStream {
    fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> BoxFuture<'a, std::io::Result<()>> {
        Box::pin(AsyncWriteExt::write_all(self, buf))
    }

    fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> BoxFuture<'a, std::io::Result<usize>> {
        Box::pin(AsyncReadExt::read(self, buf))
    }
}

/// async-io's resettable timer.
#[derive(Debug)]
pub struct IoTimer(async_io::Timer);

impl Timer for IoTimer {
    fn reset(&mut self, at: Instant) {
        self.0.set_at(at);
    }

    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_unpin(cx).map(|_| ())
    }
}

/// The async-io stack's HTTP client: statuses read as answers, no redirects, keep-alive
/// connections (one kept per request in flight, up to 64 per host). An async request waits in
/// the reactor (ureq-proto's HTTP/1.1 state machine over async-net and futures-rustls: no
/// thread per request); [`Ureq::inline`] sends with ureq on the calling thread instead, for a
/// program that waits anyway (the blocking adapter's handlers).
#[derive(Debug, Clone)]
pub struct Ureq {
    agents: Arc<Agents>,
    inline: bool,
    reactor: super::async_http::AsyncHttp,
}

/// One agent (and keep-alive pool) per way out: direct, and through each proxy.
#[derive(Debug)]
struct Agents {
    direct: ureq::Agent,
    via: Vec<(ProxyUrl, ureq::Agent)>,
    proxies: dingtalk_core::proxy::Proxies,
}

impl Agents {
    /// The agent a request to `uri` goes out with.
    fn for_uri(&self, uri: &http::Uri) -> &ureq::Agent {
        self.proxies
            .for_uri(uri)
            .and_then(|p| self.via.iter().find(|(q, _)| q == p))
            .map_or(&self.direct, |(_, agent)| agent)
    }
}

impl Ureq {
    /// The same agent (and connection pool), sending on the calling thread.
    #[must_use]
    pub fn inline(&self) -> Self {
        Self {
            agents: self.agents.clone(),
            inline: true,
            reactor: self.reactor.clone(),
        }
    }

    /// Sends `request` on this thread and reads the whole answer.
    pub fn send_blocking(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, ClientError> {
        send(&self.agents, request)
    }
}

/// A ureq connection's input buffer (and largest answer head); its output buffer is half.
const BUFFER: usize = 32 * 1024;

/// Most idle keep-alive connections kept per host: the default handler concurrency, so N replies
/// in flight reuse N connections instead of opening one per reply.
const IDLE_PER_HOST: usize = super::async_http::IDLE_PER_HOST;

impl HttpClient for Ureq {
    fn new(settings: &HttpSettings) -> Result<Self, crate::Error> {
        let proxies = &settings.proxies;
        let mut via = Vec::new();
        for p in [proxies.http(), proxies.https()].into_iter().flatten() {
            if !via.iter().any(|(q, _)| q == p) {
                via.push((p.clone(), agent(settings, Some(p))?));
            }
        }
        let agents = Agents {
            direct: agent(settings, None)?,
            via,
            proxies: proxies.clone(),
        };
        Ok(Self {
            agents: Arc::new(agents),
            inline: false,
            reactor: super::async_http::AsyncHttp::new(settings),
        })
    }

    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> BoxFuture<'static, Result<http::Response<Vec<u8>>, ClientError>> {
        if self.inline {
            return Box::pin(std::future::ready(send(&self.agents, request)));
        }
        Box::pin(self.reactor.clone().send(request))
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        // An async timer even inline: the caller may race it against other work (a bounded
        // state-store command), which a thread sleep would block. The blocking adapter polls
        // it under `async_io::block_on`, where the thread sleeps in the reactor anyway.
        Box::pin(async_io::Timer::after(duration).map(|_| ()))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) -> bool {
        // Each background task is long-lived and waits mostly on timers: a thread of its own
        // in the async-io reactor costs one stack and no executor.
        let spawned = std::thread::Builder::new()
            .name("dingtalk-task".into())
            .spawn(move || async_io::block_on(task));
        match spawned {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, "could not start a background thread");
                false
            }
        }
    }
}

/// A ureq agent with these settings, direct (`proxy` `None`; ureq's own reading of the
/// environment is off: the driver reads it once, the same way for every adapter) or through
/// `proxy` (`CONNECT` for every target).
fn agent(settings: &HttpSettings, proxy: Option<&ProxyUrl>) -> Result<ureq::Agent, crate::Error> {
    // TLS is ours ([`SdkTls`]): the client's rustls configuration, custom roots included. The
    // ureq TlsConfig below only names our crypto provider, so nothing in ureq falls back to a
    // process-wide default another crate may have installed.
    let tls_config = ureq::tls::TlsConfig::builder()
        .unversioned_rustls_crypto_provider(settings.tls.crypto_provider().clone())
        .build();
    let proxy = match proxy {
        None => None,
        Some(p) => {
            let host = if p.host().contains(':') {
                format!("[{}]", p.host())
            } else {
                p.host().to_owned()
            };
            let mut b = ureq::Proxy::builder(ureq::ProxyProtocol::Http)
                .host(&host)
                .port(p.port());
            if let Some((user, pass)) = p.credentials() {
                b = b.username(user).password(pass);
            }
            Some(
                b.build()
                    .map_err(|_| crate::Error::Config("the proxy setting is not valid".into()))?,
            )
        }
    };
    let config = ureq::Agent::config_builder()
        .tls_config(tls_config)
        .proxy(proxy)
        .http_status_as_error(false)
        .timeout_global(Some(settings.timeout))
        .max_redirects(0)
        .no_delay(true)
        .max_idle_connections_per_host(IDLE_PER_HOST)
        .max_idle_connections(IDLE_PER_HOST * 2)
        // Each pooled connection keeps its buffers (128 KiB each way by default): 64 kept
        // connections would hold 16 MiB. DingTalk's answers have small headers; bodies stream
        // through the input buffer.
        .input_buffer_size(BUFFER)
        .output_buffer_size(BUFFER / 2)
        .max_response_header_size(BUFFER)
        .build();
    use ureq::unversioned::transport::{ConnectProxyConnector, Connector};
    // ureq speaks HTTP/1.1 only: a configuration that offers h2 must not get it.
    let mut tls = (*settings.tls).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(SdkTcp)
            .chain(SdkTls(Arc::new(tls)));
    Ok(ureq::Agent::with_parts(
        config,
        connector,
        CachingResolver::<ureq::unversioned::resolver::DefaultResolver>::default(),
    ))
}

/// ureq's plain-TCP step (the shape of ureq's own `TcpConnector`), with fewer system calls per
/// request on a kept connection:
///
/// * the liveness check before a kept connection is reused is one `recv(MSG_PEEK |
///   MSG_DONTWAIT)`, where ureq's switches the socket to non-blocking, reads, and switches it
///   back (three calls);
/// * a socket timeout is set again only when the request's remaining time is longer than the
///   one set, or shorter by more than 1 % of it, where ureq's sets it before every read and
///   write (the remaining time changes every call). A read or write may so wait up to 1 % of
///   the timeout past the request's deadline.
///
/// In the e2e bench's replies mode a blocking handler's reply made about 18 system calls, 7 of
/// them for these two checks (strace).
#[derive(Debug)]
struct SdkTcp;

impl<In: ureq::unversioned::transport::Transport> ureq::unversioned::transport::Connector<In>
    for SdkTcp
{
    type Out = ureq::unversioned::transport::Either<In, PlainTcp>;

    fn connect(
        &self,
        details: &ureq::unversioned::transport::ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        use ureq::unversioned::transport::{Either, LazyBuffers, ShutdownHandle};
        if chained.is_some() {
            return Ok(chained.map(Either::A));
        }
        let stream = connect_any(details)?;
        if details.config.no_delay() {
            stream.set_nodelay(true)?;
        }
        let transport = PlainTcp {
            stream: Arc::new(stream),
            buffers: LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            ),
            read_timeout: None,
            write_timeout: None,
            unsent: Vec::new(),
        };
        let handle: std::sync::Weak<dyn ShutdownHandle> =
            Arc::downgrade(&transport.stream) as std::sync::Weak<dyn ShutdownHandle>;
        (details.register_shutdown)(handle)?;
        Ok(Some(Either::B(transport)))
    }
}

/// Connects to the first of the resolved addresses that answers, each given an equal share of
/// what is left of the connect timeout (at least 10 ms); none is tried once it is spent.
fn connect_any(
    details: &ureq::unversioned::transport::ConnectionDetails<'_>,
) -> Result<std::net::TcpStream, ureq::Error> {
    use std::io::ErrorKind;
    let addrs: Vec<std::net::SocketAddr> = details.addrs.iter().copied().collect();
    let started = Instant::now();
    let mut last = None;
    for (i, addr) in addrs.iter().enumerate() {
        let left = addrs.len().saturating_sub(i).max(1);
        let rest = details
            .timeout
            .not_zero()
            .map(|t| t.saturating_sub(started.elapsed()));
        if i > 0 && rest.is_some_and(|r| r.is_zero()) {
            break;
        }
        let share = rest.map(|rest| {
            (rest / u32::try_from(left).unwrap_or(u32::MAX)).max(Duration::from_millis(10))
        });
        let attempt = match share {
            Some(t) => std::net::TcpStream::connect_timeout(addr, t),
            None => std::net::TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok(stream),
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                last = Some(ureq::Error::Timeout(ureq::Timeout::Connect));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused
                        | ErrorKind::HostUnreachable
                        | ErrorKind::NetworkUnreachable
                        | ErrorKind::NetworkDown
                        | ErrorKind::AddrNotAvailable
                ) =>
            {
                last = Some(ureq::Error::Io(e));
            }
            Err(e) => return Err(ureq::Error::Io(e)),
        }
    }
    Err(last.unwrap_or_else(|| {
        ureq::Error::Io(std::io::Error::new(
            ErrorKind::ConnectionRefused,
            "no address to connect to",
        ))
    }))
}

/// A plain TCP connection for ureq (see [`SdkTcp`]).
struct PlainTcp {
    /// Shared (weakly) with ureq's shutdown handle.
    stream: Arc<std::net::TcpStream>,
    buffers: ureq::unversioned::transport::LazyBuffers,
    /// The socket timeouts as last set (`None`: none set, or no timeout).
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// Output ureq handed over and not yet written (see [`UNSENT_MAX`]).
    unsent: Vec<u8>,
}

/// Most output a [`PlainTcp`] holds back. ureq hands a request over in parts (the head, then
/// the body); written as they come, a small reply costs two `sendto` calls and two TCP
/// segments. The parts are kept until ureq waits for input (it always does after a request:
/// for the response, or for `100 Continue`), or until they would exceed this, and are then
/// written in one call. Over HTTPS, the TLS records of the head and the body are joined alike.
const UNSENT_MAX: usize = 16 * 1024;

impl std::fmt::Debug for PlainTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainTcp").finish_non_exhaustive()
    }
}

/// The timeout to set on the socket for a call that must end within `wanted`, if the one set
/// (`set`) does not do: it is set again when `wanted` is longer (the call would time out
/// early), or shorter by more than 1 % of it.
fn timeout_to_set(set: Option<Duration>, wanted: Option<Duration>) -> Option<Option<Duration>> {
    match (set, wanted) {
        (Some(set), Some(wanted)) if wanted <= set && set - wanted <= set / 100 => None,
        (None, None) => None,
        _ => Some(wanted),
    }
}

impl PlainTcp {
    fn timeout(
        slot: &mut Option<Duration>,
        timeout: ureq::unversioned::transport::NextTimeout,
        set: impl FnOnce(Option<Duration>) -> std::io::Result<()>,
    ) -> Result<(), ureq::Error> {
        if timeout.after.is_zero() {
            return Err(ureq::Error::Timeout(timeout.reason));
        }
        let wanted = timeout.not_zero().map(|d| *d);
        if let Some(new) = timeout_to_set(*slot, wanted) {
            set(new)?;
            *slot = new;
        }
        Ok(())
    }
}

impl PlainTcp {
    /// Writes the output held back, within `timeout` (the request's deadline: the SDK sets one
    /// global timeout per request, so every step of it shares one deadline).
    fn send_unsent(
        &mut self,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<(), ureq::Error> {
        use std::io::Write;
        if self.unsent.is_empty() {
            return Ok(());
        }
        let timeout = timeout.for_write();
        let stream = self.stream.clone();
        Self::timeout(&mut self.write_timeout, timeout, |t| {
            stream.set_write_timeout(t)
        })?;
        let written = (&*self.stream)
            .write_all(&self.unsent)
            .map_err(|e| timed_out(e, timeout.reason));
        // Written or failed, it is not sent again: a failed connection is not reused.
        self.unsent.clear();
        written
    }
}

/// A socket timeout as ureq's error for it.
fn timed_out(e: std::io::Error, reason: ureq::Timeout) -> ureq::Error {
    if matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) {
        ureq::Error::Timeout(reason)
    } else {
        ureq::Error::Io(e)
    }
}

impl ureq::unversioned::transport::Transport for PlainTcp {
    fn buffers(&mut self) -> &mut dyn ureq::unversioned::transport::Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<(), ureq::Error> {
        use std::io::Write;
        use ureq::unversioned::transport::Buffers;
        if self.unsent.len().saturating_add(amount) <= UNSENT_MAX {
            // Held back: the socket's timeout is set when it is written (`send_unsent`).
            let output = &self.buffers.output()[..amount];
            self.unsent.extend_from_slice(output);
            return Ok(());
        }
        self.send_unsent(timeout)?;
        let timeout = timeout.for_write();
        let stream = self.stream.clone();
        Self::timeout(&mut self.write_timeout, timeout, |t| {
            stream.set_write_timeout(t)
        })?;
        let output = &self.buffers.output()[..amount];
        (&*self.stream)
            .write_all(output)
            .map_err(|e| timed_out(e, timeout.reason))
    }

    fn maybe_await_input(
        &mut self,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<bool, ureq::Error> {
        use ureq::unversioned::transport::Buffers;
        // Whatever ureq does next depends on the peer having the request.
        self.send_unsent(timeout)?;
        if self.buffers.can_use_input() {
            return Ok(true);
        }
        self.await_input(timeout)
    }

    fn await_input(
        &mut self,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<bool, ureq::Error> {
        use std::io::Read;
        use ureq::unversioned::transport::Buffers;
        self.send_unsent(timeout)?;
        let timeout = timeout.for_read();
        let stream = self.stream.clone();
        Self::timeout(&mut self.read_timeout, timeout, |t| {
            stream.set_read_timeout(t)
        })?;
        let input = self.buffers.input_append_buf();
        let amount = loop {
            match (&*self.stream).read(input) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other.map_err(|e| timed_out(e, timeout.reason))?,
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // Open and idle: nothing to read, and reading would block. Anything else (the peer's
        // FIN, an error, stray bytes) means the connection cannot carry a new request.
        if !self.unsent.is_empty() {
            return false;
        }
        let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
        #[cfg(unix)]
        let probe = socket2::SockRef::from(&*self.stream)
            .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT);
        #[cfg(not(unix))]
        let probe = {
            let sock = socket2::SockRef::from(&*self.stream);
            let probe = sock
                .set_nonblocking(true)
                .and_then(|()| sock.peek(&mut byte));
            if sock.set_nonblocking(false).is_err() {
                return false;
            }
            probe
        };
        matches!(probe, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// ureq's TLS step with the client's own rustls configuration (its roots, its verifier, its
/// crypto provider), as reqwest and the WebSocket use it: one TLS setup for every connection.
#[derive(Debug)]
struct SdkTls(Arc<rustls::ClientConfig>);

impl<In: ureq::unversioned::transport::Transport> ureq::unversioned::transport::Connector<In>
    for SdkTls
{
    type Out = ureq::unversioned::transport::Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ureq::unversioned::transport::ConnectionDetails<'_>,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        use ureq::unversioned::transport::{Either, LazyBuffers, TransportAdapter};
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .ok_or(ureq::Error::Tls("no host to verify"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let name = rustls::pki_types::ServerName::try_from(host)
            .map_err(|_| ureq::Error::Tls("invalid server name"))?;
        let mut conn = rustls::ClientConnection::new(self.0.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        Ok(Some(Either::B(TlsTransport {
            buffers: LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            ),
            stream: rustls::StreamOwned { conn, sock },
        })))
    }
}

/// A TLS connection for ureq (the shape of ureq's own rustls transport).
struct TlsTransport {
    buffers: ureq::unversioned::transport::LazyBuffers,
    stream: rustls::StreamOwned<
        rustls::ClientConnection,
        ureq::unversioned::transport::TransportAdapter,
    >,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl ureq::unversioned::transport::Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn ureq::unversioned::transport::Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<(), ureq::Error> {
        use std::io::Write;
        use ureq::unversioned::transport::Buffers;
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(
        &mut self,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<bool, ureq::Error> {
        use std::io::Read;
        use ureq::unversioned::transport::Buffers;
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

fn send(
    agents: &Agents,
    request: http::Request<Vec<u8>>,
) -> Result<http::Response<Vec<u8>>, ClientError> {
    let response = agents
        .for_uri(request.uri())
        .run(request)
        .map_err(transport)?;
    let (parts, mut body) = response.into_parts();
    let bytes = body
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(transport)?;
    Ok(http::Response::from_parts(parts, bytes))
}

/// A transport error without the URL (which may carry an access token or a signature).
fn transport(e: ureq::Error) -> ClientError {
    ClientError::Transport(match e {
        ureq::Error::BadUri(_) => "invalid URL".to_owned(),
        ureq::Error::Io(io) => format!("io: {}", io.kind()),
        other => other.to_string(),
    })
}

/// How long a resolved host's addresses are reused.
const RESOLVE_TTL: Duration = Duration::from_secs(60);
/// Most hosts whose addresses are kept.
const RESOLVE_CACHE: usize = 64;

/// ureq resolves the host before each request, even one that reuses a pooled connection, and
/// with a timeout set it starts a thread per lookup; this keeps each host's addresses for
/// [`RESOLVE_TTL`] (at most [`RESOLVE_CACHE`] hosts), so a reply on a kept connection costs no
/// lookup and no thread. Failures are not kept.
#[derive(Debug, Default)]
struct CachingResolver<R = ureq::unversioned::resolver::DefaultResolver> {
    inner: R,
    cache: std::sync::Mutex<
        std::collections::HashMap<
            String,
            (Instant, ureq::unversioned::resolver::ResolvedSocketAddrs),
        >,
    >,
}

impl<R: ureq::unversioned::resolver::Resolver> ureq::unversioned::resolver::Resolver
    for CachingResolver<R>
{
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let key = match (uri.scheme(), uri.authority()) {
            (Some(scheme), Some(authority)) => {
                ureq::unversioned::resolver::DefaultResolver::host_and_port(scheme, authority)
            }
            _ => None,
        };
        let Some(key) = key else {
            return self.inner.resolve(uri, config, timeout);
        };
        let now = Instant::now();
        let lock = || self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, addrs)) = lock().get(&key) {
            if now.saturating_duration_since(*at) < RESOLVE_TTL {
                return Ok(addrs.clone());
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let mut cache = lock();
        cache.retain(|_, (at, _)| now.saturating_duration_since(*at) < RESOLVE_TTL);
        if cache.len() >= RESOLVE_CACHE {
            if let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(key, (now, addrs.clone()));
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests abort on failure
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};

    /// Counts lookups; every host is 127.0.0.1.
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl Resolver for Counting {
        fn resolve(
            &self,
            _uri: &http::Uri,
            _config: &ureq::config::Config,
            _timeout: ureq::unversioned::transport::NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let mut addrs = self.empty();
            addrs.push(std::net::SocketAddr::from(([127, 0, 0, 1], 443)));
            Ok(addrs)
        }
    }

    #[test]
    fn a_host_is_looked_up_once_and_the_cache_is_bounded() {
        let resolver = CachingResolver::<Counting>::default();
        let config = ureq::Agent::config_builder().build();
        let resolve = |uri: &str| {
            resolver
                .resolve(&uri.parse().unwrap(), &config, Default::default())
                .unwrap()
        };
        for _ in 0..10 {
            assert_eq!(resolve("https://api.dingtalk.com/v1.0/x").len(), 1);
        }
        assert_eq!(
            resolver.inner.0.load(Ordering::SeqCst),
            1,
            "one lookup per host"
        );
        // The same host on another port is another entry.
        resolve("https://api.dingtalk.com:8443/x");
        assert_eq!(resolver.inner.0.load(Ordering::SeqCst), 2);
        for i in 0..(RESOLVE_CACHE * 2) {
            resolve(&format!("https://h{i}.example/"));
        }
        assert!(resolver.cache.lock().unwrap().len() <= RESOLVE_CACHE);
    }

    #[test]
    fn a_socket_timeout_is_set_again_only_when_it_would_end_a_call_early_or_1_percent_late() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // Nothing set yet: set it.
        assert_eq!(timeout_to_set(None, Some(s(10))), Some(Some(s(10))));
        // A call with a little less left (within 1 %): the one set does.
        assert_eq!(timeout_to_set(Some(s(10)), Some(s(10) - ms(100))), None);
        assert_eq!(timeout_to_set(Some(s(10)), Some(s(10))), None);
        // More than 1 % less left: set it, so the call ends at its deadline.
        assert_eq!(
            timeout_to_set(Some(s(10)), Some(ms(9_899))),
            Some(Some(ms(9_899)))
        );
        // More left than set (a new request on a kept connection after a short one): set it,
        // or the call would time out early.
        assert_eq!(timeout_to_set(Some(s(5)), Some(s(10))), Some(Some(s(10))));
        // No timeout wanted: clear one that is set.
        assert_eq!(timeout_to_set(Some(s(5)), None), Some(None));
        assert_eq!(timeout_to_set(None, None), None);
    }

    #[test]
    fn a_kept_connection_is_open_only_while_idle_and_not_closed() {
        use std::io::Write;
        use ureq::unversioned::transport::{LazyBuffers, Transport};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let connect = || {
            let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            let client = PlainTcp {
                stream: Arc::new(stream),
                buffers: LazyBuffers::new(64, 64),
                read_timeout: None,
                write_timeout: None,
                unsent: Vec::new(),
            };
            (client, server)
        };
        // Idle: open, and the probe neither blocks nor consumes anything.
        let (mut client, mut server) = connect();
        assert!(client.is_open());
        assert!(client.is_open());
        // Stray bytes from the server: not a connection to send a request on.
        server.write_all(b"x").unwrap();
        server.flush().unwrap();
        wait_readable(&client.stream);
        assert!(!client.is_open());
        // The server closed it: not open.
        let (mut client, server) = connect();
        drop(server);
        wait_readable(&client.stream);
        assert!(!client.is_open());
    }

    #[test]
    fn a_request_to_a_server_that_never_answers_ends_at_its_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts, reads the request, and never answers (the socket stays open).
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().take(2) {
                let _ = held_tx.send(());
                held.push(stream);
            }
            std::thread::park();
        });
        let settings = HttpSettings::new(
            crate::tls::default_tls_config().unwrap(),
            Duration::from_millis(300),
        );
        let ureq = <Ureq as HttpClient>::new(&settings).unwrap();
        for _ in 0..2 {
            let request = http::Request::post(format!("http://{addr}/v1.0/x"))
                .body(b"{}".to_vec())
                .unwrap();
            let started = Instant::now();
            // On a thread of its own, so that a request that never ends fails the test.
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let sender = ureq.clone();
            std::thread::spawn(move || {
                let _ = done_tx.send(sender.send_blocking(request));
            });
            let err = done_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a 300 ms request was still waiting after 10 s")
                .unwrap_err();
            let took = started.elapsed();
            assert!(err.to_string().contains("timeout"), "{err}");
            assert!(
                took >= Duration::from_millis(290) && took < Duration::from_secs(5),
                "a 300 ms request ended after {took:?}"
            );
        }
        assert!(held_rx.try_recv().is_ok());
    }

    #[test]
    fn a_request_goes_out_in_one_write_when_ureq_waits_for_the_answer() {
        use std::io::{Read, Write};
        use ureq::unversioned::transport::{LazyBuffers, NextTimeout, Transport};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut client = PlainTcp {
            stream: Arc::new(stream),
            buffers: LazyBuffers::new(64, 2 * UNSENT_MAX),
            read_timeout: None,
            write_timeout: None,
            unsent: Vec::new(),
        };
        let transmit = |client: &mut PlainTcp, bytes: &[u8]| {
            client.buffers().output()[..bytes.len()].copy_from_slice(bytes);
            client
                .transmit_output(bytes.len(), NextTimeout::default())
                .unwrap();
        };
        // The head, then the body: held back, and the connection is not idle meanwhile.
        transmit(&mut client, b"POST / HTTP/1.1\r\n\r\n");
        transmit(&mut client, b"body");
        assert!(
            !client.is_open(),
            "a connection with unsent output is not idle"
        );
        server.set_nonblocking(true).unwrap();
        let mut got = [0u8; 64];
        assert_eq!(
            server.read(&mut got).map_err(|e| e.kind()),
            Err(std::io::ErrorKind::WouldBlock),
            "nothing is written before ureq waits for the answer"
        );
        server.set_nonblocking(false).unwrap();
        // Waiting for the answer writes both parts first, in one call.
        server
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap();
        assert!(client.await_input(NextTimeout::default()).unwrap());
        wait_readable(&server);
        server.set_nonblocking(true).unwrap();
        let n = server.read(&mut got).unwrap();
        assert_eq!(&got[..n], b"POST / HTTP/1.1\r\n\r\nbody");
        assert!(client.unsent.is_empty());
        // More than UNSENT_MAX at once is written at once (after what was held back).
        transmit(&mut client, b"head");
        let big = vec![b'x'; UNSENT_MAX];
        transmit(&mut client, &big);
        assert!(client.unsent.is_empty());
        server.set_nonblocking(false).unwrap();
        let mut all = vec![0u8; 4 + UNSENT_MAX];
        server.read_exact(&mut all).unwrap();
        assert_eq!(&all[..4], b"head");
        assert!(all[4..].iter().all(|&b| b == b'x'));
    }

    /// Blocks until `stream` has something to read (data or the peer's FIN), without reading it.
    fn wait_readable(stream: &std::net::TcpStream) {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut byte = [0u8];
        // A blocking peek returns once data or the FIN arrived.
        let _ = stream.peek(&mut byte);
        stream.set_read_timeout(None).unwrap();
    }
}
