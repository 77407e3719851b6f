//! What DingTalk sends a bot, built as the emulator pushes it: chatbot messages (text,
//! picture; group or one-to-one, with a live session webhook), card clicks, organisation
//! events, and, in HTTP-callback mode, the signed robot POST and the encrypted event POST.

use super::*;

impl Control {
    /// The realistic `data` of a bot message from `sim-staff-1` ("Sim User"); its session
    /// webhook points at the emulator.
    pub fn bot_message_data(&self, msgtype: &str, text: &str, chat: Chat) -> Value {
        self.bot_message_data_as(msgtype, text, chat, "sim-staff-1")
    }

    /// [`Control::bot_message_data`] from the user `userid` of the emulated organisation (an
    /// unknown id writes as itself). A one-to-one message goes to that user's own chat.
    pub fn bot_message_data_as(
        &self,
        msgtype: &str,
        text: &str,
        chat: Chat,
        userid: &str,
    ) -> Value {
        let mut st = self.shared.lock();
        let n = self.shared.next(&mut st);
        let session = format!("sim-session-{n}");
        let created = now_ms();
        let expires = created + 5_400_000;
        st.sessions.insert(session.clone(), expires);
        let nick = st
            .directory
            .users
            .get(userid)
            .map_or_else(|| userid.to_owned(), |u| u.name.clone());
        if !self.shared.config.bench_mode {
            st.chat.user(chat, userid, &nick, msgtype, text, &session);
        }
        let client_id = self.shared.config.client_id.clone();
        drop(st);
        let private = if userid == "sim-staff-1" {
            "cidSimPrivate0001==".to_owned()
        } else {
            format!("cidSimPrivate-{userid}==")
        };
        let (cid, ctype) = match chat {
            Chat::Private => (private.as_str(), "1"),
            Chat::Group => ("cidSimGroup0001==", "2"),
        };
        let mut data = json!({
            "conversationId": cid,
            "conversationType": ctype,
            "chatbotCorpId": "dingSimCorp",
            "chatbotUserId": "$:LWCP_v1:$simbot",
            "msgId": format!("msgSim{n}=="),
            "senderNick": nick,
            "isAdmin": false,
            "senderStaffId": userid,
            "sessionWebhookExpiredTime": expires,
            "createAt": created,
            "senderCorpId": "dingSimCorp",
            "senderId": format!("$:LWCP_v1:${userid}"),
            "sessionWebhook": format!("{}/robot/sendBySession?session={session}", self.shared.base_url),
            "robotCode": client_id,
            "msgtype": msgtype,
        });
        if let Some(obj) = data.as_object_mut() {
            if chat == Chat::Group {
                obj.insert("conversationTitle".into(), json!("Sim Group"));
                obj.insert("isInAtList".into(), json!(true));
                obj.insert(
                    "atUsers".into(),
                    json!([{"dingtalkId": "$:LWCP_v1:$simbot"}]),
                );
            }
            match msgtype {
                "text" => {
                    obj.insert("text".into(), json!({"content": text}));
                }
                "picture" => {
                    obj.insert(
                        "content".into(),
                        json!({"pictureDownloadCode": format!("pic-{n}"), "downloadCode": format!("dl-{n}")}),
                    );
                }
                _ => {}
            }
        }
        data
    }

    /// A user sends `text` to the bot; returns the frame's message id.
    pub fn bot_text(&self, text: &str, chat: Chat) -> String {
        self.bot_text_as(text, chat, "sim-staff-1")
    }

    /// The user `userid` sends `text` to the bot; returns the frame's message id.
    pub fn bot_text_as(&self, text: &str, chat: Chat, userid: &str) -> String {
        let data = self
            .bot_message_data_as("text", text, chat, userid)
            .to_string();
        self.push_frame("CALLBACK", "/v1.0/im/bot/messages/get", &data)
    }

    /// A user sends a picture to the bot; returns the frame's message id.
    pub fn bot_picture(&self, chat: Chat) -> String {
        let data = self.bot_message_data("picture", "", chat).to_string();
        self.push_frame("CALLBACK", "/v1.0/im/bot/messages/get", &data)
    }

    /// Acts as DingTalk's outgoing robot in HTTP-callback mode: POSTs a chatbot message with
    /// `text` to `url` (your server's `/robot`), signed with the app secret (`timestamp` and
    /// `sign` headers, as DingTalk sends them). Returns the answer's status and body. The bot's
    /// replies reach this emulator's session webhook, as in Stream mode.
    pub async fn robot_callback(
        &self,
        url: &str,
        text: &str,
        chat: Chat,
    ) -> Result<(u16, String), String> {
        let body = self.bot_message_data("text", text, chat).to_string();
        let ts = now_ms();
        let sign = dingtalk_core::webhook::sign(&self.shared.config.client_secret, ts);
        let answer = http_client()?
            .post(url)
            .header("timestamp", ts.to_string())
            .header("sign", sign)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = answer.status().as_u16();
        let text = answer
            .text()
            .await
            .map_err(|e| e.without_url().to_string())?;
        Ok((status, text))
    }

    /// Acts as DingTalk's event subscription in HTTP-callback mode: POSTs the event
    /// `event_type` with `fields` to `url` (your server's `/events`), encrypted and signed with
    /// `crypto` (the token and `aes_key` you set in the console). Returns the answer's status
    /// and, when it is the encrypted reply, its decrypted text (`success`).
    pub async fn event_callback(
        &self,
        url: &str,
        crypto: &dingtalk_core::callback::EventCrypto,
        event_type: &str,
        fields: Value,
    ) -> Result<(u16, String), String> {
        let mut plain = json!({"EventType": event_type, "CorpId": "dingSimCorp",
                               "EventId": format!("sim-event-{}", now_ms())});
        if let (Some(p), Some(f)) = (plain.as_object_mut(), fields.as_object()) {
            p.extend(f.clone());
        }
        let ts = now_ms().to_string();
        let nonce = format!("n{}", self.shared.next(&mut self.shared.lock()));
        let random: [u8; 16] = *b"simsimsimsimsim0";
        let sealed = crypto.encrypt(&plain.to_string(), &ts, &nonce, random);
        let answer = http_client()?
            .post(format!(
                "{url}?msg_signature={}&timestamp={ts}&nonce={nonce}",
                sealed.msg_signature
            ))
            .header("content-type", "application/json")
            .body(json!({"encrypt": sealed.encrypt}).to_string())
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = answer.status().as_u16();
        let body = answer
            .text()
            .await
            .map_err(|e| e.without_url().to_string())?;
        let text = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| {
                crypto
                    .decrypt(
                        v["msg_signature"].as_str()?,
                        v["timeStamp"].as_str()?,
                        v["nonce"].as_str()?,
                        v["encrypt"].as_str()?,
                    )
                    .ok()
            })
            .unwrap_or(body);
        Ok((status, text))
    }

    /// A card button is clicked; returns the frame's message id.
    pub fn card_callback(&self, out_track_id: &str, params: Value) -> String {
        self.card_action(out_track_id, "sim_button", params)
    }

    /// A click on the button `action_id` of the card `out_track_id`; returns the frame's
    /// message id.
    pub fn card_action(&self, out_track_id: &str, action_id: &str, params: Value) -> String {
        let content =
            json!({"cardPrivateData": {"actionIds": [action_id], "params": params}}).to_string();
        let data = json!({
            "extension": "{}", "corpId": "dingSimCorp", "spaceType": "im", "userIdType": 1,
            "type": "actionCallback", "userId": "sim-staff-1", "content": content,
            "spaceId": "cidSimGroup0001==", "outTrackId": out_track_id, "value": content,
        });
        self.push_frame(
            "CALLBACK",
            "/v1.0/card/instances/callback",
            &data.to_string(),
        )
    }

    /// An organisation event; returns the frame's message id.
    pub fn event(&self, event_type: &str, data: Value) -> String {
        let id = self.new_message_id();
        let frame = json!({
            "specVersion": "1.0", "type": "EVENT",
            "headers": {
                "topic": "*", "messageId": id, "contentType": "application/json",
                "time": now_ms().to_string(), "eventType": event_type,
                "eventId": format!("evt-{id}"), "eventCorpId": "dingSimCorp",
                "eventBornTime": now_ms().to_string(), "eventUnifiedAppId": "sim-app",
            },
            "data": data.to_string(),
        });
        self.push_raw(frame.to_string());
        id
    }
}
