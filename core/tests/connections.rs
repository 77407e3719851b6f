//! Several Stream connections for one app (`StreamConfig::connections`): each opened with its
//! own ticket, each acking on its own socket, each replaced on its own; deduplication shared.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

mod common;

use std::time::Duration;

use common::*;
use dingtalk_core::session::{ConnPhase, ConnStats};
use dingtalk_core::{ConnId, Error, Input, Outcome, Output, Session};

fn with_connections(n: usize) -> dingtalk_core::StreamConfig {
    let mut c = config();
    c.connections = n;
    c
}

/// A session with `n` open connections.
fn connected(n: usize) -> (Gw, Vec<ConnId>) {
    let mut g = Gw::new(with_connections(n));
    let conns = (0..n).map(|_| g.open_ok()).collect();
    g.take();
    (g, conns)
}

fn ack_ids(g: &Gw) -> Vec<(ConnId, String)> {
    g.sends()
        .into_iter()
        .map(|(c, v)| (c, v["headers"]["messageId"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn each_connection_is_opened_with_its_own_ticket() {
    let mut g = Gw::new(with_connections(3));
    assert_eq!(
        g.count(|o| matches!(o, Output::Http { .. })),
        3,
        "one open request per connection, at once"
    );
    let mut uris = Vec::new();
    for _ in 0..3 {
        g.open_ok();
        uris.extend(g.log.iter().filter_map(|o| match o {
            Output::Connect { request, .. } => Some(request.uri().to_string()),
            _ => None,
        }));
    }
    uris.sort();
    uris.dedup();
    assert_eq!(uris.len(), 3, "three tickets: {uris:?}");
    let slots: Vec<usize> = g.s.connection_stats().iter().map(|c| c.slot).collect();
    assert_eq!(slots, vec![0, 1, 2]);
    assert!(
        g.s.connection_stats()
            .iter()
            .all(|c| c.state == ConnPhase::Open)
    );
    // Nothing more is opened while all three are up.
    g.take();
    g.advance(Duration::from_secs(60));
    assert!(g.pending_http().is_none());
}

#[test]
fn the_connection_count_is_bounded() {
    let now = std::time::Instant::now();
    for n in [0, dingtalk_core::config::MAX_CONNECTIONS + 1] {
        assert!(matches!(
            Session::new(with_connections(n), now),
            Err(Error::InvalidConfig(_))
        ));
    }
    assert!(
        Session::new(
            with_connections(dingtalk_core::config::MAX_CONNECTIONS),
            now
        )
        .is_ok()
    );
}

#[test]
fn every_ack_goes_to_the_connection_that_read_the_frame() {
    let (mut g, c) = connected(3);
    g.text(c[2], &bot_message("m-2"));
    g.text(c[0], &bot_message("m-0"));
    g.text(c[1], &ping("p-1", "o"));
    assert_eq!(
        ack_ids(&g),
        vec![
            (c[2], "m-2".to_owned()),
            (c[0], "m-0".to_owned()),
            (c[1], "p-1".to_owned())
        ]
    );
    let stats: Vec<ConnStats> = g.s.connection_stats();
    let counts: Vec<(u64, u64)> = stats
        .iter()
        .map(|s| (s.frames_received, s.acks_sent))
        .collect();
    assert_eq!(counts, vec![(1, 1), (1, 1), (1, 1)], "per-connection stats");
}

#[test]
fn a_frame_redelivered_on_a_sibling_runs_its_handler_once_and_both_get_the_ack() {
    let (mut g, c) = connected(2);
    g.text(c[0], &card_callback("cb-1"));
    let first = g.deliveries();
    assert_eq!(first.len(), 1);
    g.take();
    // DingTalk redelivers the un-acked frame on the other connection while the handler runs.
    g.text(c[1], &card_callback("cb-1"));
    assert!(g.deliveries().is_empty(), "the handler runs once");
    g.take();
    g.complete(first[0].id, Outcome::Ok(serde_json::json!({"ok": true})));
    let sends = g.sends();
    assert_eq!(sends.len(), 2, "each copy is acked on its own connection");
    let conns: Vec<ConnId> = sends.iter().map(|(c, _)| *c).collect();
    assert!(conns.contains(&c[0]) && conns.contains(&c[1]));
    assert_eq!(ack_data(&sends[0].1), ack_data(&sends[1].1), "the same ack");
    g.take();
    // A later redelivery on either connection replays the recorded ack.
    g.text(c[1], &card_callback("cb-1"));
    assert!(g.deliveries().is_empty());
    let replay = g.sends();
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0].0, c[1]);
    assert_eq!(ack_data(&replay[0].1), ack_data(&sends[0].1));
}

#[test]
fn each_connection_is_replaced_on_its_own() {
    let (mut g, c) = connected(3);
    // Connection 1 drops: only its slot reconnects; the others carry on untouched.
    g.input(Input::Closed {
        conn: c[1],
        reason: "eof".into(),
    });
    g.take();
    g.advance(Duration::from_secs(2));
    let (id, _) = g
        .pending_http()
        .expect("one open request for the lost connection");
    assert!(g.pending_http().is_none(), "only one");
    // Its open fails: it backs off while the other two keep serving.
    g.respond(id, 503, "{}");
    g.take();
    g.text(c[0], &bot_message("still-0"));
    g.text(c[2], &bot_message("still-2"));
    assert_eq!(ack_ids(&g).len(), 2);
    g.take();
    g.advance(Duration::from_secs(30));
    let replacement = g.open_ok();
    let slot_of = |g: &Gw, conn: ConnId| {
        g.s.connection_stats()
            .iter()
            .find(|s| s.conn == conn)
            .map(|s| s.slot)
    };
    assert_eq!(slot_of(&g, replacement), Some(1), "it takes the lost slot");
    g.take();
    // A disconnect on connection 2 opens its replacement at once (make-before-break) and
    // nothing for the others.
    g.text(c[2], &disconnect("d-2"));
    assert_eq!(g.count(|o| matches!(o, Output::Http { .. })), 1);
    let fresh = g.open_ok();
    assert_eq!(slot_of(&g, fresh), Some(2));
    assert_eq!(
        g.s.connection_stats()
            .iter()
            .find(|s| s.conn == c[2])
            .map(|s| s.state),
        Some(ConnPhase::Draining)
    );
    assert_eq!(g.s.connections().len(), 4, "three serving, one draining");
}
