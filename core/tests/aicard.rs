//! The AI-card machine, driven by hand with a fake clock: every decision of
//! `dingtalk_core::aicard` has a test here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dingtalk_core::aicard::{
    AiCard, AiCardCall, AiCardError, AiCardOptions, AiCardOutcome, CallFailure, Step, StreamMode,
};
use dingtalk_core::api::card::CardSpace;
use proptest::prelude::*;

fn space() -> CardSpace {
    CardSpace::Group {
        open_conversation_id: "cid1".into(),
        robot_code: "bot".into(),
        at_user_ids: None,
        at_all: false,
        recipients: Vec::new(),
    }
}

/// A card with a fake clock and a log of every call made.
struct Run {
    card: AiCard,
    now: Instant,
    calls: Vec<AiCardCall>,
}

impl Run {
    fn new(opts: AiCardOptions) -> Self {
        let now = Instant::now();
        Self {
            card: AiCard::new(space(), "t1", opts, now, 42).unwrap(),
            now,
            calls: Vec::new(),
        }
    }

    /// The next call, answered `Ok`, waiting (advancing the clock) as the card asks.
    fn step_ok(&mut self) -> Option<AiCardCall> {
        loop {
            match self.card.poll(self.now) {
                Step::Call(c) => {
                    self.calls.push(c.clone());
                    self.card.on_result(self.now, Ok(()));
                    return Some(c);
                }
                Step::Wait(at)
                    if self.card.has_ended() || at < self.now + Duration::from_secs(1) =>
                {
                    self.now = at.max(self.now);
                }
                _ => return None,
            }
        }
    }

    /// Answers every call `Ok` until the card waits for input or is done.
    fn drain(&mut self) -> Option<AiCardOutcome> {
        while self.step_ok().is_some() {}
        match self.card.poll(self.now) {
            Step::Done(o) => Some(o),
            _ => None,
        }
    }

    fn streams(&self) -> Vec<&dingtalk_core::api::card::StreamingUpdate> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                AiCardCall::Stream(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn statuses(&self) -> Vec<(String, String)> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                AiCardCall::Update(u) => {
                    let d = &u.card_data.as_ref()?.card_param_map;
                    Some((u.out_track_id.clone(), d.get("flowStatus")?.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

fn fast() -> AiCardOptions {
    AiCardOptions::default().min_interval(Duration::from_millis(100))
}

#[test]
fn a_card_is_shown_processing_at_once_then_inputing_streamed_and_finished() {
    let mut r = Run::new(fast().with_data("title", "Answer"));
    let Some(AiCardCall::Create(c)) = r.step_ok() else {
        panic!("the first call creates the card")
    };
    let data = &c.card.card_data.card_param_map;
    assert_eq!(data["flowStatus"], "1");
    assert_eq!(data["msgContent"], "");
    assert_eq!(data["title"], "Answer");
    assert_eq!(
        c.card.card_template_id,
        dingtalk_core::aicard::AI_MARKDOWN_TEMPLATE
    );
    // Nothing more until there is text.
    assert!(matches!(r.card.poll(r.now), Step::Wait(_)));
    r.card.append("Hel").unwrap();
    r.card.append("lo **world**").unwrap();
    assert!(r.drain().is_none());
    r.card.finish();
    assert_eq!(r.drain(), Some(AiCardOutcome::Finished { cards: 1 }));
    assert_eq!(
        r.statuses(),
        vec![("t1".into(), "2".into()), ("t1".into(), "3".into())]
    );
    let s = r.streams();
    assert_eq!(s.len(), 2, "the text, then the final call");
    assert!(s.iter().all(|s| s.is_full && s.key == "msgContent"));
    assert_eq!(s[1].content, "Hello **world**");
    assert!(s[1].is_finalize && !s[1].is_error && !s[0].is_finalize);
    let guids: HashSet<_> = s.iter().map(|s| s.guid.clone()).collect();
    assert_eq!(guids.len(), s.len(), "a fresh guid per call");
    // Refused once ended: the text is final.
    assert_eq!(r.card.append("late"), Err(AiCardError::Ended));
}

#[test]
fn updates_are_coalesced_one_in_flight_latest_wins_and_spaced() {
    let mut r = Run::new(AiCardOptions::default().min_interval(Duration::from_millis(300)));
    r.step_ok(); // create
    r.card.append("a").unwrap();
    r.step_ok(); // inputing
    let Step::Call(AiCardCall::Stream(first)) = r.card.poll(r.now) else {
        panic!()
    };
    assert_eq!(first.content, "a");
    // While it is in flight the producer keeps writing; nothing else is sent.
    for t in ["b", "c", "d"] {
        r.card.append(t).unwrap();
        assert_eq!(r.card.poll(r.now), Step::Busy);
    }
    r.card.on_result(r.now, Ok(()));
    // The next call waits for the interval, then carries the latest text only.
    let Step::Wait(at) = r.card.poll(r.now) else {
        panic!("spaced")
    };
    assert_eq!(at, r.now + Duration::from_millis(300));
    r.card.append("e").unwrap();
    r.now = at;
    let Step::Call(AiCardCall::Stream(second)) = r.card.poll(r.now) else {
        panic!()
    };
    assert_eq!(second.content, "abcde");
}

#[test]
fn a_slow_call_is_never_followed_by_an_older_snapshot() {
    let mut r = Run::new(fast());
    r.step_ok();
    r.card.replace("version 1").unwrap();
    r.step_ok(); // inputing
    let Step::Call(AiCardCall::Stream(s1)) = r.card.poll(r.now) else {
        panic!()
    };
    r.card.replace("version 2").unwrap();
    r.now += Duration::from_secs(5); // the call is slow
    r.card.on_result(r.now, Ok(()));
    r.card.finish();
    r.drain();
    let contents: Vec<_> = r.streams().iter().map(|s| s.content.clone()).collect();
    assert_eq!(s1.content, "version 1");
    assert_eq!(contents.last().map(String::as_str), Some("version 2"));
    assert!(!contents[1..].contains(&"version 1".to_owned()));
}

#[test]
fn a_long_markdown_text_continues_in_a_new_card_each_under_the_limit() {
    let mut r = Run::new(fast());
    r.step_ok();
    let line = "0123456789 abcdefghij klmnopqrst uvwxyz\n\n"; // 41 bytes
    let mut text = String::new();
    for i in 0..60 {
        text.push_str(&format!("{i:02}{line}"));
        r.card.append(&format!("{i:02}{line}")).unwrap();
        // Interleave some calls, as a real producer would see.
        r.step_ok();
    }
    r.card.finish();
    assert_eq!(r.drain(), Some(AiCardOutcome::Finished { cards: 3 }));
    let rendered = dingtalk_core::markdown::to_dingtalk(&text);
    let creates: Vec<_> = r
        .calls
        .iter()
        .filter_map(|c| match c {
            AiCardCall::Create(c) => Some(c.card.out_track_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(creates, ["t1", "t1-2", "t1-3"]);
    // Every call under the limit; the last content of each card, joined, is the whole text.
    let mut last = std::collections::BTreeMap::new();
    for s in r.streams() {
        assert!(s.content.len() <= 1024, "{} bytes", s.content.len());
        last.insert(s.out_track_id.clone(), s.content.clone());
    }
    let joined: String = ["t1", "t1-2", "t1-3"]
        .iter()
        .map(|t| last[*t].clone())
        .collect();
    assert_eq!(joined, rendered);
    // Each card is cut after a line break, and closed as finished.
    assert!(last["t1"].ends_with('\n'));
    let finals: Vec<_> = r
        .statuses()
        .into_iter()
        .filter(|(_, s)| s == "3")
        .map(|(t, _)| t)
        .collect();
    assert_eq!(finals, ["t1", "t1-2", "t1-3"]);
}

#[test]
fn append_mode_sends_deltas_in_bounded_chunks_and_replace_sends_full() {
    let mut opts = fast().mode(StreamMode::Append);
    opts.max_update_bytes = 16;
    opts.max_card_bytes = 64;
    let mut r = Run::new(opts);
    r.step_ok();
    r.card.append("short ").unwrap();
    r.drain();
    r.card.append("then a much longer addition").unwrap();
    r.drain();
    let s = r.streams();
    assert_eq!(s[0].content, "short ");
    assert!(!s[0].is_full);
    assert!(s.iter().all(|s| s.content.len() <= 16));
    let appended: String = s.iter().map(|s| s.content.as_str()).collect();
    assert_eq!(appended, "short then a much longer addition");
    r.card.replace("new").unwrap();
    r.drain();
    let last = r.streams().last().cloned().cloned().unwrap();
    assert_eq!((last.content.as_str(), last.is_full), ("new", true));
}

#[test]
fn retryable_failures_are_retried_with_the_latest_text_and_a_new_guid() {
    let mut r = Run::new(fast());
    r.step_ok();
    r.card.append("one").unwrap();
    r.step_ok();
    let Step::Call(AiCardCall::Stream(s1)) = r.card.poll(r.now) else {
        panic!()
    };
    r.card
        .on_result(r.now, Err(CallFailure::transport("connection reset")));
    let Step::Wait(at) = r.card.poll(r.now) else {
        panic!("backs off")
    };
    assert!(at > r.now);
    r.card.append(" two").unwrap();
    r.now = at;
    let Step::Call(AiCardCall::Stream(s2)) = r.card.poll(r.now) else {
        panic!()
    };
    assert_eq!(s2.content, "one two");
    assert_ne!(s1.guid, s2.guid);
}

#[test]
fn an_update_that_fails_for_good_closes_the_card_as_failed() {
    let mut r = Run::new(fast());
    r.step_ok();
    r.card.append("x").unwrap();
    r.step_ok();
    let Step::Call(AiCardCall::Stream(_)) = r.card.poll(r.now) else {
        panic!()
    };
    let bad = CallFailure {
        retryable: false,
        error: "param.stream.content: content is too large".into(),
    };
    r.card.on_result(r.now, Err(bad));
    let outcome = r.drain().unwrap();
    assert!(
        matches!(outcome, AiCardOutcome::Failed { ref reason } if reason.contains("too large"))
    );
    assert_eq!(r.statuses().last().unwrap().1, "5");
}

#[test]
fn fail_sends_the_text_so_far_with_the_note_and_the_failed_state() {
    let mut r = Run::new(fast().failure_note("\n\n(interrupted)"));
    r.step_ok();
    r.card.append("partial answer").unwrap();
    r.drain();
    r.card.fail("the model errored");
    let outcome = r.drain().unwrap();
    assert_eq!(
        outcome,
        AiCardOutcome::Failed {
            reason: "the model errored".into()
        }
    );
    let last = *r.streams().last().unwrap();
    assert_eq!(last.content, "partial answer\n\n(interrupted)");
    assert!(last.is_finalize && last.is_error);
    assert_eq!(r.statuses().last().unwrap(), &("t1".into(), "5".into()));
}

#[test]
fn the_deadline_fails_a_card_nobody_finished() {
    let mut r = Run::new(fast().max_duration(Duration::from_secs(60)));
    r.step_ok();
    r.card.append("thinking").unwrap();
    r.drain();
    let Step::Wait(at) = r.card.poll(r.now) else {
        panic!()
    };
    assert_eq!(at, r.now.max(at));
    r.now += Duration::from_secs(61);
    let outcome = r.drain().unwrap();
    assert!(
        matches!(outcome, AiCardOutcome::Failed { ref reason } if reason.contains("timed out"))
    );
    assert_eq!(r.statuses().last().unwrap().1, "5");
}

#[test]
fn a_card_that_cannot_be_created_falls_back_to_one_markdown_message() {
    let mut r = Run::new(fast());
    let Step::Call(AiCardCall::Create(_)) = r.card.poll(r.now) else {
        panic!()
    };
    r.card.on_result(
        r.now,
        Err(CallFailure {
            retryable: false,
            error: "param.templateNotExist".into(),
        }),
    );
    assert!(r.card.is_fallback());
    r.card.append("# Title\n\n```\ncode\n```").unwrap();
    // Nothing is sent while the producer writes.
    assert!(matches!(r.card.poll(r.now), Step::Wait(_)));
    r.card.finish();
    let Step::Call(AiCardCall::Fallback { markdown, .. }) = r.card.poll(r.now) else {
        panic!()
    };
    assert_eq!(markdown, "# Title\n\n> code");
    r.card.on_result(r.now, Ok(()));
    assert!(matches!(
        r.card.poll(r.now),
        Step::Done(AiCardOutcome::FellBack { finished: true, .. })
    ));
}

#[test]
fn without_fallback_a_failed_create_is_a_failed_card() {
    let mut r = Run::new(fast().fallback(false));
    r.card.poll(r.now);
    r.card.on_result(
        r.now,
        Err(CallFailure {
            retryable: false,
            error: "no permission".into(),
        }),
    );
    assert!(matches!(
        r.card.poll(r.now),
        Step::Done(AiCardOutcome::Failed { .. })
    ));
}

#[test]
fn other_variables_go_through_the_card_update_merged_by_key() {
    let mut r = Run::new(fast());
    r.step_ok();
    r.card.set("progress", "50").unwrap();
    let Some(AiCardCall::Update(u)) = r.step_ok() else {
        panic!()
    };
    assert_eq!(u.card_data.unwrap().card_param_map["progress"], "50");
    assert!(u.options.unwrap().update_card_data_by_key);
    assert_eq!(
        r.card.set("flowStatus", "3"),
        Err(AiCardError::ReservedKey("flowStatus".into()))
    );
    assert!(r.card.set("msgContent", "x").is_err());
}

#[test]
fn the_text_is_bounded() {
    let mut opts = fast();
    opts.max_total_bytes = 10;
    let mut r = Run::new(opts);
    r.card.append("12345").unwrap();
    assert_eq!(
        r.card.append("678901"),
        Err(AiCardError::TooLong { limit: 10 })
    );
    assert_eq!(
        r.card.text(),
        "12345",
        "nothing of a refused append is kept"
    );
}

#[test]
fn a_final_state_that_cannot_be_sent_is_abandoned_after_the_grace() {
    let mut r = Run::new(fast().max_duration(Duration::from_secs(1)));
    r.step_ok();
    r.card.finish();
    loop {
        match r.card.poll(r.now) {
            Step::Call(_) => r.card.on_result(r.now, Err(CallFailure::transport("down"))),
            Step::Wait(at) => r.now = at,
            Step::Done(o) => {
                assert!(matches!(o, AiCardOutcome::Abandoned { .. }), "{o:?}");
                break;
            }
            Step::Busy => unreachable!(),
        }
    }
}

#[test]
fn options_are_checked() {
    let now = Instant::now();
    assert!(AiCard::new(space(), "", AiCardOptions::default(), now, 1).is_err());
    assert!(AiCard::new(space(), "t", AiCardOptions::template("", "k"), now, 1).is_err());
    assert!(
        AiCard::new(
            space(),
            "t",
            AiCardOptions::template("x", "flowStatus"),
            now,
            1
        )
        .is_err()
    );
    let huge = AiCardOptions::default().max_duration(Duration::MAX);
    assert!(
        AiCard::new(space(), "t", huge, now, 1).is_ok(),
        "saturates, never panics"
    );
}

proptest! {
    /// Any interleaving of writes, results and clock steps: at most one call in flight, every
    /// call under the size limit, and the card always ends, showing the whole text.
    #[test]
    fn any_interleaving_ends_with_the_whole_text(
        ops in proptest::collection::vec((0u8..6, "[a-zé\\n ]{0,40}"), 1..60),
        append in any::<bool>(),
    ) {
        let mut opts = fast();
        opts.max_update_bytes = 64;
        opts.max_card_bytes = 128;
        opts.convert_markdown = false;
        if append { opts = opts.mode(StreamMode::Append); }
        let mut r = Run::new(opts);
        let mut text = String::new();
        let mut in_flight = false;
        for (op, s) in ops {
            match op {
                0 | 1 => { if r.card.append(&s).is_ok() { text.push_str(&s); } }
                2 => { match r.card.poll(r.now) {
                    Step::Call(c) => {
                        prop_assert!(!in_flight);
                        if let AiCardCall::Stream(s) = &c { prop_assert!(s.content.len() <= 64); }
                        r.calls.push(c);
                        in_flight = true;
                    }
                    Step::Busy => prop_assert!(in_flight),
                    _ => {}
                } }
                3 => { if in_flight { r.card.on_result(r.now, Ok(())); in_flight = false; } }
                4 => { if in_flight {
                    r.card.on_result(r.now, Err(CallFailure::transport("x"))); in_flight = false; } }
                _ => r.now += Duration::from_millis(150),
            }
        }
        if in_flight { r.card.on_result(r.now, Ok(())); }
        r.card.finish();
        let outcome = r.drain();
        prop_assert!(outcome.is_some());
        // Replay the stream calls per card to see what DingTalk shows.
        let mut shown: std::collections::BTreeMap<String, String> = Default::default();
        let mut order = Vec::new();
        for c in &r.calls {
            if let AiCardCall::Create(c) = c { order.push(c.card.out_track_id.clone()); }
            if let AiCardCall::Stream(s) = c {
                prop_assert!(s.content.len() <= 64);
                let e = shown.entry(s.out_track_id.clone()).or_default();
                if s.is_full { e.clone_from(&s.content) } else { e.push_str(&s.content) }
            }
        }
        if matches!(outcome, Some(AiCardOutcome::Finished { .. })) {
            let joined: String = order.iter().map(|t| shown.get(t).cloned().unwrap_or_default()).collect();
            prop_assert_eq!(joined, text);
        }
    }
}

proptest! {
    /// The converter takes anything (an LLM's output, cut anywhere) without panicking.
    #[test]
    fn markdown_conversion_takes_anything(s in "[a-z#*_`~|>\\-\\[\\]()!\\n 0-9.<]{0,200}") {
        let _ = dingtalk_core::markdown::to_dingtalk(&s);
    }

    /// Every letter of the text is kept (outside tables, where GitHub's rules drop cells beyond
    /// the header's, and code fences, whose info string is no text; both have unit tests).
    #[test]
    fn markdown_conversion_keeps_the_text(s in "[a-z#*_>\\-\\n 0-9.]{0,200}") {
        let out = dingtalk_core::markdown::to_dingtalk(&s);
        let letters = |t: &str| t.chars().filter(char::is_ascii_lowercase).count();
        prop_assert_eq!(letters(&out), letters(&s), "{:?} -> {:?}", s, out);
    }
}
