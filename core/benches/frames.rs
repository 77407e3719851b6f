//! Per-frame cost of the core: parse, route, ack. Run: `cargo bench -p dingtalk-core --bench frames`.
#![allow(missing_docs, clippy::unwrap_used)] // criterion entry points

mod support;
use support as common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dingtalk_core::dedup::{CachedAck, DedupCache};
use dingtalk_core::frame::Ack;
use dingtalk_core::{Frame, Limits};

fn frames(c: &mut Criterion) {
    let bot = common::bot_frame_template();
    let event = common::event_frame_template();
    let ping = common::ping_frame();
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));

    let one = bot.replace("{ID}", "bench-1");
    // Baseline in the same run: what a typical SDK does with a frame (a full JSON tree of the
    // frame, then of its `data`).
    g.bench_function("baseline_value_tree_bot_1kb", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_str(black_box(&one)).unwrap();
            let data: serde_json::Value =
                serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
            (v, data)
        })
    });
    g.bench_function("parse_bot_1kb", |b| {
        b.iter(|| Frame::parse(black_box(&one), &Limits::default()).unwrap())
    });
    // What a handler's first `ctx.message()` costs: `data` unescaped, then the chatbot message.
    let parsed = Frame::parse(&one, &Limits::default()).unwrap();
    g.bench_function("message_bot_1kb", |b| {
        b.iter(|| {
            black_box(&parsed)
                .data_json::<dingtalk_core::model::ChatbotMessage>()
                .unwrap()
        })
    });
    g.bench_function("ack_text", |b| {
        b.iter(|| {
            Ack::new(
                200,
                black_box("bbb43a7_fc9_19ce26ebc01_2925aa2"),
                "OK",
                r#"{"response":null}"#,
            )
            .to_text()
        })
    });

    // Full session steps with a fresh message id each time (the dedup cache fills up and
    // evicts as in production).
    let (mut s, conn, now) = common::connected();
    let mut n = 0u64;
    g.bench_function("session_step_bot_1kb", |b| {
        b.iter_batched(
            || {
                n += 1;
                bot.replace("{ID}", &format!("bench-bot-{n}"))
            },
            |text| common::step(&mut s, conn, now, &text),
            BatchSize::SmallInput,
        )
    });
    let (mut s, conn, now) = common::connected();
    g.bench_function("session_step_event", |b| {
        b.iter_batched(
            || {
                n += 1;
                event.replace("{ID}", &format!("bench-ev-{n}"))
            },
            |text| common::step(&mut s, conn, now, &text),
            BatchSize::SmallInput,
        )
    });
    let (mut s, conn, now) = common::connected();
    g.bench_function("session_step_ping", |b| {
        b.iter(|| common::step(&mut s, conn, now, black_box(&ping)))
    });
    g.finish();

    let mut cache = DedupCache::new(10_000, Duration::from_secs(300));
    let t0 = Instant::now();
    for i in 0..10_000 {
        cache.insert(&format!("msg-{i}"), CachedAck::Text(Arc::from("ack")), t0);
    }
    let mut g = c.benchmark_group("dedup_10k");
    g.bench_function("hit", |b| {
        b.iter(|| cache.get(black_box("msg-5000"), t0).is_some())
    });
    g.bench_function("miss", |b| {
        b.iter(|| cache.get(black_box("msg-absent"), t0).is_some())
    });
    g.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
