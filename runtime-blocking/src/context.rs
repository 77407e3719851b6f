//! What handlers receive: the typed payload plus a blocking reply context.

use std::time::{SystemTime, UNIX_EPOCH};

use dingtalk_core::Frame;
use dingtalk_core::api::card::{CardContent, CardResult, CreateAndDeliver};
use dingtalk_core::model::{CardParamMap, ChatbotMessage};
use dingtalk_core::webhook::Message;

use crate::api::{ApiClient, ClientError};

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A chatbot message and everything needed to answer it.
#[derive(Debug, Clone)]
pub struct BotContext {
    /// The message.
    pub message: ChatbotMessage,
    /// The frame it came in.
    pub frame: Frame,
    api: ApiClient,
}

impl BotContext {
    /// A context for `message` (adapters built on this crate use it).
    pub fn new(message: ChatbotMessage, frame: Frame, api: ApiClient) -> Self {
        Self {
            message,
            frame,
            api,
        }
    }

    /// The API client (token cache shared with the whole client).
    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The message text, trimmed.
    pub fn text(&self) -> Option<&str> {
        self.message.text()
    }

    /// Replies through the session webhook (refused once it expired).
    pub fn reply(&self, message: Message) -> Result<(), ClientError> {
        self.api.call(&self.message.reply_call(message, unix_ms())?)
    }

    /// Replies with text; in a group the sender is @-mentioned.
    pub fn reply_text(&self, text: impl Into<String>) -> Result<(), ClientError> {
        self.reply(self.message.text_reply(text))
    }

    /// Replies with markdown.
    pub fn reply_markdown(
        &self,
        title: impl Into<String>,
        text: impl Into<String>,
    ) -> Result<(), ClientError> {
        self.reply(Message::markdown(title, text))
    }

    /// Creates and delivers an interactive card to this conversation.
    pub fn reply_card(
        &self,
        template_id: impl Into<String>,
        out_track_id: impl Into<String>,
        data: CardParamMap,
    ) -> Result<CardResult, ClientError> {
        self.api.call(&CreateAndDeliver {
            card: CardContent::new(template_id, out_track_id, data),
            space: self.message.card_space(self.api.robot_code()),
        })
    }

    /// Downloads a file, picture, audio or video of this message by its `downloadCode`.
    pub fn download(&self, download_code: &str) -> Result<Vec<u8>, ClientError> {
        let url = self.api.call(
            &self
                .message
                .download_call(download_code, self.api.robot_code()),
        )?;
        self.api.get_bytes(&url)
    }
}
