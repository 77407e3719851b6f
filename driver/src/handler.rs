//! Handler registration: typed async closures, erased into the one shape the driver calls.

use std::future::Future;
use std::sync::Arc;

use dingtalk_core::model::{
    CardCallback, CardCallbackResponse, Event, GraphRequest, GraphResponse,
};
use dingtalk_core::{EventAck, Frame, Outcome};
use serde_json::Value;

use crate::api::ApiClient;
use crate::context::BotContext;
use crate::runtime::{BoxFuture, HttpClient};

/// The error a handler may return; its text goes into the failure ack and the logs.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A handler in the shape the driver calls: the frame and the API client in, the outcome out.
/// The typed registrations of [`ClientBuilder`](crate::ClientBuilder) build these; register one
/// directly with [`ClientBuilder::handler`](crate::ClientBuilder::handler).
pub type Handler<H> = Arc<dyn Fn(Frame, ApiClient<H>) -> BoxFuture<'static, Outcome> + Send + Sync>;

fn failed(what: &str, e: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(format!("invalid {what}: {e}"))
}

pub(crate) fn bot<H, F, Fut>(f: F) -> Handler<H>
where
    H: HttpClient,
    F: Fn(BotContext<H>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |frame: Frame, api: ApiClient<H>| {
        let f = f.clone();
        Box::pin(async move {
            // The message is parsed when the handler first asks for it, once.
            let ctx = BotContext::new(frame, api);
            let probe = ctx.clone();
            match f(ctx).await {
                Ok(()) => match probe.known_parse_error() {
                    Some(e) => failed("bot message", e),
                    None => Outcome::done(),
                },
                Err(e) => Outcome::Failed(e.to_string()),
            }
        })
    })
}

pub(crate) fn card<H, F, Fut>(f: F) -> Handler<H>
where
    H: HttpClient,
    F: Fn(CardCallback, ApiClient<H>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<CardCallbackResponse>, HandlerError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |frame: Frame, api: ApiClient<H>| {
        let f = f.clone();
        Box::pin(async move {
            match frame.data_json::<CardCallback>() {
                Ok(cb) => Outcome::answer(f(cb, api).await),
                Err(e) => failed("card callback", e),
            }
        })
    })
}

pub(crate) fn graph<H, F, Fut>(f: F) -> Handler<H>
where
    H: HttpClient,
    F: Fn(GraphRequest, ApiClient<H>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<GraphResponse, HandlerError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |frame: Frame, api: ApiClient<H>| {
        let f = f.clone();
        Box::pin(async move {
            match frame.data_json::<GraphRequest>() {
                Ok(req) => Outcome::answer(f(req, api).await),
                Err(e) => failed("graph request", e),
            }
        })
    })
}

pub(crate) fn event<H, F, Fut>(f: F) -> Handler<H>
where
    H: HttpClient,
    F: Fn(Event, ApiClient<H>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<EventAck, HandlerError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |frame: Frame, api: ApiClient<H>| {
        let f = f.clone();
        Box::pin(async move {
            match Event::from_frame(&frame) {
                Ok(ev) => Outcome::from(f(ev, api).await),
                Err(e) => failed("event", e),
            }
        })
    })
}

pub(crate) fn raw<H, F, Fut>(f: F) -> Handler<H>
where
    H: HttpClient,
    F: Fn(Frame, ApiClient<H>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |frame: Frame, api: ApiClient<H>| {
        let f = f.clone();
        Box::pin(async move { Outcome::from_result(f(frame, api).await) })
    })
}
