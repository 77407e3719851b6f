//! Routing a chatbot message to one handler: a command (`/name args`, after any leading
//! @-mentions, the name matched without case), a message kind (`picture`, `file`, ...), text,
//! or a fallback; `/help` is answered from the registered commands' help lines. The decision
//! is here; adapters keep the handlers by the indexes this table hands out.

use crate::model::ChatbotMessage;

/// The routing table of a bot's messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    commands: Vec<(String, String)>,
    kinds: Vec<String>,
    text: bool,
    fallback: bool,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// The command registered at this index, with the text after its name (trimmed).
    Command {
        /// Its index.
        index: usize,
        /// The arguments.
        args: &'a str,
    },
    /// Answer with [`Routes::help`]: `/help` (unless a `help` command is registered), or a
    /// command nobody registered when there is no text or fallback handler (`unknown` names it).
    Help {
        /// The unknown command asked for, if that is why.
        unknown: Option<&'a str>,
    },
    /// The kind handler registered at this index.
    Kind {
        /// Its index.
        index: usize,
    },
    /// The text handler.
    Text,
    /// The fallback handler.
    Fallback,
    /// Nothing is registered for it: acked, not handled.
    Ignore,
}

/// Longest command name.
pub const MAX_COMMAND: usize = 32;

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A command name must be 1 to 32 letters, digits, `-` or `_`.
    #[error("invalid command name `{0}`: use 1 to 32 letters, digits, `-` or `_`")]
    InvalidName(String),
    /// The same command twice.
    #[error("the command `{0}` is registered twice")]
    Duplicate(String),
}

/// The command in `text`, if it is one: leading whitespace and `@mentions` skipped, then
/// `/name` and the rest (trimmed). `/` alone, or a name with other characters, is not one.
pub fn parse_command(text: &str) -> Option<(&str, &str)> {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix('@') {
        rest = after
            .find(char::is_whitespace)
            .map_or("", |i| &after[i..])
            .trim_start();
    }
    let body = rest.strip_prefix('/').or_else(|| rest.strip_prefix('／'))?;
    let end = body.find(char::is_whitespace).unwrap_or(body.len());
    let (name, args) = body.split_at(end);
    valid_name(name).then_some((name, args.trim()))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COMMAND
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Routes {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the command `name` (without the `/`) with a one-line `help`; returns its index.
    pub fn command(&mut self, name: &str, help: &str) -> Result<usize, RouteError> {
        if !valid_name(name) {
            return Err(RouteError::InvalidName(name.chars().take(40).collect()));
        }
        if self.find(name).is_some() {
            return Err(RouteError::Duplicate(name.to_owned()));
        }
        self.commands
            .push((name.to_owned(), help.trim().to_owned()));
        Ok(self.commands.len() - 1)
    }

    /// Registers a handler for messages of `msgtype` (`picture`, `file`, `audio`, `video`,
    /// `richText`, ...); returns its index. A later registration of the same kind wins.
    pub fn kind(&mut self, msgtype: &str) -> usize {
        if let Some(i) = self.kinds.iter().position(|k| k == msgtype) {
            return i;
        }
        self.kinds.push(msgtype.to_owned());
        self.kinds.len() - 1
    }

    /// Text messages that are not commands go to the text handler.
    pub fn text(&mut self) {
        self.text = true;
    }

    /// Whatever nothing else takes goes to the fallback.
    pub fn fallback(&mut self) {
        self.fallback = true;
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.commands
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Where `message` goes.
    pub fn decide<'a>(&self, message: &'a ChatbotMessage) -> Decision<'a> {
        let text = (message.msgtype == "text")
            .then(|| message.text.as_ref().map(|t| t.content.as_str()))
            .flatten();
        if let Some((name, args)) = text.and_then(parse_command) {
            if let Some(index) = self.find(name) {
                return Decision::Command { index, args };
            }
            if name.eq_ignore_ascii_case("help") && !self.commands.is_empty() {
                return Decision::Help { unknown: None };
            }
            if !self.text && !self.fallback && !self.commands.is_empty() {
                return Decision::Help {
                    unknown: Some(name),
                };
            }
        }
        if let Some(index) = self.kinds.iter().position(|k| *k == message.msgtype) {
            return Decision::Kind { index };
        }
        if text.is_some() && self.text {
            return Decision::Text;
        }
        if self.fallback {
            return Decision::Fallback;
        }
        Decision::Ignore
    }

    /// The help text: one line per command, `/name — help`, in registration order.
    pub fn help(&self) -> String {
        let mut out = String::from("Commands:");
        for (name, help) in &self.commands {
            out.push_str("\n/");
            out.push_str(name);
            if !help.is_empty() {
                out.push_str(" — ");
                out.push_str(help);
            }
        }
        out
    }

    /// The answer to a [`Decision::Help`]: the help text, after a line naming the unknown
    /// command if there is one.
    pub fn help_answer(&self, unknown: Option<&str>) -> String {
        match unknown {
            Some(name) => format!("Unknown command /{name}.\n{}", self.help()),
            None => self.help(),
        }
    }
}

/// Handlers keyed by a name: organisation events by `eventType`, card actions by action id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyed {
    keys: Vec<String>,
}

impl Keyed {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `key` (a later registration of the same key replaces it); returns its index.
    pub fn add(&mut self, key: &str) -> usize {
        if let Some(i) = self.keys.iter().position(|k| k == key) {
            return i;
        }
        self.keys.push(key.to_owned());
        self.keys.len() - 1
    }

    /// The handler of the first of `candidates` that has one (an event's type; a card click's
    /// action ids, in order).
    pub fn pick<'a>(&self, candidates: impl IntoIterator<Item = &'a str>) -> Option<usize> {
        candidates
            .into_iter()
            .find_map(|c| self.keys.iter().position(|k| k == c))
    }
}

/// Handlers of any shape `F` keyed by name, with a fallback: what the event and card routers of
/// every adapter hold (an async closure, or a plain function in the blocking adapter).
#[derive(Debug, Clone)]
pub struct Table<F> {
    keys: Keyed,
    handlers: Vec<F>,
    /// Handlers by a prefix of the subject (a card's `outTrackId`), longest first.
    prefixes: Vec<(String, F)>,
    fallback: Option<F>,
}

impl<F> Default for Table<F> {
    fn default() -> Self {
        Self {
            keys: Keyed::new(),
            handlers: Vec::new(),
            prefixes: Vec::new(),
            fallback: None,
        }
    }
}

impl<F> Table<F> {
    /// Registers `f` for `key` (replacing an earlier one for the same key).
    pub fn add(&mut self, key: &str, f: F) {
        let index = self.keys.add(key);
        match self.handlers.get_mut(index) {
            Some(slot) => *slot = f,
            None => self.handlers.push(f),
        }
    }

    /// Registers `f` for subjects starting with `prefix` (replacing an earlier one for the same
    /// prefix): the cards of one kind, by the `outTrackId` prefix you give them.
    pub fn add_prefix(&mut self, prefix: &str, f: F) {
        self.prefixes.retain(|(p, _)| p != prefix);
        self.prefixes.push((prefix.to_owned(), f));
        // Longest first: the most specific prefix wins.
        self.prefixes
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    /// The handler of the first candidate key that has one, else of the longest prefix of
    /// `subject`, else the fallback.
    pub fn pick_for<'a>(
        &self,
        candidates: impl IntoIterator<Item = &'a str>,
        subject: &str,
    ) -> Option<&F> {
        self.keys
            .pick(candidates)
            .and_then(|i| self.handlers.get(i))
            .or_else(|| {
                self.prefixes
                    .iter()
                    .find(|(p, _)| subject.starts_with(p.as_str()))
                    .map(|(_, f)| f)
            })
            .or(self.fallback.as_ref())
    }

    /// Registers the fallback.
    pub fn set_fallback(&mut self, f: F) {
        self.fallback = Some(f);
    }

    /// The handler of the first candidate that has one, or the fallback.
    pub fn pick<'a>(&self, candidates: impl IntoIterator<Item = &'a str>) -> Option<&F> {
        self.keys
            .pick(candidates)
            .and_then(|i| self.handlers.get(i))
            .or(self.fallback.as_ref())
    }

    /// The registered keys.
    pub fn keys(&self) -> &Keyed {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests abort on failure
    use super::*;

    #[test]
    fn cards_route_by_action_then_longest_track_prefix_then_fallback() {
        let mut t: Table<&str> = Table::default();
        t.add("approve", "approve");
        t.add_prefix("vote-", "vote");
        t.add_prefix("vote-poll-", "poll");
        t.set_fallback("fallback");
        assert_eq!(t.pick_for(["approve"], "vote-1"), Some(&"approve"));
        assert_eq!(t.pick_for(["other"], "vote-1"), Some(&"vote"));
        assert_eq!(t.pick_for([], "vote-poll-9"), Some(&"poll"));
        assert_eq!(t.pick_for([], "ai-1"), Some(&"fallback"));
    }

    fn message(msgtype: &str, text: Option<&str>) -> ChatbotMessage {
        let mut v = serde_json::json!({
            "msgtype": msgtype, "conversationId": "c", "conversationType": "2",
            "msgId": "m", "senderId": "s", "chatbotUserId": "b",
        });
        if let Some(t) = text {
            v["text"] = serde_json::json!({"content": t});
        }
        ChatbotMessage::from_json(&v.to_string()).unwrap()
    }

    #[test]
    fn keyed_handlers_are_picked_by_the_first_candidate_that_has_one() {
        let mut k = Keyed::new();
        let add = k.add("user_add_org");
        let approve = k.add("approve");
        assert_eq!(k.add("approve"), approve);
        assert_eq!(k.pick(["user_add_org"]), Some(add));
        assert_eq!(k.pick(["other", "approve"]), Some(approve));
        assert_eq!(k.pick(["other"]), None);
        assert_eq!(k.pick([]), None);
    }

    #[test]
    fn commands_are_found_after_mentions_without_case() {
        assert_eq!(parse_command("/calc 1 + 2"), Some(("calc", "1 + 2")));
        assert_eq!(
            parse_command("  @Bot  @Other /Calc   3*4  "),
            Some(("Calc", "3*4"))
        );
        assert_eq!(
            parse_command("@Bot/help"),
            None,
            "a mention runs to whitespace"
        );
        assert_eq!(
            parse_command("／help"),
            Some(("help", "")),
            "full-width slash"
        );
        assert_eq!(parse_command("/"), None);
        assert_eq!(parse_command("/a.b"), None);
        assert_eq!(parse_command("calc 1"), None);
        assert_eq!(parse_command(&format!("/{}", "x".repeat(40))), None);
    }

    #[test]
    fn messages_go_to_commands_kinds_text_or_fallback() {
        let mut r = Routes::new();
        assert_eq!(r.command("calc", "evaluate an expression").unwrap(), 0);
        assert_eq!(r.command("ping", "").unwrap(), 1);
        assert_eq!(
            r.command("PING", ""),
            Err(RouteError::Duplicate("PING".into()))
        );
        assert!(matches!(
            r.command("bad name", ""),
            Err(RouteError::InvalidName(_))
        ));
        let picture = r.kind("picture");
        assert_eq!(
            r.decide(&message("text", Some("@Bot /CALC 1+1"))),
            Decision::Command {
                index: 0,
                args: "1+1"
            }
        );
        assert_eq!(
            r.decide(&message("text", Some("/help"))),
            Decision::Help { unknown: None }
        );
        // No text or fallback handler: an unknown command is answered with the help.
        assert_eq!(
            r.decide(&message("text", Some("/nope x"))),
            Decision::Help {
                unknown: Some("nope")
            }
        );
        assert_eq!(
            r.decide(&message("picture", None)),
            Decision::Kind { index: picture }
        );
        assert_eq!(r.decide(&message("text", Some("hello"))), Decision::Ignore);
        r.text();
        assert_eq!(r.decide(&message("text", Some("hello"))), Decision::Text);
        assert_eq!(r.decide(&message("text", Some("/nope"))), Decision::Text);
        assert_eq!(r.decide(&message("file", None)), Decision::Ignore);
        r.fallback();
        assert_eq!(r.decide(&message("file", None)), Decision::Fallback);
        assert_eq!(r.help(), "Commands:\n/calc — evaluate an expression\n/ping");
        assert!(
            r.help_answer(Some("nope"))
                .starts_with("Unknown command /nope.\nCommands:")
        );
    }
}
