//! A bot's messages routed to typed handlers: commands with their arguments, message kinds,
//! text, a fallback, and `/help` generated from the commands (the decisions are
//! [`dingtalk_core::router`]'s). Register it with
//! [`ClientBuilder::router`](crate::ClientBuilder::router).

use std::future::Future;
use std::sync::Arc;

use dingtalk_core::EventAck;
use dingtalk_core::model::{CardCallback, CardCallbackResponse, Event};
use dingtalk_core::router::{Decision, RouteError, Routes, Table};

use crate::api::ApiClient;

use crate::context::BotContext;
use crate::handler::HandlerError;
use crate::runtime::{BoxFuture, HttpClient};

type Reply = BoxFuture<'static, Result<(), HandlerError>>;
type CommandFn<H> = Arc<dyn Fn(BotContext<H>, String) -> Reply + Send + Sync>;
type MessageFn<H> = Arc<dyn Fn(BotContext<H>) -> Reply + Send + Sync>;

/// Routes chatbot messages:
///
/// ```no_run
/// # use dingtalk_driver::{Router, HandlerError, runtime::Reqwest};
/// let router = Router::<Reqwest>::new()
///     .command("calc", "evaluate an expression, e.g. /calc 1 + 2", |ctx, args| async move {
///         ctx.reply_text(format!("{args} = ?")).await?;
///         Ok::<(), HandlerError>(())
///     })
///     .on_kind("picture", |ctx| async move {
///         ctx.reply_text("nice picture").await?;
///         Ok::<(), HandlerError>(())
///     })
///     .on_text(|ctx| async move {
///         ctx.reply_text("try /help").await?;
///         Ok::<(), HandlerError>(())
///     });
/// ```
///
/// A command is `/name args` at the start of a text message, after any @-mentions (so `@Bot
/// /calc 1+2` in a group works), its name matched without case. `/help` (unless you register
/// `help`) answers the list of commands with their help lines; an unknown command gets the same
/// list when no text or fallback handler would take it.
pub struct Router<H> {
    routes: Routes,
    commands: Vec<CommandFn<H>>,
    kinds: Vec<Option<MessageFn<H>>>,
    text: Option<MessageFn<H>>,
    fallback: Option<MessageFn<H>>,
    error: Option<RouteError>,
}

impl<H> std::fmt::Debug for Router<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl<H: HttpClient> Default for Router<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: HttpClient> Router<H> {
    /// An empty router.
    pub fn new() -> Self {
        Self {
            routes: Routes::new(),
            commands: Vec::new(),
            kinds: Vec::new(),
            text: None,
            fallback: None,
            error: None,
        }
    }

    /// The command `/name` (1 to 32 letters, digits, `-`, `_`): `f` gets the context and the
    /// text after the name. `help` is its line in `/help`. An invalid or repeated name fails
    /// [`ClientBuilder::build`](crate::ClientBuilder::build).
    #[must_use]
    pub fn command<F, Fut>(mut self, name: &str, help: &str, f: F) -> Self
    where
        F: Fn(BotContext<H>, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        match self.routes.command(name, help) {
            Ok(_) => self
                .commands
                .push(Arc::new(move |ctx, args| Box::pin(f(ctx, args)))),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Messages of `msgtype` (`picture`, `file`, `audio`, `video`, `richText`, ...).
    #[must_use]
    pub fn on_kind<F, Fut>(mut self, msgtype: &str, f: F) -> Self
    where
        F: Fn(BotContext<H>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let index = self.routes.kind(msgtype);
        if self.kinds.len() <= index {
            self.kinds.resize_with(index + 1, || None);
        }
        self.kinds[index] = Some(Arc::new(move |ctx| Box::pin(f(ctx))));
        self
    }

    /// Text messages that are not commands.
    #[must_use]
    pub fn on_text<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(BotContext<H>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.routes.text();
        self.text = Some(Arc::new(move |ctx| Box::pin(f(ctx))));
        self
    }

    /// Whatever no other handler takes.
    #[must_use]
    pub fn fallback<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(BotContext<H>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.routes.fallback();
        self.fallback = Some(Arc::new(move |ctx| Box::pin(f(ctx))));
        self
    }

    /// The help text `/help` answers.
    pub fn help(&self) -> String {
        self.routes.help()
    }

    /// The registration error, if any (checked by the builder).
    pub(crate) fn error(&self) -> Option<&RouteError> {
        self.error.as_ref()
    }

    /// Runs the handler `ctx`'s message goes to.
    pub fn dispatch(&self, ctx: BotContext<H>) -> Reply {
        let decision = self.routes.decide(ctx.message());
        match decision {
            Decision::Command { index, args } => match self.commands.get(index) {
                Some(f) => {
                    let args = args.to_owned();
                    f(ctx, args)
                }
                None => Box::pin(async { Ok(()) }),
            },
            Decision::Help { unknown } => {
                let answer = self.routes.help_answer(unknown);
                Box::pin(async move {
                    ctx.reply_text(answer).await?;
                    Ok(())
                })
            }
            Decision::Kind { index } => match self.kinds.get(index).and_then(Option::as_ref) {
                Some(f) => f(ctx),
                None => Box::pin(async { Ok(()) }),
            },
            Decision::Text => match &self.text {
                Some(f) => f(ctx),
                None => Box::pin(async { Ok(()) }),
            },
            Decision::Fallback => match &self.fallback {
                Some(f) => f(ctx),
                None => Box::pin(async { Ok(()) }),
            },
            _ => Box::pin(async { Ok(()) }),
        }
    }
}

type EventFn<H> = Arc<
    dyn Fn(Event, ApiClient<H>) -> BoxFuture<'static, Result<EventAck, HandlerError>> + Send + Sync,
>;
type CardFn<H> = Arc<
    dyn Fn(
            CardCallback,
            ApiClient<H>,
        ) -> BoxFuture<'static, Result<Option<CardCallbackResponse>, HandlerError>>
        + Send
        + Sync,
>;

/// Organisation events routed by `eventType` (`user_add_org`, `org_dept_create`, ...), with a
/// fallback; an event nobody handles is acked `SUCCESS` (consumed). Register it with
/// [`ClientBuilder::event_router`](crate::ClientBuilder::event_router).
pub struct EventRouter<H>(Table<EventFn<H>>);

impl<H> std::fmt::Debug for EventRouter<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRouter")
            .field("keys", self.0.keys())
            .finish_non_exhaustive()
    }
}

impl<H: HttpClient> Default for EventRouter<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: HttpClient> EventRouter<H> {
    /// An empty router.
    pub fn new() -> Self {
        Self(Table::default())
    }

    /// Events of `event_type`.
    #[must_use]
    pub fn on<F, Fut>(mut self, event_type: &str, f: F) -> Self
    where
        F: Fn(Event, ApiClient<H>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<EventAck, HandlerError>> + Send + 'static,
    {
        self.0
            .add(event_type, Arc::new(move |ev, api| Box::pin(f(ev, api))));
        self
    }

    /// Events of any other type.
    #[must_use]
    pub fn fallback<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Event, ApiClient<H>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<EventAck, HandlerError>> + Send + 'static,
    {
        self.0
            .set_fallback(Arc::new(move |ev, api| Box::pin(f(ev, api))));
        self
    }

    /// Runs the handler of `event`'s type.
    pub fn dispatch(
        &self,
        event: Event,
        api: ApiClient<H>,
    ) -> BoxFuture<'static, Result<EventAck, HandlerError>> {
        match self.0.pick([event.event_type.as_str()]) {
            Some(f) => f(event, api),
            None => Box::pin(async { Ok(EventAck::Success) }),
        }
    }
}

/// Card actions routed by action id (the first of a click's `actionIds` that has a handler),
/// with a fallback; an action nobody handles is answered with no update. Register it with
/// [`ClientBuilder::card_router`](crate::ClientBuilder::card_router).
pub struct CardRouter<H>(Table<CardFn<H>>);

impl<H> std::fmt::Debug for CardRouter<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardRouter")
            .field("keys", self.0.keys())
            .finish_non_exhaustive()
    }
}

impl<H: HttpClient> Default for CardRouter<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: HttpClient> CardRouter<H> {
    /// An empty router.
    pub fn new() -> Self {
        Self(Table::default())
    }

    /// Clicks whose `actionIds` include `action_id`.
    #[must_use]
    pub fn on_action<F, Fut>(mut self, action_id: &str, f: F) -> Self
    where
        F: Fn(CardCallback, ApiClient<H>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<CardCallbackResponse>, HandlerError>> + Send + 'static,
    {
        self.0
            .add(action_id, Arc::new(move |cb, api| Box::pin(f(cb, api))));
        self
    }

    /// Clicks on cards whose `outTrackId` starts with `prefix` (the cards of one template, by
    /// the id prefix you give them: the callback names the card, not its template), when no
    /// action handler takes the click. The longest matching prefix wins.
    #[must_use]
    pub fn on_card<F, Fut>(mut self, prefix: &str, f: F) -> Self
    where
        F: Fn(CardCallback, ApiClient<H>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<CardCallbackResponse>, HandlerError>> + Send + 'static,
    {
        self.0
            .add_prefix(prefix, Arc::new(move |cb, api| Box::pin(f(cb, api))));
        self
    }

    /// Any other action.
    #[must_use]
    pub fn fallback<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(CardCallback, ApiClient<H>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<CardCallbackResponse>, HandlerError>> + Send + 'static,
    {
        self.0
            .set_fallback(Arc::new(move |cb, api| Box::pin(f(cb, api))));
        self
    }

    /// Runs the handler of `callback`'s action.
    pub fn dispatch(
        &self,
        callback: CardCallback,
        api: ApiClient<H>,
    ) -> BoxFuture<'static, Result<Option<CardCallbackResponse>, HandlerError>> {
        let ids = callback.action().map(|a| a.action_ids).unwrap_or_default();
        match self
            .0
            .pick_for(ids.iter().map(String::as_str), &callback.out_track_id)
        {
            Some(f) => f(callback, api),
            None => Box::pin(async { Ok(None) }),
        }
    }
}
