//! Connections: the open request, handshakes, reconnect with backoff, lost connections.

use super::*;

impl Session {
    pub(super) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    /// Whether `slot` has a connection that is not draining (connecting or open).
    pub(super) fn has_primary(&self, slot: usize) -> bool {
        self.conns
            .iter()
            .any(|c| c.slot == slot && !matches!(c.state, ConnState::Draining { .. }))
    }

    /// Sends the open request of every slot that is due one.
    pub(super) fn maybe_open(&mut self) {
        for slot in 0..self.slots.len() {
            self.maybe_open_slot(slot);
        }
    }

    fn maybe_open_slot(&mut self, slot: usize) {
        if self.phase != Phase::Running || self.has_primary(slot) {
            return;
        }
        let now = self.now;
        let Some(s) = self.slots.get_mut(slot) else {
            return;
        };
        if s.opening.is_some() || s.next_open_at.is_none_or(|at| at > now) {
            return;
        }
        s.next_open_at = None;
        let request = match build_request(&self.open_call, &self.config.endpoints, None) {
            Ok(r) => r,
            Err(e) => {
                // Validated in `new`; kept as a failed open rather than a panic.
                self.open_failed(slot, OpenError::InvalidResponse(e.to_string()));
                return;
            }
        };
        let id = RequestId(self.alloc_id());
        let deadline = super::later(now, self.config.open_timeout);
        if let Some(s) = self.slots.get_mut(slot) {
            s.opening = Some((id, deadline));
        }
        self.stats.open_requests += 1;
        self.out.push_back(Output::Http { id, request });
    }

    /// The slot whose open request `id` is, now answered; `None` for a request given up on.
    pub(super) fn take_opening(&mut self, id: RequestId) -> Option<usize> {
        let slot = self
            .slots
            .iter()
            .position(|s| matches!(s.opening, Some((current, _)) if current == id))?;
        self.slots[slot].opening = None;
        Some(slot)
    }

    pub(super) fn handle_http_response(
        &mut self,
        id: RequestId,
        response: http::Response<Vec<u8>>,
    ) {
        let Some(slot) = self.take_opening(id) else {
            return;
        };
        if self.phase != Phase::Running {
            return;
        }
        let status = response.status().as_u16();
        if response.status().is_success() {
            let uri = parse_response(&self.open_call, response)
                .map_err(|e| OpenError::InvalidResponse(e.to_string()))
                .and_then(|t| connect_uri(&t.endpoint, &t.ticket, self.config.allow_insecure_ws));
            match uri {
                Ok(uri) => {
                    let conn = ConnId(self.alloc_id());
                    let mut request = http::Request::new(());
                    *request.uri_mut() = uri;
                    self.conns.push(Conn {
                        id: conn,
                        slot,
                        frames: 0,
                        acks: 0,
                        state: ConnState::Connecting {
                            deadline: super::later(self.now, self.config.connect_timeout),
                        },
                        last_rx: self.now,
                        ping_deadline: None,
                    });
                    self.out.push_back(Output::Connect { conn, request });
                }
                Err(e) => self.open_failed(slot, e),
            }
            return;
        }
        let body = ErrorBody::parse(response.body());
        let auth_code = matches!(
            body.code.as_deref(),
            Some("authFailed" | "invalidClientIdOrSecret")
        );
        if status == 401 || auth_code {
            self.out.push_back(Output::Error(Error::AuthFailed {
                status,
                code: body.code,
                message: body.message,
                request_id: body.request_id,
            }));
            self.begin_stop();
        } else {
            self.open_failed(
                slot,
                OpenError::Status {
                    status,
                    code: body.code,
                    message: body.message,
                    request_id: body.request_id,
                },
            );
        }
    }

    pub(super) fn open_failed(&mut self, slot: usize, error: OpenError) {
        self.out
            .push_back(Output::Event(SessionEvent::OpenFailed { error }));
        self.schedule_reconnect(slot, false);
    }

    /// Schedules the next open request after a failure: `base · 2ⁿ + jitter`, capped. The
    /// first reconnect after a lost connection (`after_loss`) comes at once (a random delay up
    /// to `first_reconnect_max`); the backoff starts with the attempt after it.
    pub(super) fn schedule_reconnect(&mut self, slot: usize, after_loss: bool) {
        if self.phase != Phase::Running || self.has_primary(slot) {
            return;
        }
        let Some(s) = self.slots.get(slot) else {
            return;
        };
        if s.opening.is_some() || s.next_open_at.is_some() {
            return;
        }
        let (attempt, quick_used) = (s.attempt, s.quick_reconnect_used);
        let mut quick = quick_used;
        let delay = if after_loss && attempt == 0 {
            quick = true;
            let max_ms =
                u64::try_from(self.config.first_reconnect_max.as_millis()).unwrap_or(u64::MAX);
            Duration::from_millis(self.rng.u64(0..=max_ms)).min(self.config.backoff_max)
        } else {
            self.backoff_delay(attempt.saturating_sub(u32::from(quick_used)))
        };
        let attempt = attempt.saturating_add(1);
        // Saturating: a delay from the configuration (`Duration::MAX`-like values) never panics.
        let at = super::later(self.now, delay);
        if let Some(s) = self.slots.get_mut(slot) {
            s.quick_reconnect_used = quick;
            s.attempt = attempt;
            s.next_open_at = Some(at);
        }
        self.out
            .push_back(Output::Event(SessionEvent::ReconnectScheduled {
                after: delay,
                attempt,
            }));
    }

    pub(super) fn backoff_delay(&mut self, attempt: u32) -> Duration {
        let exp = self
            .config
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16));
        let jitter_ms = u64::try_from(self.config.backoff_jitter.as_millis()).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(self.rng.u64(0..=jitter_ms));
        exp.saturating_add(jitter).min(self.config.backoff_max)
    }

    pub(super) fn handle_connected(&mut self, conn: ConnId) {
        let running = self.phase == Phase::Running;
        let now = self.now;
        match self.conn_mut(conn) {
            Some(c) if matches!(c.state, ConnState::Connecting { .. }) && running => {
                c.state = ConnState::Open;
                c.last_rx = now;
                c.ping_deadline = None;
                self.out
                    .push_back(Output::Event(SessionEvent::Connected { conn }));
            }
            Some(_) => {}
            None => {
                // A handshake we gave up on (timed out, or stopping): close it.
                self.out.push_back(Output::Close { conn });
            }
        }
    }

    pub(super) fn handle_closed(&mut self, conn: ConnId, reason: String) {
        let Some(pos) = self.conns.iter().position(|c| c.id == conn) else {
            return;
        };
        let c = self.conns.remove(pos);
        if matches!(c.state, ConnState::Draining { .. }) {
            return;
        }
        self.out
            .push_back(Output::Event(SessionEvent::ConnectionLost { conn, reason }));
        self.schedule_reconnect(c.slot, true);
    }

    /// Closes a connection the session gave up on and schedules a replacement.
    pub(super) fn drop_conn(&mut self, conn: ConnId, reason: &str) {
        if let Some(pos) = self.conns.iter().position(|c| c.id == conn) {
            let c = self.conns.remove(pos);
            self.out.push_back(Output::Close { conn });
            if !matches!(c.state, ConnState::Draining { .. }) {
                self.out
                    .push_back(Output::Event(SessionEvent::ConnectionLost {
                        conn,
                        reason: reason.to_owned(),
                    }));
                self.schedule_reconnect(c.slot, true);
            }
        }
    }
}

/// `endpoint` plus the `ticket` query parameter, escaped, joined with `?` or `&`.
pub fn connect_uri(
    endpoint: &str,
    ticket: &str,
    allow_insecure: bool,
) -> Result<http::Uri, OpenError> {
    let endpoint = endpoint.trim();
    if endpoint.contains('#') {
        return Err(OpenError::InvalidResponse("endpoint has a fragment".into()));
    }
    let parsed: http::Uri = endpoint
        .parse()
        .map_err(|_| OpenError::InvalidResponse("the endpoint is not a valid URL".into()))?;
    match parsed.scheme_str() {
        Some("wss") => {}
        // Plain ws:// only from the emulator, and only to a loopback host.
        Some("ws")
            if allow_insecure
                && parsed
                    .authority()
                    .is_some_and(|a| crate::url::is_loopback_host(a.host())) => {}
        other => {
            return Err(OpenError::InvalidResponse(format!(
                "endpoint scheme {other:?} is not allowed"
            )));
        }
    }
    if parsed.authority().is_none() {
        return Err(OpenError::InvalidResponse("endpoint has no host".into()));
    }
    let escaped: String = form_urlencoded::byte_serialize(ticket.as_bytes()).collect();
    let sep = match parsed.query() {
        None if endpoint.ends_with('?') => "",
        None => "?",
        Some(q) if q.is_empty() || endpoint.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{endpoint}{sep}ticket={escaped}")
        .parse()
        .map_err(|e| OpenError::InvalidResponse(format!("endpoint with ticket: {e}")))
}

/// The api-style error body `{code, message, requestid}`; every field optional.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    code: Option<serde_json::Value>,
    message: Option<String>,
    requestid: Option<String>,
    #[serde(rename = "requestId")]
    request_id_alt: Option<String>,
}

struct ParsedErrorBody {
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
}

impl ErrorBody {
    pub(super) fn parse(body: &[u8]) -> ParsedErrorBody {
        let b: Self = serde_json::from_slice(body).unwrap_or_default();
        let code = match b.code {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        ParsedErrorBody {
            code,
            message: b.message,
            request_id: b.requestid.or(b.request_id_alt),
        }
    }
}
