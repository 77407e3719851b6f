//! The Stream side of DingTalk: the gateway's open-connection endpoint (credentials checked,
//! one-use tickets, the documented failures) and the WebSocket: one task per connection that
//! pushes frames, answers nothing itself, and checks every ack the bot sends (its shape, its
//! connection, its status) as DingTalk would.

use super::*;

pub(crate) fn open_connection(
    shared: &Shared,
    headers: &HeaderMap,
    body: &Value,
    peer: IpAddr,
) -> Response {
    let mut st = shared.lock();
    let record_open = |st: &mut State, status: u16| {
        st.snap.opens.push(OpenRecord {
            client_id: body["clientId"].as_str().unwrap_or_default().to_owned(),
            subscriptions: body["subscriptions"].clone(),
            ua: body["ua"].as_str().unwrap_or_default().to_owned(),
            status,
            at: Instant::now(),
            peer,
        });
    };
    let json_headers = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
        && headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
    if !json_headers {
        st.snap
            .violations
            .push("open request without JSON Content-Type/Accept".into());
    }
    if let Some(status) = st.faults.open_failures.pop_front() {
        record_open(&mut st, status);
        drop(st);
        shared.changed();
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return if status == 401 {
            api_error(code, "authFailed", "鉴权失败")
        } else {
            api_error(code, "ServiceUnavailable", "injected failure")
        };
    }
    if body["clientId"].as_str() != Some(&shared.config.client_id)
        || body["clientSecret"].as_str() != Some(&shared.config.client_secret)
    {
        record_open(&mut st, 401);
        drop(st);
        shared.changed();
        return api_error(StatusCode::UNAUTHORIZED, "authFailed", "鉴权失败");
    }
    let subs_ok = body["subscriptions"].as_array().is_some_and(|subs| {
        subs.iter().all(|s| {
            matches!(s["type"].as_str(), Some("EVENT" | "CALLBACK"))
                && s["topic"].as_str().is_some_and(|t| !t.is_empty())
        })
    });
    if !subs_ok {
        record_open(&mut st, 400);
        drop(st);
        shared.changed();
        return api_error(
            StatusCode::BAD_REQUEST,
            "param.invalid",
            "subscriptions must be [{type, topic}]",
        );
    }
    let n = shared.next(&mut st);
    let ticket = format!("sim-ticket-{n}-{:x}", now_ms());
    st.tickets.insert(ticket.clone(), Instant::now());
    record_open(&mut st, 200);
    drop(st);
    shared.changed();
    let endpoint = format!("{}/connect", shared.base_url.replacen("http", "ws", 1));
    ok_json(json!({"endpoint": endpoint, "ticket": ticket}))
}

pub(crate) async fn ws_handler(
    AxState(shared): AxState<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(ticket) = q.get("ticket").cloned() else {
        return (StatusCode::BAD_REQUEST, "missing ticket").into_response();
    };
    {
        let mut st = shared.lock();
        let valid = st
            .tickets
            .get(&ticket)
            .is_some_and(|issued| issued.elapsed() <= shared.config.ticket_ttl);
        if !valid || st.used_tickets.contains(&ticket) {
            let msg = format!("ticket `{ticket}` is unknown, expired or already used");
            st.snap.violations.push(msg.clone());
            drop(st);
            shared.changed();
            return (StatusCode::UNAUTHORIZED, msg).into_response();
        }
        st.used_tickets.insert(ticket.clone());
    }
    ws.on_upgrade(move |socket| conn_task(shared, socket, ticket, peer.ip()))
}

async fn conn_task(shared: Arc<Shared>, socket: WebSocket, ticket: String, peer: IpAddr) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = {
        let mut st = shared.lock();
        st.last_conn += 1;
        let id = st.last_conn;
        let info = ConnInfo {
            id,
            ticket,
            open: true,
            draining: false,
            pings: 0,
            peer,
        };
        st.snap.conns.push(info.clone());
        st.slots.insert(
            id,
            ConnSlot {
                info,
                tx,
                frozen: false,
            },
        );
        id
    };
    shared.changed();
    let (mut sink, mut stream) = socket.split();
    let mut frozen = false;
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Text(t)) if !frozen => {
                    if sink.send(Message::Text(t.into())).await.is_err() {
                        break;
                    }
                }
                Some(Cmd::Text(_)) => {}
                Some(Cmd::Close) => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
                Some(Cmd::Freeze) => frozen = true,
                Some(Cmd::Abort) | None => break,
            },
            msg = stream.next(), if !frozen => match msg {
                Some(Ok(Message::Text(t))) => record_ack(&shared, id, t.as_str()),
                Some(Ok(Message::Ping(_))) => {
                    let mut st = shared.lock();
                    if let Some(s) = st.slots.get_mut(&id) {
                        s.info.pings += 1;
                    }
                    st.sync_conn(id);
                    drop(st);
                    shared.changed();
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let mut st = shared.lock();
    if let Some(mut slot) = st.slots.remove(&id) {
        slot.info.open = false;
        st.snap.conns.retain(|c| c.id != id);
        st.snap.conns.push(slot.info);
        st.snap.conns.sort_by_key(|c| c.id);
    }
    drop(st);
    shared.changed();
}

fn record_ack(shared: &Shared, conn: u64, text: &str) {
    let mut st = shared.lock();
    if st.load.is_some() {
        // Fast path of a load run: find the message id without building a JSON tree.
        #[derive(serde::Deserialize)]
        struct AckHeaders<'a> {
            #[serde(rename = "messageId", borrow)]
            message_id: &'a str,
        }
        #[derive(serde::Deserialize)]
        struct AckFrame<'a> {
            #[serde(borrow)]
            headers: AckHeaders<'a>,
            code: i64,
        }
        let mut bad_code = None;
        let mut handled = false;
        if let (Ok(ack), Some(load)) =
            (serde_json::from_str::<AckFrame<'_>>(text), st.load.as_mut())
        {
            if let Some(sent) = load.pending.remove(ack.headers.message_id) {
                handled = true;
                if ack.code == 200 {
                    load.latencies.push(sent.elapsed());
                } else {
                    bad_code = Some(ack.code);
                }
                load.permits.add_permits(1);
                load.remaining = load.remaining.saturating_sub(1);
                if load.remaining == 0 {
                    load.done.notify_one();
                }
            }
        }
        if let Some(code) = bad_code {
            st.snap.violations.push(format!("load frame acked {code}"));
        }
        if handled {
            return;
        }
    }
    let parsed: Result<Value, _> = serde_json::from_str(text);
    let Ok(v) = parsed else {
        st.snap
            .violations
            .push(format!("conn {conn}: non-JSON text `{text}`"));
        drop(st);
        shared.changed();
        return;
    };
    let message_id = v["headers"]["messageId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let code = v["code"].as_i64().unwrap_or(-1);
    let message = v["message"].as_str().unwrap_or_default().to_owned();
    let data_text = v["data"].as_str();
    let mut problems = Vec::new();
    if v["code"].as_i64().is_none() {
        problems.push("`code` is not a number".to_owned());
    }
    if v["headers"]["contentType"].as_str() != Some("application/json") {
        problems.push("`headers.contentType` is not application/json".to_owned());
    }
    if data_text.is_none() {
        problems.push("`data` is not a string".to_owned());
    }
    let data: Value = data_text
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null);
    let known = st.sent_kinds.contains_key(&(conn, message_id.clone()));
    if let Some(sink) = &st.ack_sink {
        let _ = sink.send(AckEvent {
            conn,
            message_id: message_id.clone(),
            code,
            status: data["status"].as_str().map(str::to_owned),
            on_its_connection: known,
        });
    }
    match st.sent_kinds.get(&(conn, message_id.clone())).cloned() {
        None => problems.push(format!(
            "ack for `{message_id}`, which was not sent on this connection"
        )),
        Some((kind, topic, _)) => match (kind.as_str(), topic.as_str()) {
            ("SYSTEM", "ping") if code == 200 && data.get("opaque").is_none() => {
                problems.push("ping ack does not echo `opaque`".to_owned())
            }
            ("EVENT", _)
                if code == 200 && !matches!(data["status"].as_str(), Some("SUCCESS" | "LATER")) =>
            {
                problems.push("EVENT ack lacks status SUCCESS/LATER".to_owned())
            }
            ("CALLBACK", _) if code == 200 && data.get("response").is_none() => {
                problems.push("CALLBACK ack lacks `response`".to_owned())
            }
            _ => {}
        },
    }
    for p in problems {
        st.snap.violations.push(format!("conn {conn}: {p}: {text}"));
    }
    if shared.config.bench_mode {
        // Forget one copy; an ack beyond the copies sent is then reported as above.
        let key = (conn, message_id);
        if let Some(e) = st.sent_kinds.get_mut(&key) {
            e.2 -= 1;
            if e.2 == 0 {
                st.sent_kinds.remove(&key);
            }
        }
        drop(st);
        shared.changed();
        return;
    }
    st.unacked.remove(&message_id);
    if code == 200 {
        // A card callback's answer updates the card, as DingTalk does.
        let track = st
            .texts
            .get(&message_id)
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .filter(|f| f["headers"]["topic"] == "/v1.0/card/instances/callback")
            .and_then(|f| {
                f["data"]
                    .as_str()
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
            })
            .and_then(|d| d["outTrackId"].as_str().map(str::to_owned));
        if let Some(track) = track {
            st.cards.apply_answer(&track, &data["response"]);
        }
    }
    st.snap.acks.push(AckRecord {
        conn,
        message_id,
        code,
        message,
        data,
        raw: text.to_owned(),
    });
    drop(st);
    shared.changed();
}
