//! What a bot-message handler receives: the typed message plus a reply context.

use std::time::{SystemTime, UNIX_EPOCH};

use dingtalk_core::Frame;
use dingtalk_core::api::card::{CardContent, CardResult, CreateAndDeliver};
use dingtalk_core::error::ClientError;
use dingtalk_core::model::{CardParamMap, ChatbotMessage};
use dingtalk_core::webhook::Message;

use crate::api::ApiClient;
use crate::runtime::HttpClient;

/// Wall-clock milliseconds since the Unix epoch (webhook expiry, signatures).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A chatbot message and everything needed to answer it.
#[derive(Debug, Clone)]
pub struct BotContext<H> {
    /// The message.
    pub message: ChatbotMessage,
    /// The frame it came in (headers such as `messageId`).
    pub frame: Frame,
    api: ApiClient<H>,
}

impl<H: HttpClient> BotContext<H> {
    /// A context for `message`.
    pub fn new(message: ChatbotMessage, frame: Frame, api: ApiClient<H>) -> Self {
        Self {
            message,
            frame,
            api,
        }
    }

    /// The message.
    pub fn message(&self) -> &ChatbotMessage {
        &self.message
    }

    /// The frame it came in.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// Message, frame and API client.
    pub fn into_parts(self) -> (ChatbotMessage, Frame, ApiClient<H>) {
        (self.message, self.frame, self.api)
    }

    /// The API client (token cache shared with the whole client).
    pub fn api(&self) -> &ApiClient<H> {
        &self.api
    }

    /// The message text, trimmed (`None` for non-text messages).
    pub fn text(&self) -> Option<&str> {
        self.message.text()
    }

    /// Replies through the message's session webhook. Refused with
    /// [`dingtalk_core::ErrorKind::SessionWebhookExpired`] once the webhook has expired.
    pub async fn reply(&self, message: Message) -> Result<(), ClientError> {
        let call = self.message.reply_call(message, unix_ms())?;
        self.api.call(&call).await
    }

    /// Replies with text. In a group the sender is @-mentioned.
    pub async fn reply_text(&self, text: impl Into<String>) -> Result<(), ClientError> {
        self.reply(self.message.text_reply(text)).await
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
            space: self.message.card_space(self.api.robot_code()),
        };
        self.api.call(&call).await
    }

    /// Downloads a file, picture, audio or video of this message by its `downloadCode`.
    pub async fn download(&self, download_code: &str) -> Result<Vec<u8>, ClientError> {
        let call = self
            .message
            .download_call(download_code, self.api.robot_code());
        let url = self.api.call(&call).await?;
        self.api.get_bytes(&url).await
    }
}
