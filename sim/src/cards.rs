//! Interactive and AI cards as DingTalk keeps them: created from a template, delivered,
//! updated by key or whole, streamed (`PUT /v1.0/card/streaming`), with the documented 400
//! errors (reference/openapi.md §7): `param.cardAlreadyExist`, `param.cardNotExist`,
//! `param.openSpaceIdEmpty`, `param.stream.keyEmpty`, `param.stream.guidEmpty`,
//! `param.stream.contentEmpty`, `param.stream.outTrackId` ("card is not exist"),
//! `param.stream.content` ("content is too large", more than 1 KB in one call).

use std::collections::{BTreeMap, HashSet};

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::{api_error, now_ms, ok_json};

/// Most bytes of `content` one streaming call may carry.
pub const MAX_STREAM_CONTENT: usize = 1024;
/// Most bytes of one card variable's value.
pub(crate) const MAX_VALUE: usize = 1024;
/// Most cards kept (creating more answers `param.invalid`), and most streaming `guid`s
/// remembered for idempotency (all are forgotten when it is reached).
const MAX_CARDS: usize = 10_000;
const MAX_GUIDS: usize = 100_000;

/// One card as the emulator keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimCard {
    /// `cardTemplateId`.
    pub template_id: String,
    /// The `openSpaceId`s it was delivered to.
    pub spaces: Vec<String>,
    /// Its variables now (`cardParamMap`), streamed variables included.
    pub data: BTreeMap<String, String>,
    /// Whether a streaming call closed it (`isFinalize`).
    pub finalized: bool,
    /// Whether a streaming call marked it failed (`isError`).
    pub error: bool,
    /// Every change, in order.
    pub history: Vec<CardChange>,
}

impl SimCard {
    /// `flowStatus` now (AI cards: 1 processing … 5 failed).
    pub fn flow_status(&self) -> Option<&str> {
        self.data.get("flowStatus").map(String::as_str)
    }
}

/// One change of a card.
#[derive(Debug, Clone, PartialEq)]
pub enum CardChange {
    /// Created (and maybe delivered) with these variables.
    Created(BTreeMap<String, String>),
    /// Variables set (merged by key, or replacing all).
    Updated(BTreeMap<String, String>),
    /// A streaming call.
    Streamed {
        /// `key`.
        key: String,
        /// `content`.
        content: String,
        /// `isFull`.
        is_full: bool,
        /// `isFinalize`.
        is_finalize: bool,
        /// `isError`.
        is_error: bool,
        /// When (Unix ms).
        at_unix_ms: i64,
    },
}

/// The cards and the card faults.
#[derive(Debug, Default)]
pub(crate) struct Cards {
    pub(crate) cards: BTreeMap<String, SimCard>,
    guids: HashSet<String>,
    /// The next this many creates answer `param.templateNotExist`.
    pub(crate) fail_creates: u32,
}

/// The `cardParamMap` of `v`, or why it is invalid (`param.invalid`).
fn param_map(v: &Value) -> Result<BTreeMap<String, String>, &'static str> {
    let mut out = BTreeMap::new();
    let Some(map) = v["cardParamMap"].as_object() else {
        return Ok(out);
    };
    for (k, v) in map {
        let Some(s) = v.as_str() else {
            return Err("cardParamMap values must be strings");
        };
        if k.len() > 100 || s.len() > MAX_VALUE {
            return Err("cardParamMap key or value too long");
        }
        out.insert(k.clone(), s.to_owned());
    }
    Ok(out)
}

fn bad(code: &str, message: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, code, message)
}

fn str_of<'a>(body: &'a Value, key: &str) -> &'a str {
    body[key].as_str().unwrap_or_default()
}

impl Cards {
    /// Answers a card call, or `None` when `path` is not one.
    pub(crate) fn handle(&mut self, method: &str, path: &str, body: &Value) -> Option<Response> {
        Some(match (method, path) {
            ("POST", "/v1.0/card/instances") => self.create(body, false),
            ("POST", "/v1.0/card/instances/createAndDeliver") => self.create(body, true),
            ("POST", "/v1.0/card/instances/deliver") => self.deliver(body),
            ("PUT", "/v1.0/card/instances") => self.update(body),
            ("PUT", "/v1.0/card/streaming") => self.stream(body),
            _ => return None,
        })
    }

    /// A card callback's answer (`{cardData, cardUpdateOptions}`) updates the card: merged by
    /// key unless `updateCardDataByKey` is `false`.
    pub(crate) fn apply_answer(&mut self, track: &str, response: &Value) {
        let Some(card) = self.cards.get_mut(track) else {
            return;
        };
        let Ok(data) = param_map(&response["cardData"]) else {
            return;
        };
        if data.is_empty() {
            return;
        }
        if response["cardUpdateOptions"]["updateCardDataByKey"].as_bool() == Some(false) {
            card.data.clone_from(&data);
        } else {
            card.data.extend(data.clone());
        }
        card.history.push(CardChange::Updated(data));
    }

    fn create(&mut self, body: &Value, deliver: bool) -> Response {
        let track = str_of(body, "outTrackId");
        let template = str_of(body, "cardTemplateId");
        if track.is_empty() {
            return bad("param.outTrackIdEmpty", "outTrackId is required");
        }
        if template.is_empty() {
            return bad("param.cardTemplateIdEmpty", "cardTemplateId is required");
        }
        if self.fail_creates > 0 {
            self.fail_creates -= 1;
            return bad("param.templateNotExist", "template is not exist");
        }
        if !self.cards.contains_key(track) && self.cards.len() >= MAX_CARDS {
            return bad("param.invalid", "the emulator keeps at most 10 000 cards");
        }
        if self.cards.contains_key(track) && !deliver {
            return bad("param.cardAlreadyExist", "card already exist");
        }
        let data = match param_map(&body["cardData"]) {
            Ok(d) => d,
            Err(why) => return bad("param.invalid", why),
        };
        let mut card = SimCard {
            template_id: template.to_owned(),
            data: data.clone(),
            history: vec![CardChange::Created(data)],
            ..SimCard::default()
        };
        if deliver {
            let space = str_of(body, "openSpaceId");
            if space.is_empty() {
                return bad("param.openSpaceIdEmpty", "openSpaceId is required");
            }
            if body["imGroupOpenDeliverModel"].is_null()
                && body["imRobotOpenDeliverModel"].is_null()
            {
                return bad("param.openDeliverModelEmpty", "a deliver model is required");
            }
            card.spaces.push(space.to_owned());
            // "One outTrackId, one card": create-and-deliver of a known id delivers it again.
            if let Some(known) = self.cards.get_mut(track) {
                known.spaces.push(space.to_owned());
                return ok_json(json!({"success": true, "result": {"outTrackId": track,
                    "deliverResults": [{"spaceId": space, "success": true,
                                        "carrierId": format!("sim-carrier-{track}")}]}}));
            }
        }
        self.cards.insert(track.to_owned(), card);
        if deliver {
            ok_json(json!({"success": true, "result": {"outTrackId": track,
                "deliverResults": [{"spaceId": str_of(body, "openSpaceId"), "success": true,
                                    "carrierId": format!("sim-carrier-{track}")}]}}))
        } else {
            ok_json(json!({"success": true, "result": track}))
        }
    }

    fn deliver(&mut self, body: &Value) -> Response {
        let space = str_of(body, "openSpaceId");
        if space.is_empty() {
            return bad("param.openSpaceIdEmpty", "openSpaceId is required");
        }
        let track = str_of(body, "outTrackId");
        let Some(card) = self.cards.get_mut(track) else {
            return bad("param.cardNotExist", "card is not exist");
        };
        card.spaces.push(space.to_owned());
        ok_json(
            json!({"success": true, "result": [{"spaceId": space, "success": true,
            "carrierId": format!("sim-carrier-{track}")}]}),
        )
    }

    fn update(&mut self, body: &Value) -> Response {
        let track = str_of(body, "outTrackId");
        let data = match param_map(&body["cardData"]) {
            Ok(d) => d,
            Err(why) => return bad("param.invalid", why),
        };
        let Some(card) = self.cards.get_mut(track) else {
            return bad("param.cardNotExist", "card is not exist");
        };
        if body["cardUpdateOptions"]["updateCardDataByKey"].as_bool() == Some(true) {
            card.data.extend(data.clone());
        } else {
            card.data.clone_from(&data);
        }
        card.history.push(CardChange::Updated(data));
        ok_json(json!({"success": true, "result": true}))
    }

    fn stream(&mut self, body: &Value) -> Response {
        let key = str_of(body, "key");
        let guid = str_of(body, "guid");
        let track = str_of(body, "outTrackId");
        if key.is_empty() {
            return bad("param.stream.keyEmpty", "key is empty");
        }
        if guid.is_empty() {
            return bad("param.stream.guidEmpty", "guid is empty");
        }
        let Some(content) = body["content"].as_str().filter(|c| !c.is_empty()) else {
            return bad("param.stream.contentEmpty", "content is empty");
        };
        if content.len() > MAX_STREAM_CONTENT {
            return bad("param.stream.content", "content is too large");
        }
        let Some(card) = self.cards.get_mut(track) else {
            return bad("param.stream.outTrackId", "card is not exist");
        };
        // `guid` makes a call idempotent: the same guid again changes nothing.
        if self.guids.len() >= MAX_GUIDS {
            self.guids.clear();
        }
        if !self.guids.insert(format!("{track}\u{0}{guid}")) {
            return ok_json(json!({"success": true, "result": true}));
        }
        let is_full = body["isFull"].as_bool().unwrap_or(false);
        let value = card.data.entry(key.to_owned()).or_default();
        if is_full {
            content.clone_into(value);
        } else {
            value.push_str(content);
        }
        let is_finalize = body["isFinalize"].as_bool().unwrap_or(false);
        let is_error = body["isError"].as_bool().unwrap_or(false);
        card.finalized |= is_finalize;
        card.error |= is_error;
        card.history.push(CardChange::Streamed {
            key: key.to_owned(),
            content: content.to_owned(),
            is_full,
            is_finalize,
            is_error,
            at_unix_ms: now_ms(),
        });
        ok_json(json!({"success": true, "result": true}))
    }
}
