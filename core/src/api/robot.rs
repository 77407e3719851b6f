//! Robot (app bot) messages: group send, one-to-one batch send, recall, read status, file
//! download. `msgParam` is serialized as the JSON *string* DingTalk wants.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCall, RequestSpec, from_value, require};
use crate::error::ApiError;

/// `msgParam` may not exceed 15 000 bytes.
pub const MAX_MSG_PARAM_BYTES: usize = 15_000;
/// One-to-one batch send takes at most 20 user ids.
pub const MAX_OTO_USERS: usize = 20;

/// One button of a robot action card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardButton {
    /// Button text.
    pub title: String,
    /// Button URL.
    pub url: String,
}

/// A robot message: the msgKey catalogue with typed parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RobotMessage {
    /// `sampleText`.
    Text {
        /// `content`.
        content: String,
    },
    /// `sampleMarkdown`.
    Markdown {
        /// `title`.
        title: String,
        /// `text`.
        text: String,
    },
    /// `sampleImageMsg`: `photoURL` is a URL or a media id.
    Image {
        /// `photoURL`.
        photo_url: String,
    },
    /// `sampleLink`.
    Link {
        /// `text`.
        text: String,
        /// `title`.
        title: String,
        /// `picUrl`.
        pic_url: String,
        /// `messageUrl`.
        message_url: String,
    },
    /// `sampleActionCard`: one button.
    ActionCard {
        /// `title`.
        title: String,
        /// `text` (markdown).
        text: String,
        /// `singleTitle`.
        single_title: String,
        /// `singleURL`.
        single_url: String,
    },
    /// `sampleActionCard2`…`5`: 2 to 5 stacked buttons.
    ActionCardVertical {
        /// `title`.
        title: String,
        /// `text`.
        text: String,
        /// 2 to 5 buttons.
        buttons: Vec<CardButton>,
    },
    /// `sampleActionCard6`: exactly 2 side-by-side buttons.
    ActionCardHorizontal {
        /// `title`.
        title: String,
        /// `text`.
        text: String,
        /// The two buttons.
        buttons: [CardButton; 2],
    },
    /// `sampleAudio` (ogg, amr).
    Audio {
        /// `mediaId`.
        media_id: String,
        /// `duration` in ms.
        duration_ms: u64,
    },
    /// `sampleFile` (xlsx, pdf, zip, rar, doc, docx).
    File {
        /// `mediaId`.
        media_id: String,
        /// `fileName`.
        file_name: String,
        /// `fileType`.
        file_type: String,
    },
    /// `sampleVideo` (mp4).
    Video {
        /// `duration` in seconds.
        duration_s: u64,
        /// `videoMediaId`.
        video_media_id: String,
        /// `videoType`, e.g. `mp4`.
        video_type: String,
        /// `picMediaId`: the cover.
        pic_media_id: String,
    },
}

impl RobotMessage {
    /// The `msgKey`.
    pub fn msg_key(&self) -> String {
        match self {
            Self::Text { .. } => "sampleText".into(),
            Self::Markdown { .. } => "sampleMarkdown".into(),
            Self::Image { .. } => "sampleImageMsg".into(),
            Self::Link { .. } => "sampleLink".into(),
            Self::ActionCard { .. } => "sampleActionCard".into(),
            Self::ActionCardVertical { buttons, .. } => {
                format!("sampleActionCard{}", buttons.len())
            }
            Self::ActionCardHorizontal { .. } => "sampleActionCard6".into(),
            Self::Audio { .. } => "sampleAudio".into(),
            Self::File { .. } => "sampleFile".into(),
            Self::Video { .. } => "sampleVideo".into(),
        }
    }

    /// The `msgParam` object (before it is encoded as a string).
    pub fn msg_param(&self) -> Value {
        match self {
            Self::Text { content } => json!({"content": content}),
            Self::Markdown { title, text } => json!({"title": title, "text": text}),
            Self::Image { photo_url } => json!({"photoURL": photo_url}),
            Self::Link {
                text,
                title,
                pic_url,
                message_url,
            } => {
                json!({"text": text, "title": title, "picUrl": pic_url, "messageUrl": message_url})
            }
            Self::ActionCard {
                title,
                text,
                single_title,
                single_url,
            } => {
                json!({"title": title, "text": text, "singleTitle": single_title, "singleURL": single_url})
            }
            Self::ActionCardVertical {
                title,
                text,
                buttons,
            } => {
                let mut v = json!({"title": title, "text": text});
                if let Some(obj) = v.as_object_mut() {
                    for (i, b) in buttons.iter().enumerate() {
                        obj.insert(format!("actionTitle{}", i + 1), json!(b.title));
                        obj.insert(format!("actionURL{}", i + 1), json!(b.url));
                    }
                }
                v
            }
            Self::ActionCardHorizontal {
                title,
                text,
                buttons,
            } => json!({
                "title": title, "text": text,
                "buttonTitle1": buttons[0].title, "buttonUrl1": buttons[0].url,
                "buttonTitle2": buttons[1].title, "buttonUrl2": buttons[1].url,
            }),
            Self::Audio {
                media_id,
                duration_ms,
            } => json!({"mediaId": media_id, "duration": duration_ms.to_string()}),
            Self::File {
                media_id,
                file_name,
                file_type,
            } => json!({"mediaId": media_id, "fileName": file_name, "fileType": file_type}),
            Self::Video {
                duration_s,
                video_media_id,
                video_type,
                pic_media_id,
            } => json!({
                "duration": duration_s.to_string(), "videoMediaId": video_media_id,
                "videoType": video_type, "picMediaId": pic_media_id,
            }),
        }
    }

    /// `msgKey` and the `msgParam` string, checked against DingTalk's limits.
    pub fn encode(&self) -> Result<(String, String), ApiError> {
        if let Self::ActionCardVertical { buttons, .. } = self {
            if !(2..=5).contains(&buttons.len()) {
                return Err(ApiError::validation(format!(
                    "a vertical action card takes 2 to 5 buttons, not {}",
                    buttons.len()
                )));
            }
        }
        let param = self.msg_param().to_string();
        if param.len() > MAX_MSG_PARAM_BYTES {
            return Err(ApiError::new(
                crate::error::ErrorKind::TooLarge,
                format!(
                    "msgParam of {} bytes exceeds {MAX_MSG_PARAM_BYTES}",
                    param.len()
                ),
            ));
        }
        Ok((self.msg_key(), param))
    }
}

/// The answer of a send: the key used to recall or query the message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SendResult {
    /// `processQueryKey`.
    pub process_query_key: String,
    /// `invalidStaffIdList` (batch send).
    pub invalid_staff_id_list: Vec<String>,
    /// `flowControlledStaffIdList` (batch send): rate-limited recipients, to retry later.
    pub flow_controlled_staff_id_list: Vec<String>,
    /// `filteredStaffIdList` (batch send).
    pub filtered_staff_id_list: Vec<String>,
}

/// `POST /v1.0/robot/groupMessages/send`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSend {
    /// `robotCode`.
    pub robot_code: String,
    /// `openConversationId`.
    pub open_conversation_id: String,
    /// `coolAppCode` (bots installed through a group cool app).
    pub cool_app_code: Option<String>,
    /// The message.
    pub message: RobotMessage,
}

impl ApiCall for GroupSend {
    type Output = SendResult;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("robotCode", &self.robot_code)?;
        require("openConversationId", &self.open_conversation_id)?;
        let (key, param) = self.message.encode()?;
        let mut body = json!({
            "robotCode": self.robot_code, "openConversationId": self.open_conversation_id,
            "msgKey": key, "msgParam": param,
        });
        if let (Some(code), Some(obj)) = (&self.cool_app_code, body.as_object_mut()) {
            obj.insert("coolAppCode".into(), json!(code));
        }
        Ok(RequestSpec::api_post(
            "/v1.0/robot/groupMessages/send",
            body,
        ))
    }
    fn parse(&self, body: Value) -> Result<SendResult, ApiError> {
        from_value(body)
    }
}

/// `POST /v1.0/robot/oToMessages/batchSend`: one-to-one to up to 20 users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSendOto {
    /// `robotCode`.
    pub robot_code: String,
    /// `userIds` (1 to 20).
    pub user_ids: Vec<String>,
    /// The message.
    pub message: RobotMessage,
}

impl ApiCall for BatchSendOto {
    type Output = SendResult;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("robotCode", &self.robot_code)?;
        if self.user_ids.is_empty() || self.user_ids.len() > MAX_OTO_USERS {
            return Err(ApiError::validation(format!(
                "userIds takes 1 to {MAX_OTO_USERS} ids, not {}",
                self.user_ids.len()
            )));
        }
        let (key, param) = self.message.encode()?;
        Ok(RequestSpec::api_post(
            "/v1.0/robot/oToMessages/batchSend",
            json!({"robotCode": self.robot_code, "userIds": self.user_ids, "msgKey": key, "msgParam": param}),
        ))
    }
    fn parse(&self, body: Value) -> Result<SendResult, ApiError> {
        from_value(body)
    }
}

/// The answer of a recall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RecallResult {
    /// `successResult`: recalled keys.
    pub success_result: Vec<String>,
    /// `failedResult`: key → reason.
    pub failed_result: std::collections::BTreeMap<String, String>,
}

/// `POST /v1.0/robot/groupMessages/recall`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecall {
    /// `robotCode`.
    pub robot_code: String,
    /// `openConversationId`.
    pub open_conversation_id: String,
    /// `processQueryKeys`.
    pub process_query_keys: Vec<String>,
}

impl ApiCall for GroupRecall {
    type Output = RecallResult;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("robotCode", &self.robot_code)?;
        require("openConversationId", &self.open_conversation_id)?;
        if self.process_query_keys.is_empty() {
            return Err(ApiError::validation("processQueryKeys is empty"));
        }
        Ok(RequestSpec::api_post(
            "/v1.0/robot/groupMessages/recall",
            json!({"robotCode": self.robot_code, "openConversationId": self.open_conversation_id,
                   "processQueryKeys": self.process_query_keys}),
        ))
    }
    fn parse(&self, body: Value) -> Result<RecallResult, ApiError> {
        from_value(body)
    }
}

/// `POST /v1.0/robot/otoMessages/batchRecall` (lower-case `oto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecallOto {
    /// `robotCode`.
    pub robot_code: String,
    /// `processQueryKeys`.
    pub process_query_keys: Vec<String>,
}

impl ApiCall for BatchRecallOto {
    type Output = RecallResult;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("robotCode", &self.robot_code)?;
        if self.process_query_keys.is_empty() {
            return Err(ApiError::validation("processQueryKeys is empty"));
        }
        Ok(RequestSpec::api_post(
            "/v1.0/robot/otoMessages/batchRecall",
            json!({"robotCode": self.robot_code, "processQueryKeys": self.process_query_keys}),
        ))
    }
    fn parse(&self, body: Value) -> Result<RecallResult, ApiError> {
        from_value(body)
    }
}

/// One reader of a one-to-one message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReadInfo {
    /// `name`.
    pub name: String,
    /// `userId`.
    pub user_id: String,
    /// `readStatus`, e.g. `READ`.
    pub read_status: String,
    /// `readTimestamp` (unix ms).
    pub read_timestamp: Option<i64>,
}

/// The answer of [`OtoReadStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReadStatus {
    /// `sendStatus`.
    pub send_status: String,
    /// `messageReadInfoList`.
    pub message_read_info_list: Vec<ReadInfo>,
}

/// `GET /v1.0/robot/oToMessages/readStatus?processQueryKey=…&robotCode=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtoReadStatus {
    /// `robotCode`.
    pub robot_code: String,
    /// `processQueryKey`.
    pub process_query_key: String,
}

impl ApiCall for OtoReadStatus {
    type Output = ReadStatus;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("robotCode", &self.robot_code)?;
        require("processQueryKey", &self.process_query_key)?;
        let mut spec = RequestSpec::api(
            http::Method::GET,
            "/v1.0/robot/oToMessages/readStatus",
            Value::Null,
        );
        spec.body = super::Body::Empty;
        spec.query = vec![
            ("processQueryKey".into(), self.process_query_key.clone()),
            ("robotCode".into(), self.robot_code.clone()),
        ];
        Ok(spec)
    }
    fn parse(&self, body: Value) -> Result<ReadStatus, ApiError> {
        from_value(body)
    }
}

/// `POST /v1.0/robot/messageFiles/download`: turns a `downloadCode` from an incoming message
/// into a temporary `downloadUrl` (then a plain GET fetches the bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFileDownload {
    /// `robotCode` (the app's client id for an app bot).
    pub robot_code: String,
    /// `downloadCode`.
    pub download_code: String,
}

impl ApiCall for MessageFileDownload {
    type Output = String;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("robotCode", &self.robot_code)?;
        require("downloadCode", &self.download_code)?;
        Ok(RequestSpec::api_post(
            "/v1.0/robot/messageFiles/download",
            json!({"downloadCode": self.download_code, "robotCode": self.robot_code}),
        ))
    }
    fn parse(&self, body: Value) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct R {
            download_url: String,
        }
        Ok(from_value::<R>(body)?.download_url)
    }
}
