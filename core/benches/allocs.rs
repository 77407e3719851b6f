//! Heap allocations per frame, counted with dhat's allocator (separate from the timing bench so
//! the counting allocator does not distort the timings).
//! Run: `cargo bench -p dingtalk-core --bench allocs`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)] // a report binary

mod support;
use support as common;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() {
    let bot = common::bot_frame_template();
    let event = common::event_frame_template();
    let ping = common::ping_frame();
    const N: u64 = 20_000;
    // Frames are built before counting: the adapter hands the core a `&str` it already owns.
    let bots: Vec<String> = (0..N)
        .map(|i| bot.replace("{ID}", &format!("a-{i}")))
        .collect();
    let events: Vec<String> = (0..N)
        .map(|i| event.replace("{ID}", &format!("e-{i}")))
        .collect();
    let _profiler = dhat::Profiler::builder().testing().build();
    for (name, frames) in [("bot message (1 KB)", &bots), ("event", &events)] {
        let (mut s, conn, now) = common::connected();
        // Warm up to steady state: the dedup cache is full and evicting.
        for f in frames.iter().take(12_000) {
            common::step(&mut s, conn, now, f);
        }
        let before = dhat::HeapStats::get();
        let counted = &frames[12_000..];
        for f in counted {
            common::step(&mut s, conn, now, f);
        }
        let after = dhat::HeapStats::get();
        let per = (after.total_blocks - before.total_blocks) as f64 / counted.len() as f64;
        let bytes = (after.total_bytes - before.total_bytes) as f64 / counted.len() as f64;
        println!("{name:<20} {per:>6.2} allocations/frame, {bytes:>8.0} bytes/frame");
    }
    // A handler's first `ctx.message()`: `data` unescaped, then the chatbot message parsed.
    let frame = dingtalk_core::Frame::parse(&bots[0], &dingtalk_core::Limits::default()).unwrap();
    let before = dhat::HeapStats::get();
    for _ in 0..N {
        let m = frame
            .data_json::<dingtalk_core::model::ChatbotMessage>()
            .unwrap();
        std::hint::black_box(m);
    }
    let after = dhat::HeapStats::get();
    let per = (after.total_blocks - before.total_blocks) as f64 / N as f64;
    let bytes = (after.total_bytes - before.total_bytes) as f64 / N as f64;
    println!(
        "{:<20} {per:>6.2} allocations/frame, {bytes:>8.0} bytes/frame",
        "message parse"
    );
    let before = dhat::HeapStats::get();
    for _ in 0..N {
        std::hint::black_box(frame.data_text().unwrap());
    }
    let after = dhat::HeapStats::get();
    let per = (after.total_blocks - before.total_blocks) as f64 / N as f64;
    println!("{:<20} {per:>6.2} allocations/frame", "  of which unescape");
    let (mut s, conn, now) = common::connected();
    let before = dhat::HeapStats::get();
    for _ in 0..N {
        common::step(&mut s, conn, now, &ping);
    }
    let after = dhat::HeapStats::get();
    let per = (after.total_blocks - before.total_blocks) as f64 / N as f64;
    println!("{:<20} {per:>6.2} allocations/frame", "ping");
}
