//! Credentials, endpoints and the Stream session's tunables.

use std::fmt;
use std::time::Duration;

use crate::frame::{FrameType, Limits};
use crate::topic::Subscription;

/// Which subscription a frame belongs to: its index in [`StreamConfig::subscriptions`]. The
/// session routes each frame once and hands the route to the application with the
/// [`Delivery`](crate::Delivery), so the handler table is an array indexed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route(pub usize);

/// App credentials: the `ClientID` (AppKey) and `ClientSecret` (AppSecret).
///
/// `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    client_id: String,
    client_secret: String,
}

impl Credentials {
    /// Creates credentials.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }

    /// The client id (AppKey); also the robot code of an app's bot.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client secret. Handle with care: never log it.
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// Checks what DingTalk would reject with a bare `401 authFailed`: empty values, or
    /// whitespace copied along with them (a common cause of that error).
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("client id", &self.client_id),
            ("client secret", &self.client_secret),
        ] {
            if value.is_empty() {
                return Err(format!("the {name} is empty"));
            }
            if value.trim() != value {
                return Err(format!(
                    "the {name} has leading or trailing whitespace (DingTalk answers 401 authFailed)"
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// Base URLs of the DingTalk hosts. Override them for the emulator, a forwarder or overseas hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The new-style API host and Stream gateway (`https://api.dingtalk.com`).
    pub api: String,
    /// The old-style API host (`https://oapi.dingtalk.com`).
    pub oapi: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            api: "https://api.dingtalk.com".to_owned(),
            oapi: "https://oapi.dingtalk.com".to_owned(),
        }
    }
}

impl Endpoints {
    /// DingTalk's overseas hosts (`api.dingtalk.io`).
    pub fn overseas() -> Self {
        Self {
            api: "https://api.dingtalk.io".to_owned(),
            oapi: "https://oapi.dingtalk.io".to_owned(),
        }
    }

    /// Whether the api host is plain `http://` on loopback (the emulator): only then may the
    /// gateway hand out a `ws://` endpoint.
    pub fn is_loopback_http(&self) -> bool {
        let Some(rest) = self.api.strip_prefix("http://") else {
            return false;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => authority,
        };
        matches!(host, "127.0.0.1" | "localhost" | "[::1]")
    }

    /// Checks both hosts: absolute `https://` URLs, or plain `http://` to a loopback host (the
    /// emulator). The error names the host, never the URL.
    pub fn validate(&self) -> Result<(), String> {
        crate::url::check_secure(&self.api, "api endpoint")?;
        crate::url::check_secure(&self.oapi, "oapi endpoint")?;
        Ok(())
    }

    /// One base URL for both hosts (the emulator, a forwarder).
    pub fn single(base: impl Into<String>) -> Self {
        let base = base.into();
        Self {
            api: base.clone(),
            oapi: base,
        }
    }
}

/// Reads credentials and hosts from environment-style variables through `var` (pass
/// `|k| std::env::var(k).ok()`): `DINGTALK_CLIENT_ID`, `DINGTALK_CLIENT_SECRET`, and optionally
/// `DINGTALK_OPENAPI_ENDPOINT` (the gateway/api base URL, as in the official Python SDK; on
/// loopback it is used for the oapi host too) and `DINGTALK_OAPI_ENDPOINT`. `None` without
/// credentials.
///
/// ```
/// use dingtalk_core::config::from_env;
/// let vars = |k: &str| match k {
///     "DINGTALK_CLIENT_ID" => Some("id".to_string()),
///     "DINGTALK_CLIENT_SECRET" => Some("secret".to_string()),
///     "DINGTALK_OPENAPI_ENDPOINT" => Some("http://127.0.0.1:8099".to_string()),
///     _ => None,
/// };
/// let (creds, endpoints) = from_env(vars).unwrap();
/// assert_eq!(creds.client_id(), "id");
/// assert_eq!(endpoints.oapi, "http://127.0.0.1:8099");
/// assert!(from_env(|_| None).is_none());
/// let overseas = |k: &str| match k {
///     "DINGTALK_OPENAPI_ENDPOINT" => Some("https://api.dingtalk.io".to_string()),
///     "DINGTALK_CLIENT_ID" | "DINGTALK_CLIENT_SECRET" => Some("x".to_string()),
///     _ => None,
/// };
/// assert_eq!(from_env(overseas).unwrap().1.oapi, "https://oapi.dingtalk.io");
/// ```
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Option<(Credentials, Endpoints)> {
    let id = var("DINGTALK_CLIENT_ID")?;
    let secret = var("DINGTALK_CLIENT_SECRET")?;
    let mut endpoints = Endpoints::default();
    if let Some(api) = var("DINGTALK_OPENAPI_ENDPOINT") {
        let api = api.trim_end_matches('/').to_owned();
        if api == Endpoints::overseas().api {
            endpoints = Endpoints::overseas();
        }
        endpoints.api = api;
        if endpoints.is_loopback_http() {
            endpoints.oapi = endpoints.api.clone();
        }
    }
    if let Some(oapi) = var("DINGTALK_OAPI_ENDPOINT") {
        endpoints.oapi = oapi;
    }
    Some((Credentials::new(id, secret), endpoints))
}

/// The `ua` sent in the open-connection request (`name-sdk-lang/version`).
pub const USER_AGENT: &str = concat!("dingtalk-sdk-rust/v", env!("CARGO_PKG_VERSION"));

/// Most concurrent Stream connections per app ([`StreamConfig::connections`]).
pub const MAX_CONNECTIONS: usize = 32;

/// Everything a [`Session`](crate::session::Session) needs. Defaults follow
/// `design.md`; every duration is configurable.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// App credentials.
    pub credentials: Credentials,
    /// Hosts; the gateway is `endpoints.api`.
    pub endpoints: Endpoints,
    /// What the application handles. Built with [`StreamConfig::subscribe`].
    pub subscriptions: Vec<Subscription>,
    /// The `ua` field of the open request.
    pub ua: String,
    /// The `localIp` field of the open request (diagnostics only; omitted when `None`).
    pub local_ip: Option<String>,
    /// Accept a plain `ws://` endpoint from the gateway (the emulator). Default `false`: a
    /// gateway answer can never downgrade the connection to cleartext.
    pub allow_insecure_ws: bool,
    /// Send a WebSocket ping after this long without receiving anything (default 60 s).
    pub keepalive_idle: Duration,
    /// A pong (or any frame) must arrive this soon after our ping (default 5 s).
    pub keepalive_timeout: Duration,
    /// Deadline for the open-connection HTTP call (default 10 s).
    pub open_timeout: Duration,
    /// Deadline for the WebSocket handshake (default 10 s).
    pub connect_timeout: Duration,
    /// After a `disconnect`, how long the old connection is read before we close it ourselves
    /// (default 12 s: the server closes after 10 s of silence, plus a margin).
    pub drain_timeout: Duration,
    /// First reconnect delay (default 1 s); doubles per failure.
    pub backoff_base: Duration,
    /// Largest reconnect delay (default 60 s).
    pub backoff_max: Duration,
    /// Largest random jitter added to each reconnect delay (default 1 s).
    pub backoff_jitter: Duration,
    /// The first reconnect after losing a connection (an abrupt close, a dead connection, the
    /// server's close) waits a random delay up to this (default 100 ms) instead of the
    /// backoff; the attempts after it back off from `backoff_base`. A connection lost again
    /// before any frame arrived backs off at once, so a flapping server causes no storm.
    pub first_reconnect_max: Duration,
    /// Concurrent Stream connections for the app (default 1, at most [`MAX_CONNECTIONS`]), as
    /// the Java SDK's `maxConnectionCounts`. Each is opened with its own ticket, acks the frames
    /// it read, and is replaced make-before-break with its own backoff; deduplication, handler
    /// concurrency and backpressure are shared by all of them. DingTalk spreads an app's frames
    /// over its connections and redelivers an un-acked frame on any of them.
    pub connections: usize,
    /// At most this many handler calls in flight (default 64).
    pub max_in_flight: usize,
    /// Frames waiting for a handler slot before the session asks the adapter to stop reading
    /// (default 512: eight times the default handler calls in flight, about 1 MB of frames).
    /// Pings are answered while frames wait here. A frame acked on arrival that waits here is
    /// lost if the process dies, so more is not safer.
    pub max_queued: usize,
    /// Completed message ids remembered for deduplication (default 10 000).
    pub dedup_capacity: usize,
    /// How long a completed message id is remembered (default 5 min).
    pub dedup_ttl: Duration,
    /// Bytes the remembered ids and their acks may take (default 4 MiB; each id counts
    /// [`crate::dedup::ENTRY_BYTES`] plus its ack text).
    pub dedup_max_bytes: usize,
    /// Longest a handler call may run (default 10 min): then it is cancelled, its slot freed,
    /// a failure ack sent if one is still owed, and [`crate::SessionEvent::HandlerCancelled`]
    /// reported. A redelivered copy reaches the handler again.
    pub handler_timeout: Duration,
    /// How long a graceful stop waits for in-flight handlers (default 10 s).
    pub stop_timeout: Duration,
    /// Parser limits for incoming frames.
    pub limits: Limits,
    /// Seed of the jitter generator; same seed, same delays.
    pub rng_seed: u64,
}

impl StreamConfig {
    /// A configuration with the defaults and no subscriptions.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            endpoints: Endpoints::default(),
            subscriptions: Vec::new(),
            ua: USER_AGENT.to_owned(),
            local_ip: None,
            allow_insecure_ws: false,
            keepalive_idle: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(5),
            open_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(12),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            backoff_jitter: Duration::from_secs(1),
            first_reconnect_max: Duration::from_millis(100),
            connections: 1,
            max_in_flight: 64,
            max_queued: 512,
            dedup_capacity: 10_000,
            dedup_ttl: Duration::from_secs(300),
            dedup_max_bytes: crate::dedup::DEFAULT_MAX_BYTES,
            handler_timeout: Duration::from_secs(600),
            stop_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            rng_seed: 0x5eed_d1d7,
        }
    }

    /// Adds (or replaces, for the same type and topic) a subscription.
    #[must_use]
    pub fn subscribe(mut self, subscription: Subscription) -> Self {
        self.add_subscription(subscription);
        self
    }

    /// Uses these hosts (a loopback `http://` gateway, i.e. the emulator, may answer `ws://`).
    #[must_use]
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.set_endpoints(endpoints);
        self
    }

    /// Uses these hosts; see [`StreamConfig::endpoints`].
    pub fn set_endpoints(&mut self, endpoints: Endpoints) {
        self.allow_insecure_ws = endpoints.is_loopback_http();
        self.endpoints = endpoints;
    }

    /// Adds (or replaces) a subscription in place.
    pub fn add_subscription(&mut self, subscription: Subscription) -> Route {
        match self
            .subscriptions
            .iter()
            .position(|s| s.kind == subscription.kind && s.topic == subscription.topic)
        {
            Some(i) => {
                // Replaced in place: routes handed out before stay valid.
                self.subscriptions[i] = subscription;
                Route(i)
            }
            None => {
                self.subscriptions.push(subscription);
                Route(self.subscriptions.len() - 1)
            }
        }
    }

    /// The subscription a frame of `kind` and `topic` belongs to (every EVENT belongs to the
    /// EVENT subscription, whatever its topic); `None` when nothing subscribed to it.
    pub fn route(&self, kind: FrameType, topic: &str) -> Option<Route> {
        self.subscriptions
            .iter()
            .position(|s| s.kind == kind && (kind == FrameType::Event || s.topic == topic))
            .map(Route)
    }
}
