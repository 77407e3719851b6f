//! Interactive cards: create, deliver, create-and-deliver, update, AI-card streaming, and the
//! StandardCard (普通版) send and update. `cardParamMap` values are strings, as DingTalk requires
//! (see [`CardParamMap`]).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiCall, RequestSpec, from_value, merge_extra, require};
use crate::error::ApiError;
pub use crate::model::{CardParamMap, CardUpdateOptions};

/// Where a card is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardSpace {
    /// A group chat: `dtv1.card//IM_GROUP.<openConversationId>`.
    Group {
        /// `openConversationId`.
        open_conversation_id: String,
        /// `robotCode` (the app's client id for an internal bot).
        robot_code: String,
        /// `atUserIds`: user id → nick; `None` for nobody.
        at_user_ids: Option<BTreeMap<String, String>>,
        /// Whether to @ everyone (`{"@ALL":"@ALL"}`).
        at_all: bool,
        /// `recipients`: only these users see the card; empty for everyone.
        recipients: Vec<String>,
    },
    /// A one-to-one chat with the bot: `dtv1.card//IM_ROBOT.<userId>`.
    Robot {
        /// The user's id (`senderStaffId`).
        user_id: String,
        /// `robotCode`, if any.
        robot_code: Option<String>,
    },
}

impl CardSpace {
    /// The `openSpaceId`.
    pub fn open_space_id(&self) -> String {
        match self {
            Self::Group {
                open_conversation_id,
                ..
            } => format!("dtv1.card//IM_GROUP.{open_conversation_id}"),
            Self::Robot { user_id, .. } => format!("dtv1.card//IM_ROBOT.{user_id}"),
        }
    }

    fn validate(&self) -> Result<(), ApiError> {
        match self {
            Self::Group {
                open_conversation_id,
                robot_code,
                ..
            } => {
                require("openConversationId", open_conversation_id)?;
                require("robotCode", robot_code)
            }
            Self::Robot { user_id, .. } => require("userId", user_id),
        }
    }

    /// Adds `openSpaceId` and the deliver model to a body.
    fn deliver_fields(&self, body: &mut Map<String, Value>) {
        body.insert("openSpaceId".into(), json!(self.open_space_id()));
        match self {
            Self::Group {
                robot_code,
                at_user_ids,
                at_all,
                recipients,
                ..
            } => {
                let mut model = json!({"robotCode": robot_code});
                if let Some(m) = model.as_object_mut() {
                    if *at_all {
                        m.insert("atUserIds".into(), json!({"@ALL": "@ALL"}));
                    } else if let Some(ids) = at_user_ids {
                        m.insert("atUserIds".into(), json!(ids));
                    }
                    if !recipients.is_empty() {
                        m.insert("recipients".into(), json!(recipients));
                    }
                }
                body.insert("imGroupOpenDeliverModel".into(), model);
            }
            Self::Robot { robot_code, .. } => {
                let mut model = json!({"spaceType": "IM_ROBOT"});
                if let (Some(code), Some(m)) = (robot_code, model.as_object_mut()) {
                    m.insert("robotCode".into(), json!(code));
                }
                body.insert("imRobotOpenDeliverModel".into(), model);
            }
        }
    }

    /// Adds the open-space model a create call needs for this space.
    fn space_model(&self, body: &mut Map<String, Value>, support_forward: bool) {
        let key = match self {
            Self::Group { .. } => "imGroupOpenSpaceModel",
            Self::Robot { .. } => "imRobotOpenSpaceModel",
        };
        body.insert(key.into(), json!({"supportForward": support_forward}));
    }
}

/// A card's creation parameters, shared by [`CreateCard`] and [`CreateAndDeliver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardContent {
    /// `cardTemplateId`.
    pub card_template_id: String,
    /// `outTrackId`: your id of the card instance (one id, one card).
    pub out_track_id: String,
    /// `cardData`.
    pub card_data: CardParamMap,
    /// `privateData`: per-user data.
    pub private_data: BTreeMap<String, CardParamMap>,
    /// `callbackType`: `STREAM` (the default here) or `HTTP` with a route key.
    pub callback_route_key: Option<String>,
    /// `supportForward` of the space model.
    pub support_forward: bool,
    /// Any other documented field (`openDynamicDataConfig`, `cardAtUserIds`, ...).
    pub extra: Map<String, Value>,
}

impl CardContent {
    /// A Stream-callback card with this template, id and data.
    pub fn new(
        card_template_id: impl Into<String>,
        out_track_id: impl Into<String>,
        card_data: CardParamMap,
    ) -> Self {
        Self {
            card_template_id: card_template_id.into(),
            out_track_id: out_track_id.into(),
            card_data,
            private_data: BTreeMap::new(),
            callback_route_key: None,
            support_forward: true,
            extra: Map::new(),
        }
    }

    fn body(&self) -> Result<Map<String, Value>, ApiError> {
        require("cardTemplateId", &self.card_template_id)?;
        require("outTrackId", &self.out_track_id)?;
        let mut body = Map::new();
        body.insert("cardTemplateId".into(), json!(self.card_template_id));
        body.insert("outTrackId".into(), json!(self.out_track_id));
        body.insert("cardData".into(), json!(self.card_data));
        if !self.private_data.is_empty() {
            body.insert("privateData".into(), json!(self.private_data));
        }
        match &self.callback_route_key {
            Some(key) => {
                body.insert("callbackType".into(), json!("HTTP"));
                body.insert("callbackRouteKey".into(), json!(key));
            }
            None => {
                body.insert("callbackType".into(), json!("STREAM"));
            }
        }
        Ok(body)
    }
}

/// The answer of create/deliver calls: `{success, result}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CardResult {
    /// `success`.
    pub success: bool,
    /// `result`, raw (its shape differs per call).
    pub result: Value,
}

fn card_result(body: Value) -> Result<CardResult, ApiError> {
    let r: CardResult = from_value(body)?;
    if !r.success {
        return Err(ApiError::new(
            crate::error::ErrorKind::Other,
            format!("card call answered success=false: {}", r.result),
        ));
    }
    Ok(r)
}

/// `POST /v1.0/card/instances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCard {
    /// The card.
    pub card: CardContent,
    /// The spaces it will be delivered to (their space models are added).
    pub spaces: Vec<CardSpace>,
}

impl ApiCall for CreateCard {
    type Output = CardResult;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        let mut body = self.card.body()?;
        for s in &self.spaces {
            s.space_model(&mut body, self.card.support_forward);
        }
        let mut body = Value::Object(body);
        merge_extra(&mut body, &self.card.extra);
        Ok(RequestSpec::api_post("/v1.0/card/instances", body))
    }
    fn parse(&self, body: Value) -> Result<CardResult, ApiError> {
        card_result(body)
    }
}

/// `POST /v1.0/card/instances/deliver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverCard {
    /// `outTrackId` of a created card.
    pub out_track_id: String,
    /// Where to deliver it.
    pub space: CardSpace,
}

impl ApiCall for DeliverCard {
    type Output = CardResult;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("outTrackId", &self.out_track_id)?;
        self.space.validate()?;
        let mut body = Map::new();
        body.insert("outTrackId".into(), json!(self.out_track_id));
        body.insert("userIdType".into(), json!(1));
        self.space.deliver_fields(&mut body);
        Ok(RequestSpec::api_post(
            "/v1.0/card/instances/deliver",
            Value::Object(body),
        ))
    }
    fn parse(&self, body: Value) -> Result<CardResult, ApiError> {
        card_result(body)
    }
}

/// `POST /v1.0/card/instances/createAndDeliver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAndDeliver {
    /// The card.
    pub card: CardContent,
    /// Where to deliver it.
    pub space: CardSpace,
}

impl ApiCall for CreateAndDeliver {
    type Output = CardResult;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        self.space.validate()?;
        let mut body = self.card.body()?;
        body.insert("userIdType".into(), json!(1));
        self.space.space_model(&mut body, self.card.support_forward);
        self.space.deliver_fields(&mut body);
        let mut body = Value::Object(body);
        merge_extra(&mut body, &self.card.extra);
        Ok(RequestSpec::api_post(
            "/v1.0/card/instances/createAndDeliver",
            body,
        ))
    }
    fn parse(&self, body: Value) -> Result<CardResult, ApiError> {
        card_result(body)
    }
}

/// `PUT /v1.0/card/instances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateCard {
    /// `outTrackId`.
    pub out_track_id: String,
    /// `cardData`.
    pub card_data: Option<CardParamMap>,
    /// `privateData`.
    pub private_data: BTreeMap<String, CardParamMap>,
    /// `cardUpdateOptions`.
    pub options: Option<CardUpdateOptions>,
}

impl ApiCall for UpdateCard {
    type Output = CardResult;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("outTrackId", &self.out_track_id)?;
        let mut body = json!({"outTrackId": self.out_track_id, "userIdType": 1});
        if let Some(obj) = body.as_object_mut() {
            if let Some(d) = &self.card_data {
                obj.insert("cardData".into(), json!(d));
            }
            if !self.private_data.is_empty() {
                obj.insert("privateData".into(), json!(self.private_data));
            }
            if let Some(o) = &self.options {
                obj.insert("cardUpdateOptions".into(), json!(o));
            }
        }
        Ok(RequestSpec::api(
            http::Method::PUT,
            "/v1.0/card/instances",
            body,
        ))
    }
    fn parse(&self, body: Value) -> Result<CardResult, ApiError> {
        card_result(body)
    }
}

/// `PUT /v1.0/card/streaming`: AI-card streaming update of one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamingUpdate {
    /// `outTrackId`.
    pub out_track_id: String,
    /// `guid`: idempotency id of this call (inject a fresh one per call).
    pub guid: String,
    /// `key`: the streamed variable, e.g. `msgContent`.
    pub key: String,
    /// `content`.
    pub content: String,
    /// `isFull`: replace (true; required for markdown variables) or append (false).
    pub is_full: bool,
    /// `isFinalize`: the card is finished.
    pub is_finalize: bool,
    /// `isError`: the card shows an error.
    pub is_error: bool,
}

impl ApiCall for StreamingUpdate {
    type Output = CardResult;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("outTrackId", &self.out_track_id)?;
        require("guid", &self.guid)?;
        require("key", &self.key)?;
        Ok(RequestSpec::api(
            http::Method::PUT,
            "/v1.0/card/streaming",
            json!({
                "outTrackId": self.out_track_id, "guid": self.guid, "key": self.key,
                "content": self.content, "isFull": self.is_full,
                "isFinalize": self.is_finalize, "isError": self.is_error,
            }),
        ))
    }
    fn parse(&self, body: Value) -> Result<CardResult, ApiError> {
        card_result(body)
    }
}

/// Who receives a StandardCard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StandardCardTarget {
    /// A group: `openConversationId`.
    Group(String),
    /// One user: `singleChatReceiver` = `{"userId": …}` as a JSON string.
    User(String),
}

/// `POST /v1.0/im/v1.0/robot/interactiveCards/send` (the doubled `v1.0` is DingTalk's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardCardSend {
    /// `robotCode`.
    pub robot_code: String,
    /// `cardBizId`: your id of the card.
    pub card_biz_id: String,
    /// `cardData` (sent as a JSON string).
    pub card_data: Value,
    /// The receiver.
    pub target: StandardCardTarget,
    /// `sendOptions.atAll`.
    pub at_all: bool,
    /// `sendOptions.atUserListJson`: (nickName, userId) pairs.
    pub at_users: Vec<(String, String)>,
}

impl ApiCall for StandardCardSend {
    type Output = String;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("robotCode", &self.robot_code)?;
        require("cardBizId", &self.card_biz_id)?;
        let at_users: Vec<Value> = self
            .at_users
            .iter()
            .map(|(nick, id)| json!({"nickName": nick, "userId": id}))
            .collect();
        let mut body = json!({
            "cardTemplateId": "StandardCard",
            "robotCode": self.robot_code,
            "cardBizId": self.card_biz_id,
            "cardData": self.card_data.to_string(),
            "sendOptions": {"atAll": self.at_all, "atUserListJson": Value::Array(at_users).to_string()},
        });
        if let Some(obj) = body.as_object_mut() {
            match &self.target {
                StandardCardTarget::Group(cid) => {
                    require("openConversationId", cid)?;
                    obj.insert("openConversationId".into(), json!(cid));
                }
                StandardCardTarget::User(uid) => {
                    require("userId", uid)?;
                    obj.insert(
                        "singleChatReceiver".into(),
                        json!(json!({"userId": uid}).to_string()),
                    );
                }
            }
        }
        Ok(RequestSpec::api_post(
            "/v1.0/im/v1.0/robot/interactiveCards/send",
            body,
        ))
    }
    fn parse(&self, body: Value) -> Result<String, ApiError> {
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase", default)]
        struct R {
            process_query_key: String,
        }
        Ok(from_value::<R>(body)?.process_query_key)
    }
}

/// `PUT /v1.0/im/robots/interactiveCards`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardCardUpdate {
    /// `cardBizId`.
    pub card_biz_id: String,
    /// `cardData` (sent as a JSON string).
    pub card_data: Value,
    /// `updateOptions`.
    pub options: Option<CardUpdateOptions>,
}

impl ApiCall for StandardCardUpdate {
    type Output = ();
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("cardBizId", &self.card_biz_id)?;
        let mut body =
            json!({"cardBizId": self.card_biz_id, "cardData": self.card_data.to_string()});
        if let (Some(o), Some(obj)) = (&self.options, body.as_object_mut()) {
            obj.insert("updateOptions".into(), json!(o));
        }
        Ok(RequestSpec::api(
            http::Method::PUT,
            "/v1.0/im/robots/interactiveCards",
            body,
        ))
    }
    fn parse(&self, _: Value) -> Result<(), ApiError> {
        Ok(())
    }
}
