//! Media in one step, on every adapter: an image and a file are uploaded (multipart with a
//! generated boundary, content type from the extension) and sent to the conversation through
//! the robot API (a group by its conversation id, a one-to-one chat to the sender); a file over
//! the limit is refused before anything is sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dingtalk_core::error::ClientError;
use dingtalk_core::{Credentials, Endpoints, ErrorKind};
use dingtalk_driver::runtime::Runtime;
use dingtalk_sim::{Chat, Sim, SimConfig};

const T: Duration = Duration::from_secs(15);

type Errors = Arc<Mutex<Vec<String>>>;

fn kind_of(e: &ClientError) -> String {
    match e {
        ClientError::Api(a) => format!("{:?}", a.kind),
        other => other.to_string(),
    }
}

/// What the bot is asked, and what the emulator must have seen.
async fn check(sim: &Sim, errors: &Errors) {
    sim.wait_connections(1, T).await.unwrap();
    sim.bot_text("image", Chat::Group);
    sim.wait_for("a group image", T, |s| {
        s.api_calls
            .iter()
            .any(|r| r.path == "/v1.0/robot/groupMessages/send")
    })
    .await
    .unwrap();
    sim.bot_text("file", Chat::Private);
    sim.wait_for("a one-to-one file", T, |s| {
        s.api_calls
            .iter()
            .any(|r| r.path == "/v1.0/robot/oToMessages/batchSend")
    })
    .await
    .unwrap();
    sim.bot_text("huge", Chat::Private);
    sim.wait_for("the refusal", T, |s| !s.webhooks.is_empty())
        .await
        .unwrap();
    let snap = sim.snapshot();
    let uploads: Vec<_> = snap
        .api_calls
        .iter()
        .filter(|r| r.path == "/media/upload")
        .collect();
    assert_eq!(uploads.len(), 2, "the huge one is never sent");
    let group = snap
        .api_calls
        .iter()
        .find(|r| r.path == "/v1.0/robot/groupMessages/send")
        .unwrap();
    assert_eq!(group.body["msgKey"], "sampleImageMsg");
    let param: serde_json::Value =
        serde_json::from_str(group.body["msgParam"].as_str().unwrap()).unwrap();
    assert!(
        param["photoURL"]
            .as_str()
            .unwrap()
            .starts_with("@sim-media-"),
        "{param}"
    );
    let oto = snap
        .api_calls
        .iter()
        .find(|r| r.path == "/v1.0/robot/oToMessages/batchSend")
        .unwrap();
    assert_eq!(oto.body["msgKey"], "sampleFile");
    assert_eq!(oto.body["userIds"], serde_json::json!(["sim-staff-1"]));
    let param: serde_json::Value =
        serde_json::from_str(oto.body["msgParam"].as_str().unwrap()).unwrap();
    assert_eq!(
        (param["fileName"].as_str(), param["fileType"].as_str()),
        (Some("report.pdf"), Some("pdf"))
    );
    assert_eq!(*errors.lock().unwrap(), vec!["TooLarge".to_owned()]);
    assert!(snap.violations.is_empty(), "{:?}", snap.violations);
}

const PNG: &[u8] = b"\\x89PNG\\r\\n\\x1a\\n fake image bytes";

fn huge() -> Vec<u8> {
    vec![0u8; 21 * 1024 * 1024]
}

async fn async_media<R: Runtime>(
    block_on: fn(dingtalk_driver::Client<R>) -> Result<(), dingtalk_driver::Error>,
) {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let errors = Errors::default();
    let e2 = errors.clone();
    let client = dingtalk_driver::Client::<R>::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .on_bot_message(move |ctx| {
            let errors = e2.clone();
            async move {
                match ctx.text().unwrap_or_default() {
                    "image" => ctx.reply_image("cat.png", PNG.to_vec()).await?,
                    "file" => {
                        ctx.reply_file("report.pdf", b"%PDF-1.4 fake".to_vec())
                            .await?
                    }
                    _ => {
                        let e = ctx.reply_image("huge.png", huge()).await.unwrap_err();
                        errors.lock().unwrap().push(kind_of(&e));
                        ctx.reply_text("too large").await?;
                    }
                }
                Ok::<(), dingtalk_driver::HandlerError>(())
            }
        })
        .build()
        .unwrap();
    let running = std::thread::spawn({
        let client = client.clone();
        move || block_on(client)
    });
    check(&sim, &errors).await;
    client.stop_handle().stop();
    running.join().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_media() {
    async_media::<dingtalk_driver::runtime::Tokio>(|c| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(c.run())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_std_media() {
    async_media::<dingtalk_driver::runtime::AsyncIo>(|c| async_std::task::block_on(c.run())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_media() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let (id, secret) = sim.credentials();
    let errors = Errors::default();
    let e2 = errors.clone();
    let client = dingtalk_blocking::Client::builder(Credentials::new(id, secret))
        .endpoints(Endpoints::single(sim.base_url()))
        .on_bot_message(move |ctx| {
            match ctx.text().unwrap_or_default() {
                "image" => ctx.reply_image("cat.png", PNG.to_vec())?,
                "file" => ctx.reply_file("report.pdf", b"%PDF-1.4 fake".to_vec())?,
                _ => {
                    let e = ctx.reply_image("huge.png", huge()).unwrap_err();
                    e2.lock().unwrap().push(kind_of(&e));
                    ctx.reply_text("too large")?;
                }
            }
            Ok::<(), dingtalk_blocking::HandlerError>(())
        })
        .build()
        .unwrap();
    let running = std::thread::spawn({
        let client = client.clone();
        move || client.run()
    });
    check(&sim, &errors).await;
    client.stop_handle().stop();
    running.join().unwrap().unwrap();
}

#[test]
fn the_boundary_never_occurs_in_the_file() {
    use dingtalk_core::api::media::{MediaType, MediaUpload};
    let a = MediaUpload::new(MediaType::Image, "a.png", PNG.to_vec(), 1).unwrap();
    let b = MediaUpload::new(MediaType::Image, "a.png", PNG.to_vec(), 2).unwrap();
    assert_ne!(a.boundary, b.boundary, "random per seed");
    assert_eq!(a.content_type, "image/png");
    // A file that contains the boundary seed 1 draws first gets another one.
    let mut tricky = format!("--{}", a.boundary).into_bytes();
    tricky.extend_from_slice(PNG);
    let c = MediaUpload::new(MediaType::Image, "a.png", tricky.clone(), 1).unwrap();
    assert_ne!(c.boundary, a.boundary);
    assert!(!String::from_utf8_lossy(&tricky).contains(&c.boundary));
    let e = MediaUpload::new(MediaType::Voice, "a.exe", vec![1], 1).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidFile);
}
