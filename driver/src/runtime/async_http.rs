//! HTTP/1.1 on the async-io reactor: ureq-proto's sans-IO client state machine (the protocol
//! core of ureq: request heads, bodies, chunked answers, keep-alive decisions) over async-net
//! TCP, a `CONNECT` tunnel when a proxy is set, and futures-rustls. Requests in flight wait in
//! the reactor, not on a thread each: N replies in flight cost N sockets and no thread switch
//! per reply. Kept connections are reused ([`IDLE_PER_HOST`] per host, for [`IDLE_FOR`]).
//!
//! Only what the SDK needs: one request per connection at a time, no redirects (a 3xx is an
//! answer), bodies read whole (at most [`MAX_BODY`]), the whole exchange within the client's
//! timeout, errors without the URL. A kept connection that turns out closed (the server dropped
//! it while idle) is replaced once by a new one: for any request when the write failed, and
//! after a written request with no byte of answer only for an idempotent method (a `POST`
//! the server may have acted on is never sent twice).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dingtalk_core::error::ClientError;
use dingtalk_core::proxy::{Proxies, ProxyUrl};
use futures_util::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ureq_proto::client::{Call, RecvBodyResult, RecvResponseResult, SendRequestResult};

use super::{HttpSettings, MAX_BODY};

/// Most idle connections kept per host (the default handler concurrency: N replies in flight
/// reuse N connections).
pub(crate) const IDLE_PER_HOST: usize = 64;
/// Most hosts with idle connections kept.
const HOSTS: usize = 64;
/// An idle connection older than this is closed instead of reused.
const IDLE_FOR: Duration = Duration::from_secs(50);
/// Largest answer head.
const MAX_HEAD: usize = 64 * 1024;
/// The scratch buffer a request is encoded through (one per thread; see `SCRATCH`).
const BUF: usize = 16 * 1024;
/// Bytes asked of the socket per read of an answer.
const READ_CHUNK: usize = 4 * 1024;

/// A connection: plain TCP or TLS over it.
enum Io {
    Plain(async_net::TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<async_net::TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_close(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

struct Conn {
    io: Io,
    idle_since: Instant,
}

impl Conn {
    /// Whether a kept connection can still carry a request: the server has not closed it (a
    /// read would not wait) and it is not too old.
    fn usable(&mut self) -> bool {
        if self.idle_since.elapsed() > IDLE_FOR {
            return false;
        }
        let mut probe = [0u8; 1];
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        // Pending: nothing to read, the connection is open. Anything else (end of stream,
        // an error, or bytes nobody asked for) makes it unusable.
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut probe)
            .is_pending()
    }
}

/// Where a connection goes: the target, and the proxy it tunnels through.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    https: bool,
    host: String,
    port: u16,
    proxy: Option<(String, u16)>,
}

/// Why an exchange failed.
enum Fail {
    /// A kept connection the server had closed: the request could not be written, or (for an
    /// idempotent method only) no byte of the answer came. Safe to send again on a new one.
    Unanswered(ClientError),
    /// Anything else.
    Other(ClientError),
}

/// The async HTTP client of the async-io runtime; cheap to clone.
#[derive(Clone)]
pub(crate) struct AsyncHttp {
    inner: Arc<Inner>,
}

struct Inner {
    tls: futures_rustls::TlsConnector,
    timeout: Duration,
    proxies: Proxies,
    idle: Mutex<HashMap<Key, Vec<Conn>>>,
    /// Largest answer body ([`MAX_BODY`]; smaller in tests).
    max_body: u64,
}

impl std::fmt::Debug for AsyncHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncHttp")
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

fn transport(text: impl Into<String>) -> ClientError {
    ClientError::Transport(text.into())
}

fn io_error(e: &std::io::Error) -> ClientError {
    transport(format!("io: {}", e.kind()))
}

fn proto_error(e: &ureq_proto::Error) -> ClientError {
    // Its text may quote a header or the URI: only the kind of failure goes out.
    use ureq_proto::Error as E;
    transport(match e {
        E::HttpParseFail(_)
        | E::HttpParseTooManyHeaders
        | E::ChunkLenNotAscii
        | E::ChunkLenNotANumber
        | E::ChunkExpectedCrLf
        | E::BadContentLengthHeader
        | E::UnsupportedVersion => "invalid HTTP answer",
        _ => "HTTP protocol error",
    })
}

impl AsyncHttp {
    pub(crate) fn new(settings: &HttpSettings) -> Self {
        // HTTP/1.1 only: a configuration that offers h2 must not get it.
        let mut tls = (*settings.tls).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            inner: Arc::new(Inner {
                tls: futures_rustls::TlsConnector::from(Arc::new(tls)),
                timeout: settings.timeout,
                proxies: settings.proxies.clone(),
                idle: Mutex::default(),
                max_body: MAX_BODY,
            }),
        }
    }

    /// Sends `request` and reads the whole answer, within the client's timeout.
    pub(crate) async fn send(
        self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, ClientError> {
        let exchange = std::pin::pin!(self.send_untimed(request));
        let timer = async_io::Timer::after(self.inner.timeout);
        match futures_util::future::select(exchange, timer).await {
            futures_util::future::Either::Left((result, _)) => result,
            futures_util::future::Either::Right(_) => Err(transport("timed out")),
        }
    }

    async fn send_untimed(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, ClientError> {
        let key = self.key(request.uri())?;
        let proxy = self.inner.proxies.for_uri(request.uri()).cloned();
        if let Some(mut conn) = self.take_idle(&key) {
            match exchange(&mut conn, &request, self.inner.max_body).await {
                Ok((response, keep)) => {
                    if keep {
                        self.put_idle(key, conn);
                    }
                    return Ok(response);
                }
                // Closed by the server while it was kept: once more on a new connection.
                Err(Fail::Unanswered(_)) => {}
                Err(Fail::Other(e)) => return Err(e),
            }
        }
        let mut conn = self.connect(&key, proxy.as_ref()).await?;
        match exchange(&mut conn, &request, self.inner.max_body).await {
            Ok((response, keep)) => {
                if keep {
                    self.put_idle(key, conn);
                }
                Ok(response)
            }
            Err(Fail::Unanswered(e) | Fail::Other(e)) => Err(e),
        }
    }

    fn key(&self, uri: &http::Uri) -> Result<Key, ClientError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(transport("invalid URL")),
        };
        let (host, port) = super::host_port(uri).map_err(|_| transport("invalid URL"))?;
        let proxy = self
            .inner
            .proxies
            .for_uri(uri)
            .map(|p| (p.host().to_owned(), p.port()));
        Ok(Key {
            https,
            host,
            port,
            proxy,
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Conn>>> {
        self.inner.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used kept connection that is still open, if any.
    fn take_idle(&self, key: &Key) -> Option<Conn> {
        let mut idle = self.idle();
        let conns = idle.get_mut(key)?;
        while let Some(mut conn) = conns.pop() {
            if conn.usable() {
                return Some(conn);
            }
        }
        None
    }

    fn put_idle(&self, key: Key, mut conn: Conn) {
        let now = Instant::now();
        conn.idle_since = now;
        let mut idle = self.idle();
        if idle.len() >= HOSTS && !idle.contains_key(&key) {
            // Forget hosts with nothing kept; past the bound, the connection is closed.
            idle.retain(|_, conns| !conns.is_empty());
            if idle.len() >= HOSTS {
                return;
            }
        }
        let conns = idle.entry(key).or_default();
        // The oldest go first; they would be closed for age first anyway.
        // One clock read for all of them (64 kept connections: 64 reads per request before).
        conns.retain(|c| now.saturating_duration_since(c.idle_since) <= IDLE_FOR);
        if conns.len() < IDLE_PER_HOST {
            conns.push(conn);
        }
    }

    /// TCP (to the target, or to the proxy and a `CONNECT` tunnel through it), then TLS for
    /// `https`. Errors carry no URL and no proxy credentials.
    async fn connect(&self, key: &Key, proxy: Option<&ProxyUrl>) -> Result<Conn, ClientError> {
        let mut tcp = match proxy {
            None => async_net::TcpStream::connect((key.host.as_str(), key.port))
                .await
                .map_err(|e| transport(format!("TCP connect: {}", e.kind())))?,
            Some(p) => async_net::TcpStream::connect((p.host(), p.port()))
                .await
                .map_err(|e| transport(format!("TCP connect to the proxy: {}", e.kind())))?,
        };
        tcp.set_nodelay(true).map_err(|e| io_error(&e))?;
        if let Some(p) = proxy {
            super::open_tunnel(&mut tcp, p, &key.host, key.port)
                .await
                .map_err(transport)?;
        }
        let io = if key.https {
            let name = rustls::pki_types::ServerName::try_from(key.host.clone())
                .map_err(|_| transport("invalid server name"))?;
            let tls = self
                .inner
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| transport(format!("TLS: {}", e.kind())))?;
            Io::Tls(Box::new(tls))
        } else {
            Io::Plain(tcp)
        };
        Ok(Conn {
            io,
            idle_since: Instant::now(),
        })
    }
}

thread_local! {
    /// The buffer ureq-proto encodes a request into, piece by piece, before it is copied to the
    /// wire buffer: one per thread, reused, rather than 16 KiB allocated and zeroed per request.
    /// (Used only between awaits: an exchange never holds it across one.)
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes the request head and body into `wire` (with `out` as ureq-proto's scratch) and
/// returns the call, ready for the answer.
fn encode(
    head: http::Request<()>,
    body: &[u8],
    out: &mut Vec<u8>,
    wire: &mut Vec<u8>,
) -> Result<Call<ureq_proto::client::state::RecvResponse>, Fail> {
    let other = Fail::Other;
    if out.len() < BUF {
        out.resize(BUF, 0);
    }
    let call = Call::new(head).map_err(|e| other(proto_error(&e)))?;
    let mut call = call.proceed();
    while !call.can_proceed() {
        let n = call.write(out).map_err(|e| other(proto_error(&e)))?;
        if n == 0 {
            return Err(other(transport("invalid request")));
        }
        wire.extend_from_slice(&out[..n]);
    }
    match call.proceed().map_err(|e| other(proto_error(&e)))? {
        Some(SendRequestResult::SendBody(mut send)) => {
            let mut input = body;
            loop {
                let (used, n) = send.write(input, out).map_err(|e| other(proto_error(&e)))?;
                wire.extend_from_slice(&out[..n]);
                input = &input[used..];
                if input.is_empty() && send.can_proceed() {
                    break;
                }
                if input.is_empty() {
                    // The end of the body (nothing for a content-length body).
                    let (_, n) = send.write(&[], out).map_err(|e| other(proto_error(&e)))?;
                    wire.extend_from_slice(&out[..n]);
                    if !send.can_proceed() {
                        return Err(other(transport("invalid request")));
                    }
                    break;
                }
            }
            send.proceed()
                .ok_or_else(|| other(transport("invalid request")))
        }
        Some(SendRequestResult::RecvResponse(recv)) => Ok(recv),
        // No `Expect: 100-continue` is ever sent.
        Some(SendRequestResult::Await100(_)) | None => Err(other(transport("invalid request"))),
    }
}

/// Sends `request` on `conn` and reads the answer; `true` with it when the connection can be
/// kept for another request.
async fn exchange(
    conn: &mut Conn,
    request: &http::Request<Vec<u8>>,
    max_body: u64,
) -> Result<(http::Response<Vec<u8>>, bool), Fail> {
    let other = Fail::Other;
    // The head (ureq-proto adds `host`); the body goes with `content-length`.
    let mut head = http::Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(http::Version::HTTP_11);
    for (name, value) in request.headers() {
        if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
            head = head.header(name, value);
        }
    }
    let body = request.body();
    let sends_body = !body.is_empty()
        || request.method() == http::Method::POST
        || request.method() == http::Method::PUT
        || request.method() == http::Method::PATCH;
    if sends_body {
        head = head.header(http::header::CONTENT_LENGTH, body.len());
    }
    let head = head
        .body(())
        .map_err(|_| other(transport("invalid request")))?;
    // The head and the body in one buffer, written with one flush.
    let mut wire = Vec::with_capacity(1024 + body.len());
    let mut recv = SCRATCH.with(|out| {
        let mut out = out.borrow_mut();
        encode(head, body, &mut out, &mut wire)
    })?;
    // A write that fails on a kept connection: the server closed it.
    let write = async {
        conn.io.write_all(&wire).await?;
        conn.io.flush().await
    };
    write.await.map_err(|e| Fail::Unanswered(io_error(&e)))?;

    // The request went out: without an answer, only an idempotent one may be sent again (the
    // server may have acted on a `POST` before it closed).
    let resend = matches!(
        *request.method(),
        http::Method::GET
            | http::Method::HEAD
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::OPTIONS
    );
    // The answer's head.
    let mut input: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut received = 0usize;
    let response = loop {
        let (used, response) = recv
            .try_response(&input, false)
            .map_err(|e| other(proto_error(&e)))?;
        input.drain(..used);
        if let Some(response) = response {
            break response;
        }
        if input.len() >= MAX_HEAD {
            return Err(other(transport("answer head too large")));
        }
        let n = read_more(&mut conn.io, &mut input).await.map_err(|e| {
            if received == 0 && resend {
                Fail::Unanswered(io_error(&e))
            } else {
                other(io_error(&e))
            }
        })?;
        if n == 0 {
            let e = transport("connection closed before the answer");
            return Err(if received == 0 && resend {
                Fail::Unanswered(e)
            } else {
                other(e)
            });
        }
        received += n;
    };
    let (parts, ()) = response.into_parts();
    let mut data = Vec::new();
    let keep = match recv.proceed() {
        Some(RecvResponseResult::RecvBody(mut body)) => {
            let close_delimited = matches!(body.body_mode(), ureq_proto::BodyMode::CloseDelimited);
            loop {
                if !input.is_empty() {
                    // Decoded straight into `data`: a body decodes to at most its input.
                    let start = data.len();
                    data.resize(start.saturating_add(input.len()), 0);
                    let (used, n) = body
                        .read(&input, &mut data[start..])
                        .map_err(|e| other(proto_error(&e)))?;
                    data.truncate(start.saturating_add(n));
                    input.drain(..used);
                    if data.len() as u64 > max_body {
                        return Err(other(transport("answer body too large")));
                    }
                    if used > 0 || n > 0 {
                        continue;
                    }
                }
                if !close_delimited && body.can_proceed() {
                    break;
                }
                if input.len() >= MAX_HEAD {
                    // The parser took none of this: a chunk header that never ends.
                    return Err(other(transport("invalid HTTP answer")));
                }
                let n = read_more(&mut conn.io, &mut input)
                    .await
                    .map_err(|e| other(io_error(&e)))?;
                if n == 0 {
                    if close_delimited {
                        break;
                    }
                    return Err(other(transport("connection closed inside the answer")));
                }
            }
            match body.proceed() {
                Some(RecvBodyResult::Cleanup(cleanup)) => {
                    !close_delimited && !cleanup.must_close_connection()
                }
                // A redirect is an answer like any other (never followed); its connection
                // is not kept.
                Some(RecvBodyResult::Redirect(_)) | None => false,
            }
        }
        Some(RecvResponseResult::Cleanup(cleanup)) => !cleanup.must_close_connection(),
        Some(RecvResponseResult::Redirect(_)) | None => false,
    };
    // Bytes past the answer: not a connection to keep.
    let keep = keep && input.is_empty();
    Ok((http::Response::from_parts(parts, data), keep))
}

/// Reads what is there into `input` (through `buf`); the number of bytes, 0 at the end.
async fn read_more(io: &mut Io, input: &mut Vec<u8>) -> std::io::Result<usize> {
    // Read straight into `input`'s tail (zeroed first: `read` takes initialised bytes). If this
    // future is dropped mid-read, the exchange, and `input` with it, is dropped too.
    let start = input.len();
    input.resize(start.saturating_add(READ_CHUNK), 0);
    let read = io.read(&mut input[start..]).await;
    input.truncate(start.saturating_add(*read.as_ref().unwrap_or(&0)));
    read
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests abort on failure
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    fn client(timeout: Duration) -> AsyncHttp {
        let tls = crate::default_tls_config().unwrap();
        AsyncHttp::new(&HttpSettings::new(tls, timeout))
    }

    /// Reads one request (head and `content-length` body) from `conn`; its request line.
    fn read_request(conn: &mut BufReader<TcpStream>) -> Option<String> {
        let mut first = String::new();
        if conn.read_line(&mut first).ok()? == 0 {
            return None;
        }
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().ok()?;
            }
        }
        let mut body = vec![0; len];
        conn.read_exact(&mut body).ok()?;
        Some(first.trim_end().to_owned())
    }

    fn post(base: &str, body: &str) -> http::Request<Vec<u8>> {
        http::Request::post(format!("{base}/robot/send?access_token=secret-token"))
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    fn request(method: http::Method, base: &str, n: u32) -> http::Request<Vec<u8>> {
        http::Request::builder()
            .method(method)
            .uri(format!("{base}/x?n={n}"))
            .body(Vec::new())
            .unwrap()
    }

    /// Accepts the next connection.
    fn next(listener: &TcpListener) -> BufReader<TcpStream> {
        BufReader::new(listener.accept().unwrap().0)
    }

    #[test]
    fn a_kept_connection_the_server_dropped_is_replaced_once_but_a_post_is_never_sent_twice() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let probe = listener.try_clone().unwrap();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            // 1: answered, kept alive. 2 (a GET) arrives on it and the server closes without
            // an answer, as one that drops an idle connection just as a request comes.
            let mut one = next(&listener);
            seen.push(read_request(&mut one).unwrap());
            one.get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst")
                .unwrap();
            seen.push(read_request(&mut one).unwrap());
            drop(one);
            // The GET again, on a new connection: a chunked answer, then `connection: close`.
            let mut two = next(&listener);
            seen.push(read_request(&mut two).unwrap());
            two.get_mut()
                .write_all(
                    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nsec\r\n3\r\nond\r\n0\r\n\r\n",
                )
                .unwrap();
            drop(two);
            // 3: a redirect (its connection is not kept by the client).
            let mut three = next(&listener);
            seen.push(read_request(&mut three).unwrap());
            three
                .get_mut()
                .write_all(b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
            // 4: answered and kept; 5 (a POST) arrives on it, and the server closes without an
            // answer.
            let mut four = next(&listener);
            seen.push(read_request(&mut four).unwrap());
            four.get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .unwrap();
            seen.push(read_request(&mut four).unwrap());
            drop(four);
            seen
        });
        let http = client(Duration::from_secs(10));
        let calls = [
            (http::Method::POST, 1),
            (http::Method::GET, 2),
            (http::Method::POST, 3),
            (http::Method::POST, 4),
            (http::Method::POST, 5),
        ];
        let mut results = async_io::block_on(async {
            let mut results = Vec::new();
            for (method, n) in calls {
                results.push(http.clone().send(request(method, &base, n)).await);
            }
            results
        })
        .into_iter();
        let mut next_result = || results.next().unwrap();
        let (one, two, three, four, five) = (
            next_result(),
            next_result(),
            next_result(),
            next_result(),
            next_result(),
        );
        assert_eq!(one.unwrap().body(), b"first");
        assert_eq!(two.unwrap().body(), b"second");
        // A redirect is an answer, not followed.
        assert_eq!(three.unwrap().status(), 307);
        assert_eq!(four.unwrap().body(), b"ok");
        // The POST the server may have acted on is an error, not sent again.
        let error = five.unwrap_err();
        assert!(error.to_string().contains("closed"), "{error}");
        assert_eq!(
            server.join().unwrap(),
            [
                "POST /x?n=1 HTTP/1.1",
                "GET /x?n=2 HTTP/1.1",
                "GET /x?n=2 HTTP/1.1",
                "POST /x?n=3 HTTP/1.1",
                "POST /x?n=4 HTTP/1.1",
                "POST /x?n=5 HTTP/1.1",
            ]
        );
        // No fifth connection: the client returned without trying the POST again.
        probe.set_nonblocking(true).unwrap();
        assert_eq!(
            probe.accept().map(|_| ()).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn a_silent_server_times_out_with_an_error_that_quotes_no_url() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let http = client(Duration::from_millis(200));
        let error = async_io::block_on(http.send(post(&base, "1"))).unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(text.contains("timed out"), "{text}");
        assert!(
            !text.contains("secret-token") && !text.contains("127.0.0.1"),
            "{text}"
        );
        drop(listener);
    }

    #[test]
    fn refused_connections_and_bad_urls_are_typed_errors() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http = client(Duration::from_secs(5));
        let refused = async_io::block_on(
            http.clone()
                .send(post(&format!("http://127.0.0.1:{port}"), "1")),
        )
        .unwrap_err();
        assert!(refused.to_string().contains("TCP connect"), "{refused}");
        let request = http::Request::post("ftp://example.test/x")
            .body(Vec::new())
            .unwrap();
        let bad = async_io::block_on(http.send(request)).unwrap_err();
        assert!(bad.to_string().contains("invalid URL"), "{bad}");
    }

    #[test]
    fn the_keep_alive_pool_is_bounded_per_host_in_hosts_and_in_age() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let http = client(Duration::from_secs(5));
        let mut accepted = Vec::new();
        // A kept connection, and the server's end of it.
        let open = |accepted: &mut Vec<TcpStream>| {
            let io = async_io::block_on(async_net::TcpStream::connect(addr)).unwrap();
            accepted.push(listener.accept().unwrap().0);
            Conn {
                io: Io::Plain(io),
                idle_since: Instant::now(),
            }
        };
        let key = |port: u16| Key {
            https: false,
            host: "127.0.0.1".into(),
            port,
            proxy: None,
        };
        // Per host: the connections past IDLE_PER_HOST are closed, not kept.
        for _ in 0..IDLE_PER_HOST + 3 {
            let conn = open(&mut accepted);
            http.put_idle(key(1), conn);
        }
        assert_eq!(http.idle()[&key(1)].len(), IDLE_PER_HOST);
        // Hosts: past HOSTS, a connection to a new host is closed.
        for port in 2..HOSTS as u16 + 3 {
            let conn = open(&mut accepted);
            http.put_idle(key(port), conn);
        }
        assert_eq!(http.idle().len(), HOSTS);
        assert!(!http.idle().contains_key(&key(HOSTS as u16 + 2)));
        // Age: a connection kept longer than IDLE_FOR is not reused.
        let old = Instant::now()
            .checked_sub(IDLE_FOR + Duration::from_secs(1))
            .unwrap();
        for conn in http.idle().get_mut(&key(2)).unwrap() {
            conn.idle_since = old;
        }
        assert!(http.take_idle(&key(2)).is_none());
        // A fresh one is, while the server keeps it open; once the server closed it, not.
        assert!(http.take_idle(&key(3)).is_some());
        accepted.clear();
        let mut conn = open(&mut accepted);
        accepted.clear();
        // The server's close reaches the client's socket before the probe.
        let mut probe = [0u8; 1];
        let Io::Plain(tcp) = &mut conn.io else {
            unreachable!()
        };
        assert_eq!(async_io::block_on(tcp.peek(&mut probe)).unwrap(), 0);
        http.put_idle(key(4), conn);
        assert!(http.take_idle(&key(4)).is_none());
    }

    /// Serves one connection: reads the request, writes `answer`, then keeps writing `tail`
    /// (if any) until the client goes away.
    fn serve_once(answer: Vec<u8>, tail: Option<Vec<u8>>) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut conn = next(&listener);
            read_request(&mut conn).unwrap();
            let conn = conn.get_mut();
            if conn.write_all(&answer).is_err() {
                return;
            }
            if let Some(tail) = tail {
                while conn.write_all(&tail).is_ok() {}
            }
        });
        (base, server)
    }

    #[test]
    fn answers_past_the_limits_are_typed_errors_not_unbounded_reads() {
        let mut http = client(Duration::from_secs(20));
        Arc::get_mut(&mut http.inner).unwrap().max_body = 1000;
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        let chunk: Vec<u8> = b"100\r\n"
            .iter()
            .chain(&[b'a'; 256])
            .chain(b"\r\n")
            .copied()
            .collect();
        // (answer, what follows it for as long as the client reads, the error)
        let cases: [(&[u8], Vec<u8>, &str); 4] = [
            // A head line that never ends.
            (
                b"HTTP/1.1 200 OK\r\nx-filler: ",
                vec![b'a'; 1024],
                "answer head too large",
            ),
            // A body past the limit, with a length and chunked.
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n",
                vec![b'a'; 1000],
                "answer body too large",
            ),
            (chunked, chunk, "answer body too large"),
            // A chunk header that never ends: refused once it passes the head bound, not read
            // until the timeout.
            (chunked, vec![b'0'; 64], "invalid HTTP answer"),
        ];
        for (answer, tail, expected) in cases {
            let (base, server) = serve_once(answer.to_vec(), Some(tail));
            let error = async_io::block_on(http.clone().send(post(&base, "1"))).unwrap_err();
            assert!(error.to_string().contains(expected), "{expected}: {error}");
            server.join().unwrap();
        }
    }
}
