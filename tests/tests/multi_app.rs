//! Several apps in one process: a `Group` of clients, each with its own credentials, token and
//! connection, sharing one handler that knows which app it serves; one stop handle stops all;
//! a terminal error of one app stops the others and names the app. On every adapter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests abort on failure

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dingtalk_core::{Credentials, Endpoints};
use dingtalk_driver::runtime::Runtime;
use dingtalk_sim::{Chat, Sim, SimConfig};

const T: Duration = Duration::from_secs(15);

type Seen = Arc<Mutex<Vec<(String, String)>>>;

async fn app_sim(id: &str) -> Sim {
    Sim::start(SimConfig {
        client_id: id.into(),
        client_secret: format!("{id}-secret"),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn creds(sim: &Sim) -> Credentials {
    let (id, secret) = sim.credentials();
    Credentials::new(id, secret)
}

/// A client of `sim`'s app whose bot handler records (app, text) and replies.
fn async_client<R: Runtime>(
    sim: &Sim,
    credentials: Credentials,
    seen: &Seen,
) -> dingtalk_driver::Client<R> {
    let seen = seen.clone();
    dingtalk_driver::Client::<R>::builder(credentials)
        .endpoints(Endpoints::single(sim.base_url()))
        .on_bot_message(move |ctx| {
            let seen = seen.clone();
            async move {
                let app = ctx.api().robot_code().to_owned();
                let text = ctx.text().unwrap_or_default().to_owned();
                seen.lock().unwrap().push((app.clone(), text.clone()));
                ctx.reply_text(format!("{app}: {text}")).await?;
                Ok::<(), dingtalk_driver::HandlerError>(())
            }
        })
        .build()
        .unwrap()
}

fn blocking_client(sim: &Sim, credentials: Credentials, seen: &Seen) -> dingtalk_blocking::Client {
    let seen = seen.clone();
    dingtalk_blocking::Client::builder(credentials)
        .endpoints(Endpoints::single(sim.base_url()))
        .on_bot_message(move |ctx| {
            let app = ctx.api().robot_code().to_owned();
            let text = ctx.text().unwrap_or_default().to_owned();
            seen.lock().unwrap().push((app.clone(), text.clone()));
            ctx.reply_text(format!("{app}: {text}"))?;
            Ok::<(), dingtalk_blocking::HandlerError>(())
        })
        .build()
        .unwrap()
}

/// Both apps answer their own messages through the one shared handler; the group's stop
/// handle stops both.
async fn both_apps_served(a: &Sim, b: &Sim, seen: &Seen) {
    a.wait_connections(1, T).await.unwrap();
    b.wait_connections(1, T).await.unwrap();
    a.bot_text("to a", Chat::Private);
    b.bot_text("to b", Chat::Private);
    for (sim, app, reply) in [(a, "app-a", "app-a: to a"), (b, "app-b", "app-b: to b")] {
        let snap = sim
            .wait_for("the reply", T, |s| !s.webhooks.is_empty())
            .await
            .unwrap();
        assert_eq!(snap.webhooks[0].body["text"]["content"], reply);
        assert_eq!(snap.opens[0].client_id, app, "each app its own connection");
    }
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("app-a".to_owned(), "to a".to_owned()),
            ("app-b".to_owned(), "to b".to_owned())
        ]
    );
}

async fn async_group<R: Runtime>(
    block_on: fn(dingtalk_driver::Group<R>) -> Result<(), dingtalk_driver::GroupError>,
) {
    let (a, b) = (app_sim("app-a").await, app_sim("app-b").await);
    let seen = Seen::default();
    let group = dingtalk_driver::Group::new([
        async_client::<R>(&a, creds(&a), &seen),
        async_client::<R>(&b, creds(&b), &seen),
    ]);
    let stop = group.stop_handle();
    let run = std::thread::spawn(move || block_on(group));
    both_apps_served(&a, &b, &seen).await;
    stop.stop();
    assert!(stop.is_stopped());
    run.join().unwrap().unwrap();

    // A rejected app stops the group, named in the error.
    let (a, b) = (app_sim("app-a").await, app_sim("app-b").await);
    let group = dingtalk_driver::Group::new([
        async_client::<R>(&a, creds(&a), &seen),
        async_client::<R>(&b, Credentials::new("app-b", "wrong"), &seen),
    ]);
    let e = std::thread::spawn(move || block_on(group))
        .join()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.client_id, "app-b");
    assert!(
        matches!(e.error, dingtalk_driver::Error::Stream(_)),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_group_serves_and_stops_several_apps() {
    async_group::<dingtalk_driver::runtime::Tokio>(|g| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(g.run())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_std_group_serves_and_stops_several_apps() {
    async_group::<dingtalk_driver::runtime::AsyncIo>(|g| async_std::task::block_on(g.run())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_group_serves_and_stops_several_apps() {
    let (a, b) = (app_sim("app-a").await, app_sim("app-b").await);
    let seen = Seen::default();
    let group = dingtalk_blocking::Group::new([
        blocking_client(&a, creds(&a), &seen),
        blocking_client(&b, creds(&b), &seen),
    ]);
    let stop = group.stop_handle();
    let run = std::thread::spawn(move || group.run());
    both_apps_served(&a, &b, &seen).await;
    stop.stop();
    run.join().unwrap().unwrap();

    let (a, b) = (app_sim("app-a").await, app_sim("app-b").await);
    let group = dingtalk_blocking::Group::new([
        blocking_client(&a, Credentials::new("app-a", "wrong"), &seen),
        blocking_client(&b, creds(&b), &seen),
    ]);
    let e = std::thread::spawn(move || group.run())
        .join()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.client_id, "app-a");
}
