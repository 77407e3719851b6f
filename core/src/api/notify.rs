//! Work notifications: a message from an app to users' "work notification" chat
//! (`POST {oapi}/topapi/message/corpconversation/asyncsend_v2`, DingTalk's public
//! documentation of 工作通知; not in the project's reference notes).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiCall, RequestSpec, from_value, require};
use crate::error::ApiError;

/// Most users of one notification (`userid_list`).
pub const MAX_USERS: usize = 100;

/// A work notification's message (`msg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationMessage {
    /// `text`.
    Text {
        /// The text.
        content: String,
    },
    /// `markdown`.
    Markdown {
        /// Title.
        title: String,
        /// Markdown.
        text: String,
    },
    /// `link`.
    Link {
        /// Title.
        title: String,
        /// Text.
        text: String,
        /// `messageUrl`.
        message_url: String,
        /// `picUrl`.
        pic_url: String,
    },
    /// `action_card` with one button.
    ActionCard {
        /// Title.
        title: String,
        /// Markdown text.
        markdown: String,
        /// Button text.
        single_title: String,
        /// Button URL.
        single_url: String,
    },
    /// `image` by media id.
    Image {
        /// `media_id`.
        media_id: String,
    },
    /// `file` by media id.
    File {
        /// `media_id`.
        media_id: String,
    },
}

impl NotificationMessage {
    fn to_json(&self) -> Value {
        match self {
            Self::Text { content } => json!({"msgtype": "text", "text": {"content": content}}),
            Self::Markdown { title, text } => {
                json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
            }
            Self::Link {
                title,
                text,
                message_url,
                pic_url,
            } => json!({"msgtype": "link", "link": {
                "title": title, "text": text, "messageUrl": message_url, "picUrl": pic_url}}),
            Self::ActionCard {
                title,
                markdown,
                single_title,
                single_url,
            } => json!({"msgtype": "action_card", "action_card": {
                "title": title, "markdown": markdown,
                "single_title": single_title, "single_url": single_url}}),
            Self::Image { media_id } => {
                json!({"msgtype": "image", "image": {"media_id": media_id}})
            }
            Self::File { media_id } => json!({"msgtype": "file", "file": {"media_id": media_id}}),
        }
    }
}

/// `POST {oapi}/topapi/message/corpconversation/asyncsend_v2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkNotification {
    /// The app's `agent_id`.
    pub agent_id: i64,
    /// The users (1 to [`MAX_USERS`] staff ids), unless `to_all_users`.
    pub user_ids: Vec<String>,
    /// Everyone in the organisation.
    pub to_all_users: bool,
    /// The message.
    pub message: NotificationMessage,
}

/// The answer: the asynchronous send task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NotificationSent {
    /// `task_id`: query its progress and result with it.
    pub task_id: i64,
}

impl ApiCall for WorkNotification {
    type Output = NotificationSent;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        if self.agent_id <= 0 {
            return Err(ApiError::validation("`agent_id` is required"));
        }
        if !self.to_all_users {
            if self.user_ids.is_empty() || self.user_ids.len() > MAX_USERS {
                return Err(ApiError::validation(format!(
                    "`userid_list` takes 1 to {MAX_USERS} users"
                )));
            }
            for u in &self.user_ids {
                require("userid", u)?;
                if u.contains(',') {
                    return Err(ApiError::validation("a user id contains a comma"));
                }
            }
        }
        let body = json!({
            "agent_id": self.agent_id,
            "userid_list": self.user_ids.join(","),
            "to_all_user": self.to_all_users,
            "msg": self.message.to_json(),
        });
        Ok(RequestSpec::oapi_post(
            "/topapi/message/corpconversation/asyncsend_v2",
            body,
        ))
    }
    fn parse(&self, body: Value) -> Result<NotificationSent, ApiError> {
        from_value(body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)] // tests abort on failure
    use super::*;
    use crate::api::Body;

    #[test]
    fn a_notification_is_built_as_documented_and_bounded() {
        let n = WorkNotification {
            agent_id: 42,
            user_ids: vec!["u1".into(), "u2".into()],
            to_all_users: false,
            message: NotificationMessage::Image {
                media_id: "@m".into(),
            },
        };
        let spec = n.spec().unwrap();
        let Body::Json(body) = spec.body else {
            panic!("json body")
        };
        assert_eq!(body["userid_list"], "u1,u2");
        assert_eq!(
            body["msg"],
            json!({"msgtype": "image", "image": {"media_id": "@m"}})
        );
        let many = WorkNotification {
            user_ids: vec!["u".into(); MAX_USERS + 1],
            ..n.clone()
        };
        assert!(many.spec().is_err());
        assert!(
            WorkNotification {
                agent_id: 0,
                ..n.clone()
            }
            .spec()
            .is_err()
        );
        assert!(
            WorkNotification {
                user_ids: vec!["a,b".into()],
                ..n
            }
            .spec()
            .is_err()
        );
    }
}
