//! Serves a [`CallbackService`] with hyper (HTTP/1.1) on the async-io stack, in one future:
//! every connection and every handler call that outlives its answer are polled by it, so it
//! needs no executor and runs under async-std, smol or any `block_on` (the blocking adapter's).

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use http_body_util::BodyExt;

use super::CallbackService;
use crate::runtime::{BoxFuture, Runtime};

/// Most connections served at once; more wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a client may take to send a request's head (slow-loris bound).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `service` on `listener` (bound by you: the address and port are yours) until the future is dropped (dropping it closes every
/// connection; a handler call cut short counts as failed). Bodies over the service's
/// `max_body` are refused unread (413); at most [`MAX_CONNECTIONS`] connections at once.
pub async fn serve<R: Runtime>(
    listener: std::net::TcpListener,
    service: Arc<CallbackService<R>>,
) -> std::io::Result<()> {
    serve_until(listener, service, std::future::pending()).await
}

/// [`serve`] until `until` resolves (e.g. [`StopHandle::stopped`](crate::StopHandle::stopped)):
/// then no connection is accepted any more, open connections are closed (a request cut short is
/// resent by DingTalk and recognised as a duplicate), and the handler calls still running
/// (robot messages answered at once, slow events) finish before this returns.
pub async fn serve_until<R: Runtime>(
    listener: std::net::TcpListener,
    service: Arc<CallbackService<R>>,
    until: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut until = std::pin::pin!(until);
    let listener = async_net::TcpListener::try_from(listener)?;
    let (tx, mut spawned) = futures_channel::mpsc::unbounded::<BoxFuture<'static, ()>>();
    let mut incoming = Box::pin(listener.incoming());
    let mut connections: FuturesUnordered<BoxFuture<'static, ()>> = FuturesUnordered::new();
    let mut background: FuturesUnordered<BoxFuture<'static, ()>> = FuturesUnordered::new();
    loop {
        let accepted = std::future::poll_fn(|cx| {
            while let Poll::Ready(Some(task)) = spawned.poll_next_unpin(cx) {
                background.push(task);
            }
            while let Poll::Ready(Some(())) = background.poll_next_unpin(cx) {}
            while let Poll::Ready(Some(())) = connections.poll_next_unpin(cx) {}
            if until.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            if connections.len() < MAX_CONNECTIONS {
                if let Poll::Ready(next) = incoming.poll_next_unpin(cx) {
                    return Poll::Ready(next.map(Some));
                }
            }
            Poll::Pending
        })
        .await;
        let stream = match accepted {
            // Stopped: close the connections, let the running handler calls finish.
            None => {
                drop(connections);
                drop(tx);
                while let Some(task) = spawned.next().await {
                    background.push(task);
                }
                while background.next().await.is_some() {}
                return Ok(());
            }
            Some(None) => return Ok(()),
            Some(Some(Ok(stream))) => stream,
            Some(Some(Err(e))) => {
                // Out of descriptors and the like: keep serving the open connections.
                tracing::warn!(error = %e, "accepting an HTTP-callback connection failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        connections.push(Box::pin(connection(stream, service.clone(), tx.clone())));
    }
}

async fn connection<R: Runtime>(
    stream: async_net::TcpStream,
    service: Arc<CallbackService<R>>,
    spawn: futures_channel::mpsc::UnboundedSender<BoxFuture<'static, ()>>,
) {
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let service = service.clone();
        let spawn = spawn.clone();
        async move {
            let max = service.limits().max_body;
            let (parts, body) = req.into_parts();
            let body = match http_body_util::Limited::new(body, max).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    let mut r = hyper::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"body too large or unreadable"),
                    ));
                    *r.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
                    return Ok::<_, std::convert::Infallible>(r);
                }
            };
            let give = move |task: BoxFuture<'static, ()>| {
                let _ = spawn.unbounded_send(task);
            };
            let answer = service
                .handle(&parts.method, &parts.uri, &parts.headers, &body, &give)
                .await;
            Ok(answer.map(|b| http_body_util::Full::new(bytes::Bytes::from(b))))
        }
    });
    let io = smol_hyper::rt::FuturesIo::new(stream);
    let served = hyper::server::conn::http1::Builder::new()
        .timer(smol_hyper::rt::SmolTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(io, svc)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "an HTTP-callback connection ended with an error");
    }
}
