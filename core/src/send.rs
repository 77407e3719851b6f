//! One way to send a message anywhere the bot can post: a group or a user through the robot
//! API, a work notification, a session webhook, a custom robot. [`plan`] turns a [`Target`] and an [`Outgoing`]
//! message into the one API call that carries it, or a typed [`SendError`] when the target
//! cannot carry that message (an image to a webhook, @-mentions through the robot API, a feed
//! card to a group send): never a silent downgrade.

use crate::api::notify::{NotificationMessage, WorkNotification};
use crate::api::robot::{BatchSendOto, GroupSend, RobotMessage};
use crate::webhook::{At, CustomRobotSend, FeedLink, Message, SessionWebhookSend};

/// Where a message goes.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// A group the bot is in, by its open conversation id (robot group send).
    Group {
        /// `openConversationId`.
        open_conversation_id: String,
    },
    /// One user, in their one-to-one chat with the bot (robot batch send), by staff id.
    User {
        /// The user's staff id (`userId`).
        user_id: String,
    },
    /// A received message's session webhook (valid until it expires).
    SessionWebhook {
        /// The `sessionWebhook` URL (a credential).
        url: String,
        /// `sessionWebhookExpiredTime` (unix ms), when known.
        expires_at_ms: Option<i64>,
    },
    /// A work notification from the app `agent_id` to these users (1 to 100 staff ids).
    WorkNotification {
        /// The app's `agent_id`.
        agent_id: i64,
        /// The users' staff ids.
        user_ids: Vec<String>,
    },
    /// A custom robot of a group: its webhook URL (or bare token) and `SEC…` secret, if any.
    CustomRobot {
        /// The webhook URL (a credential).
        webhook: String,
        /// The signing secret.
        secret: Option<String>,
    },
}

/// Names the target's kind only: webhooks and secrets are credentials.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Group {
                open_conversation_id,
            } => write!(f, "Group({open_conversation_id})"),
            Self::User { user_id } => write!(f, "User({user_id})"),
            Self::WorkNotification { agent_id, user_ids } => {
                write!(f, "WorkNotification({agent_id}, {} users)", user_ids.len())
            }
            Self::SessionWebhook { .. } => f.write_str("SessionWebhook(<redacted>)"),
            Self::CustomRobot { .. } => f.write_str("CustomRobot(<redacted>)"),
        }
    }
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Self::Group { .. } => "a group (robot API)",
            Self::User { .. } => "a user (robot API)",
            Self::WorkNotification { .. } => "a work notification",
            Self::SessionWebhook { .. } => "a session webhook",
            Self::CustomRobot { .. } => "a custom robot",
        }
    }
}

/// A message, built once for any target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Text, with optional @-mentions (webhook targets only).
    Text {
        /// The text. Write `@userId` in it where a mention should render.
        text: String,
        /// Mentions.
        at: At,
    },
    /// Markdown, with optional @-mentions (webhook targets only).
    Markdown {
        /// Title shown in notifications.
        title: String,
        /// The markdown.
        text: String,
        /// Mentions.
        at: At,
    },
    /// A link.
    Link {
        /// Title.
        title: String,
        /// Text.
        text: String,
        /// Where it opens.
        message_url: String,
        /// Picture URL (may be empty).
        pic_url: String,
    },
    /// An action card with one button.
    ActionCard {
        /// Title.
        title: String,
        /// Markdown text.
        text: String,
        /// Button text.
        button: String,
        /// Button URL.
        url: String,
    },
    /// A feed card (webhook targets only).
    FeedCard {
        /// The entries.
        links: Vec<FeedLink>,
    },
    /// An image by media id (robot-API targets only; upload it first).
    Image {
        /// The media id (`@…`).
        media_id: String,
    },
    /// A file by media id (robot-API targets only).
    File {
        /// The media id.
        media_id: String,
        /// Its name.
        file_name: String,
        /// Its type (extension), e.g. `pdf`.
        file_type: String,
    },
}

impl Outgoing {
    /// Text without mentions.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            at: At::default(),
        }
    }

    /// Markdown without mentions.
    pub fn markdown(title: impl Into<String>, text: impl Into<String>) -> Self {
        Self::Markdown {
            title: title.into(),
            text: text.into(),
            at: At::default(),
        }
    }

    /// Adds mentions to a text or markdown message (other kinds cannot @: unchanged).
    #[must_use]
    pub fn at(mut self, mention: At) -> Self {
        match &mut self {
            Self::Text { at, .. } | Self::Markdown { at, .. } => *at = mention,
            _ => {}
        }
        self
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Markdown { .. } => "markdown",
            Self::Link { .. } => "a link",
            Self::ActionCard { .. } => "an action card",
            Self::FeedCard { .. } => "a feed card",
            Self::Image { .. } => "an image",
            Self::File { .. } => "a file",
        }
    }
}

/// The message cannot go to that target as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target} cannot carry {message}: {why}")]
pub struct SendError {
    /// The target's kind.
    pub target: &'static str,
    /// The message's kind.
    pub message: &'static str,
    /// What to do instead.
    pub why: &'static str,
}

impl From<SendError> for crate::ApiError {
    /// A [`Validation`](crate::ErrorKind::Validation) error: nothing was sent.
    fn from(e: SendError) -> Self {
        crate::ApiError::validation(e.to_string())
    }
}

/// The one API call that sends a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built once per send
pub enum SendCall {
    /// Robot group send.
    Group(GroupSend),
    /// Robot one-to-one send.
    User(BatchSendOto),
    /// Session-webhook send.
    SessionWebhook(SessionWebhookSend),
    /// Custom-robot send.
    CustomRobot(CustomRobotSend),
    /// Work notification.
    WorkNotification(WorkNotification),
}

fn has_mentions(at: &At) -> bool {
    at.all || !at.user_ids.is_empty() || !at.mobiles.is_empty()
}

/// The call that sends `message` to `target` as the bot `robot_code`, at `now_ms` (unix ms:
/// webhook expiry and custom-robot signatures).
pub fn plan(
    target: Target,
    message: Outgoing,
    robot_code: &str,
    now_ms: i64,
) -> Result<SendCall, SendError> {
    let refuse = |why| SendError {
        target: target.name(),
        message: message.name(),
        why,
    };
    Ok(match target.clone() {
        Target::Group {
            open_conversation_id,
        } => SendCall::Group(GroupSend {
            robot_code: robot_code.to_owned(),
            open_conversation_id,
            cool_app_code: None,
            message: robot_message(&message).map_err(refuse)?,
        }),
        Target::User { user_id } => SendCall::User(BatchSendOto {
            robot_code: robot_code.to_owned(),
            user_ids: vec![user_id],
            message: robot_message(&message).map_err(refuse)?,
        }),
        Target::SessionWebhook { url, expires_at_ms } => {
            SendCall::SessionWebhook(SessionWebhookSend {
                url,
                expires_at_ms,
                now_ms,
                message: webhook_message(&message).map_err(refuse)?,
            })
        }
        Target::WorkNotification { agent_id, user_ids } => {
            SendCall::WorkNotification(WorkNotification {
                agent_id,
                user_ids,
                to_all_users: false,
                message: notification_message(&message).map_err(refuse)?,
            })
        }
        Target::CustomRobot { webhook, secret } => SendCall::CustomRobot(CustomRobotSend {
            webhook,
            secret,
            timestamp_ms: now_ms,
            message: webhook_message(&message).map_err(refuse)?,
        }),
    })
}

/// `message` for the robot API, or why it cannot go there.
fn robot_message(message: &Outgoing) -> Result<RobotMessage, &'static str> {
    Ok(match message {
        Outgoing::Text { at, .. } | Outgoing::Markdown { at, .. } if has_mentions(at) => {
            return Err(
                "the robot API has no @-mentions; send to a session webhook or custom robot",
            );
        }
        Outgoing::Text { text, .. } => RobotMessage::Text {
            content: text.clone(),
        },
        Outgoing::Markdown { title, text, .. } => RobotMessage::Markdown {
            title: title.clone(),
            text: text.clone(),
        },
        Outgoing::Link {
            title,
            text,
            message_url,
            pic_url,
        } => RobotMessage::Link {
            text: text.clone(),
            title: title.clone(),
            pic_url: pic_url.clone(),
            message_url: message_url.clone(),
        },
        Outgoing::ActionCard {
            title,
            text,
            button,
            url,
        } => RobotMessage::ActionCard {
            title: title.clone(),
            text: text.clone(),
            single_title: button.clone(),
            single_url: url.clone(),
        },
        Outgoing::FeedCard { .. } => {
            return Err("the robot API has no feed card; send links one by one, or use a webhook");
        }
        Outgoing::Image { media_id } => RobotMessage::Image {
            photo_url: media_id.clone(),
        },
        Outgoing::File {
            media_id,
            file_name,
            file_type,
        } => RobotMessage::File {
            media_id: media_id.clone(),
            file_name: file_name.clone(),
            file_type: file_type.clone(),
        },
    })
}

/// `message` for a work notification, or why it cannot go there.
fn notification_message(message: &Outgoing) -> Result<NotificationMessage, &'static str> {
    Ok(match message {
        Outgoing::Text { at, .. } | Outgoing::Markdown { at, .. } if has_mentions(at) => {
            return Err("work notifications have no @-mentions");
        }
        Outgoing::Text { text, .. } => NotificationMessage::Text {
            content: text.clone(),
        },
        Outgoing::Markdown { title, text, .. } => NotificationMessage::Markdown {
            title: title.clone(),
            text: text.clone(),
        },
        Outgoing::Link {
            title,
            text,
            message_url,
            pic_url,
        } => NotificationMessage::Link {
            title: title.clone(),
            text: text.clone(),
            message_url: message_url.clone(),
            pic_url: pic_url.clone(),
        },
        Outgoing::ActionCard {
            title,
            text,
            button,
            url,
        } => NotificationMessage::ActionCard {
            title: title.clone(),
            markdown: text.clone(),
            single_title: button.clone(),
            single_url: url.clone(),
        },
        Outgoing::FeedCard { .. } => {
            return Err("work notifications have no feed card; send links one by one");
        }
        Outgoing::Image { media_id } => NotificationMessage::Image {
            media_id: media_id.clone(),
        },
        Outgoing::File { media_id, .. } => NotificationMessage::File {
            media_id: media_id.clone(),
        },
    })
}

/// `message` for a webhook, or why it cannot go there.
fn webhook_message(message: &Outgoing) -> Result<Message, &'static str> {
    Ok(match message {
        Outgoing::Text { text, at } => Message::Text {
            content: text.clone(),
            at: has_mentions(at).then(|| at.clone()),
        },
        Outgoing::Markdown { title, text, at } => Message::Markdown {
            title: title.clone(),
            text: text.clone(),
            at: has_mentions(at).then(|| at.clone()),
        },
        Outgoing::Link {
            title,
            text,
            message_url,
            pic_url,
        } => Message::Link {
            title: title.clone(),
            text: text.clone(),
            message_url: message_url.clone(),
            pic_url: pic_url.clone(),
        },
        Outgoing::ActionCard {
            title,
            text,
            button,
            url,
        } => Message::ActionCard {
            title: title.clone(),
            text: text.clone(),
            single_title: button.clone(),
            single_url: url.clone(),
        },
        Outgoing::FeedCard { links } => Message::FeedCard {
            links: links.clone(),
        },
        Outgoing::Image { .. } | Outgoing::File { .. } => {
            return Err(
                "webhooks carry no media; send it to the group or user through the robot API",
            );
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)] // tests abort on failure
    use super::*;

    fn group() -> Target {
        Target::Group {
            open_conversation_id: "cid1".into(),
        }
    }

    fn hook() -> Target {
        Target::SessionWebhook {
            url: "https://oapi.dingtalk.com/robot/sendBySession?session=S".into(),
            expires_at_ms: None,
        }
    }

    #[test]
    fn every_message_goes_where_it_can_and_is_refused_where_it_cannot() {
        let image = Outgoing::Image {
            media_id: "@m".into(),
        };
        let feed = Outgoing::FeedCard { links: vec![] };
        let mention = Outgoing::text("hi @u1").at(At::users(["u1"]));
        assert!(matches!(
            plan(group(), image.clone(), "bot", 0),
            Ok(SendCall::Group(GroupSend {
                message: RobotMessage::Image { .. },
                ..
            }))
        ));
        assert!(matches!(
            plan(Target::User { user_id: "u1".into() }, Outgoing::text("hi"), "bot", 0),
            Ok(SendCall::User(BatchSendOto { ref user_ids, .. })) if user_ids == &["u1".to_owned()]
        ));
        for (target, message) in [
            (hook(), image),
            (group(), feed.clone()),
            (group(), mention.clone()),
        ] {
            let e = plan(target, message, "bot", 0).unwrap_err();
            assert!(!e.to_string().contains("session=S"), "{e}");
        }
        match plan(hook(), mention, "bot", 5).unwrap() {
            SendCall::SessionWebhook(s) => {
                assert_eq!(s.now_ms, 5);
                assert_eq!(
                    s.message.to_json()["at"]["atUserIds"],
                    serde_json::json!(["u1"])
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan(
                Target::CustomRobot {
                    webhook: "https://oapi.dingtalk.com/robot/send?access_token=T".into(),
                    secret: None
                },
                feed,
                "bot",
                0
            ),
            Ok(SendCall::CustomRobot(_))
        ));
        assert_eq!(format!("{:?}", hook()), "SessionWebhook(<redacted>)");
        // The planned call's Debug does not show the webhook either.
        let call = plan(hook(), Outgoing::text("x"), "bot", 0).unwrap();
        assert!(!format!("{call:?}").contains("session=S"), "{call:?}");
    }
}
