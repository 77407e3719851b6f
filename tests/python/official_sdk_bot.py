"""The official Python SDK's bot (dingtalk-stream, as its README and examples write one), run
against this project's emulator by tests/tests/python_sdk.rs: the emulator must be a faithful
enough DingTalk for it. `hello` is echoed through the session webhook, `md` answered with
markdown, `card` with a StandardCard through the robot API, and `ai` with the SDK's AI markdown
card (start, streaming, finish).

Usage: official_sdk_bot.py <client id> <client secret>, with DINGTALK_OPENAPI_ENDPOINT set to
the emulator's base URL (the SDK reads it at import)."""

import logging
import sys

import dingtalk_stream
from dingtalk_stream import AckMessage


class Bot(dingtalk_stream.ChatbotHandler):
    async def process(self, callback: dingtalk_stream.CallbackMessage):
        incoming = dingtalk_stream.ChatbotMessage.from_dict(callback.data)
        text = incoming.text.content.strip()
        if text == "md":
            self.reply_markdown("python", "**python** markdown", incoming)
        elif text == "card":
            card = {"config": {"autoLayout": True}, "header": {"title": {"type": "text", "text": "python card"}},
                    "contents": [{"type": "text", "text": "from the official SDK", "id": "text_1"}]}
            self.reply_card(card, incoming)
        elif text == "ai":
            card = dingtalk_stream.AIMarkdownCardInstance(self.dingtalk_client, incoming)
            card.ai_start()
            card.ai_streaming(markdown="thinking about it", append=False)
            card.ai_streaming(markdown=" ... done", append=True)
            card.ai_finish(markdown="python ai card: done")
        else:
            self.reply_text("python echo: " + text, incoming)
        return AckMessage.STATUS_OK, "OK"


def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    client_id, secret = sys.argv[1], sys.argv[2]
    client = dingtalk_stream.DingTalkStreamClient(dingtalk_stream.Credential(client_id, secret))
    client.register_callback_handler(dingtalk_stream.chatbot.ChatbotMessage.TOPIC, Bot())
    client.start_forever()


if __name__ == "__main__":
    main()
