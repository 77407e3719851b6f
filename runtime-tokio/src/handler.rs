//! Handler registration: typed async closures, erased into one shape the run loop can call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use dingtalk_core::model::{
    CardCallback, CardCallbackResponse, ChatbotMessage, Event, GraphRequest, GraphResponse,
};
use dingtalk_core::{Frame, Outcome};
use serde_json::Value;

use crate::api::ApiClient;
use crate::context::BotContext;

/// The error a handler may return; its text goes into the failure ack and the logs.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub use dingtalk_core::EventAck;

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;
pub(crate) type Erased = Arc<dyn Fn(Frame, ApiClient) -> BoxFuture + Send + Sync + 'static>;

/// The handlers of a client, by frame type and topic.
pub(crate) type Handlers = dingtalk_core::topic::Handlers<Erased>;

fn failed(e: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(e.to_string())
}

pub(crate) fn bot<F, Fut>(f: F) -> Erased
where
    F: Fn(BotContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |frame: Frame, api: ApiClient| {
        let f = f.clone();
        Box::pin(async move {
            let message = match frame.data_json::<ChatbotMessage>() {
                Ok(m) => m,
                Err(e) => return failed(format!("invalid bot message: {e}")),
            };
            match f(BotContext::new(message, frame, api)).await {
                Ok(()) => Outcome::done(),
                Err(e) => failed(e),
            }
        }) as BoxFuture
    })
}

pub(crate) fn card<F, Fut>(f: F) -> Erased
where
    F: Fn(CardCallback, ApiClient) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<CardCallbackResponse>, HandlerError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |frame: Frame, api: ApiClient| {
        let f = f.clone();
        Box::pin(async move {
            let cb: CardCallback = match frame.data_json() {
                Ok(c) => c,
                Err(e) => return failed(format!("invalid card callback: {e}")),
            };
            Outcome::answer(f(cb, api).await)
        }) as BoxFuture
    })
}

pub(crate) fn graph<F, Fut>(f: F) -> Erased
where
    F: Fn(GraphRequest, ApiClient) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<GraphResponse, HandlerError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |frame: Frame, api: ApiClient| {
        let f = f.clone();
        Box::pin(async move {
            let req: GraphRequest = match frame.data_json() {
                Ok(r) => r,
                Err(e) => return failed(format!("invalid graph request: {e}")),
            };
            Outcome::answer(f(req, api).await)
        }) as BoxFuture
    })
}

pub(crate) fn event<F, Fut>(f: F) -> Erased
where
    F: Fn(Event, ApiClient) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<EventAck, HandlerError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |frame: Frame, api: ApiClient| {
        let f = f.clone();
        Box::pin(async move {
            let ev = match Event::from_frame(&frame) {
                Ok(e) => e,
                Err(e) => return failed(format!("invalid event: {e}")),
            };
            Outcome::from(f(ev, api).await)
        }) as BoxFuture
    })
}

pub(crate) fn raw<F, Fut>(f: F) -> Erased
where
    F: Fn(Frame, ApiClient) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |frame: Frame, api: ApiClient| {
        let f = f.clone();
        Box::pin(async move { Outcome::from_result(f(frame, api).await) }) as BoxFuture
    })
}
