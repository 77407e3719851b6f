//! What a bot-message handler receives: the typed message plus a reply context.

use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::{Arc, LazyLock, OnceLock};

use dingtalk_core::api::card::{CardContent, CardResult, CreateAndDeliver};
use dingtalk_core::api::media::MediaType;
use dingtalk_core::api::robot::{BatchSendOto, GroupSend, RobotMessage};
use dingtalk_core::error::ClientError;
use dingtalk_core::model::{CardParamMap, ChatbotMessage};
use dingtalk_core::webhook::Message;
use dingtalk_core::{ApiError, Frame, FrameError};

use crate::api::ApiClient;
use crate::runtime::HttpClient;

/// Wall-clock milliseconds since the Unix epoch (webhook expiry, signatures).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The frame and, once asked for, the message parsed from it (shared by clones).
struct Lazy {
    frame: Frame,
    /// Boxed: a message is large, and most of the context's life is spent before (or without)
    /// parsing it.
    message: OnceLock<Box<Result<ChatbotMessage, FrameError>>>,
}

/// A chatbot message and everything needed to answer it.
///
/// The message is parsed from the frame the first time it is asked for ([`BotContext::message`],
/// [`BotContext::text`], a reply), once: a handler that only needs the frame's headers pays for
/// no parse. Cheap to clone.
#[derive(Clone)]
pub struct BotContext<H> {
    lazy: Arc<Lazy>,
    api: ApiClient<H>,
}

/// Names the message only: its data holds the session webhook, a credential.
impl<H> std::fmt::Debug for BotContext<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotContext")
            .field("message_id", &self.lazy.frame.message_id())
            .field("topic", &self.lazy.frame.topic())
            .finish_non_exhaustive()
    }
}

static EMPTY: LazyLock<ChatbotMessage> = LazyLock::new(ChatbotMessage::default);

impl<H: HttpClient> BotContext<H> {
    /// A context for the bot-message `frame`.
    pub fn new(frame: Frame, api: ApiClient<H>) -> Self {
        Self {
            lazy: Arc::new(Lazy {
                frame,
                message: OnceLock::new(),
            }),
            api,
        }
    }

    /// The same message with another API client (the blocking adapter's).
    pub fn with_api<H2: HttpClient>(&self, api: ApiClient<H2>) -> BotContext<H2> {
        BotContext {
            lazy: self.lazy.clone(),
            api,
        }
    }

    fn parsed(&self) -> &Result<ChatbotMessage, FrameError> {
        self.lazy
            .message
            .get_or_init(|| Box::new(self.lazy.frame.data_json::<ChatbotMessage>()))
    }

    /// The message. A frame whose data is not a chatbot message gives an empty message (see
    /// [`BotContext::parse_error`]); replies to it fail with a validation error.
    pub fn message(&self) -> &ChatbotMessage {
        self.parsed().as_ref().unwrap_or(&EMPTY)
    }

    /// Why the frame's data is not a chatbot message, if it is not.
    pub fn parse_error(&self) -> Option<&FrameError> {
        self.parsed().as_ref().err()
    }

    /// The parse error, if the message was asked for and is unreadable (no parse here).
    pub(crate) fn known_parse_error(&self) -> Option<&FrameError> {
        self.lazy
            .message
            .get()
            .and_then(|r| r.as_ref().as_ref().err())
    }

    /// The message, or the validation error a reply to an unreadable message gets.
    fn checked(&self) -> Result<&ChatbotMessage, ClientError> {
        self.parsed().as_ref().map_err(|e| {
            ClientError::Api(ApiError::validation(format!("invalid bot message: {e}")))
        })
    }

    /// The frame it came in (headers such as `messageId`).
    pub fn frame(&self) -> &Frame {
        &self.lazy.frame
    }

    /// The API client (token cache shared with the whole client).
    pub fn api(&self) -> &ApiClient<H> {
        &self.api
    }

    /// The message text, trimmed (`None` for non-text messages).
    pub fn text(&self) -> Option<&str> {
        self.message().text()
    }

    /// Replies through the message's session webhook. Refused with
    /// [`dingtalk_core::ErrorKind::SessionWebhookExpired`] once the webhook has expired.
    pub async fn reply(&self, message: Message) -> Result<(), ClientError> {
        let call = self.checked()?.reply_call(message, unix_ms())?;
        self.api.call(&call).await
    }

    /// Replies with text. In a group the sender is @-mentioned.
    pub async fn reply_text(&self, text: impl Into<String>) -> Result<(), ClientError> {
        self.reply(self.message().text_reply(text)).await
    }

    /// Replies with markdown.
    pub async fn reply_markdown(
        &self,
        title: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<(), ClientError> {
        self.reply(Message::markdown(title, text)).await
    }

    /// Replies with a one-button action card.
    pub async fn reply_action_card(
        &self,
        title: impl Into<String>,
        text: impl Into<String>,
        button: impl Into<String>,
        url: impl Into<String>,
    ) -> Result<(), ClientError> {
        self.reply(Message::ActionCard {
            title: title.into(),
            text: text.into(),
            single_title: button.into(),
            single_url: url.into(),
        })
        .await
    }

    /// Creates an interactive card from `template_id` and delivers it to this conversation
    /// (the group, or the one-to-one chat with the sender). Card actions come back over Stream.
    pub async fn reply_card(
        &self,
        template_id: impl Into<String>,
        out_track_id: impl Into<String>,
        data: CardParamMap,
    ) -> Result<CardResult, ClientError> {
        let call = CreateAndDeliver {
            card: CardContent::new(template_id, out_track_id, data),
            space: self.checked()?.card_space(self.api.robot_code()),
        };
        self.api.call(&call).await
    }

    /// Sends `message` through the robot API to this conversation: the group (by its open
    /// conversation id), or the sender of a one-to-one message (by staff id). For what a
    /// session webhook cannot carry: images, files, voice.
    pub async fn send_robot(&self, message: RobotMessage) -> Result<(), ClientError> {
        let m = self.checked()?;
        let robot_code = self.api.robot_code().to_owned();
        if m.is_group() {
            let call = GroupSend {
                robot_code,
                open_conversation_id: m.conversation_id.clone(),
                cool_app_code: None,
                message,
            };
            self.api.call(&call).await.map(|_| ())
        } else {
            let user = m.sender_staff_id.clone().ok_or_else(|| {
                ClientError::Api(ApiError::validation(
                    "the sender has no staff id (not a member of the bot's org): cannot send to them",
                ))
            })?;
            let call = BatchSendOto {
                robot_code,
                user_ids: vec![user],
                message,
            };
            self.api.call(&call).await.map(|_| ())
        }
    }

    /// Uploads an image (jpg, gif, png, bmp; ≤ 20 MB, checked before sending) and sends it to
    /// this conversation.
    pub async fn reply_image(
        &self,
        file_name: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Result<(), ClientError> {
        let up = self.api.upload(MediaType::Image, file_name, bytes).await?;
        self.send_robot(RobotMessage::Image {
            photo_url: up.media_id,
        })
        .await
    }

    /// Uploads a file (doc, docx, xls, xlsx, ppt, pptx, zip, pdf, rar; ≤ 20 MB) and sends it
    /// to this conversation.
    pub async fn reply_file(
        &self,
        file_name: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Result<(), ClientError> {
        let file_name = file_name.into();
        let file_type = file_name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        let up = self
            .api
            .upload(MediaType::File, file_name.clone(), bytes)
            .await?;
        self.send_robot(RobotMessage::File {
            media_id: up.media_id,
            file_name,
            file_type,
        })
        .await
    }

    /// Uploads a voice message (amr, mp3, wav; ≤ 2 MB) lasting `duration_ms` and sends it to
    /// this conversation.
    pub async fn reply_voice(
        &self,
        file_name: impl Into<String>,
        bytes: Vec<u8>,
        duration_ms: u64,
    ) -> Result<(), ClientError> {
        let up = self.api.upload(MediaType::Voice, file_name, bytes).await?;
        self.send_robot(RobotMessage::Audio {
            media_id: up.media_id,
            duration_ms,
        })
        .await
    }

    /// Starts an AI card answering this message (in the group, or the one-to-one chat with
    /// the sender), shown in the processing state before this returns. Write to it with
    /// [`AiCard::append`](crate::AiCard::append) as the answer is produced, then
    /// [`finish`](crate::AiCard::finish) it. When the card cannot be created (template
    /// missing, no permission) the text is sent at the end as markdown through this message's
    /// session webhook (or the robot API once it has expired). Only invalid options are an
    /// error.
    pub async fn ai_card(
        &self,
        options: dingtalk_core::aicard::AiCardOptions,
    ) -> Result<crate::AiCard, ClientError> {
        let m = self.checked()?;
        let space = m.card_space(self.api.robot_code());
        let fallback = match (&m.session_webhook, m.session_webhook_expired_time) {
            (Some(url), Some(expires_at_ms)) => crate::aicard::FallbackTo::Webhook {
                url: url.clone(),
                expires_at_ms,
            },
            _ => crate::aicard::FallbackTo::Robot,
        };
        let mut rng = fastrand::Rng::with_seed(crate::client::seed());
        let track = format!("ai-{:016x}{:016x}", rng.u64(..), rng.u64(..));
        crate::AiCard::start(&self.api, space, track, options, fallback).await
    }

    /// Downloads a file, picture, audio or video of this message by its `downloadCode`.
    pub async fn download(&self, download_code: &str) -> Result<Vec<u8>, ClientError> {
        let call = self
            .checked()?
            .download_call(download_code, self.api.robot_code());
        let url = self.api.call(&call).await?;
        self.api.get_bytes(&url).await
    }
}
