//! A bot that takes every setting the builder reads from the environment by default (the
//! proxies above all), for tests that must set environment variables: they run it as a child
//! process with its own environment. Logs at debug level to stderr.
//!
//! `env_bot <tokio|async-std|blocking> <emulator base URL> <client id> <client secret>`: echoes
//! the first text message, then stops; exits 0 when `run` returned `Ok`, 1 with the error on
//! stderr otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test helper aborts

use std::sync::OnceLock;

use dingtalk_core::{Credentials, Endpoints};

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("debug")
        .with_ansi(false)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let [_, adapter, base, id, secret] = &args[..] else {
        panic!("usage: env_bot <adapter> <base url> <client id> <client secret>");
    };
    let credentials = Credentials::new(id, secret);
    let endpoints = Endpoints::single(base);
    let result = match adapter.as_str() {
        "tokio" => tokio_bot(credentials, endpoints),
        "async-std" => async_std_bot(credentials, endpoints),
        "blocking" => blocking_bot(credentials, endpoints),
        other => panic!("unknown adapter {other}"),
    };
    if let Err(e) = result {
        eprintln!("run failed: {e}");
        std::process::exit(1);
    }
}

/// Stops the bot once the first message is answered.
static STOP: OnceLock<dingtalk_driver::StopHandle> = OnceLock::new();

fn stop() {
    if let Some(stop) = STOP.get() {
        stop.stop();
    }
}

fn tokio_bot(credentials: Credentials, endpoints: Endpoints) -> Result<(), String> {
    let client = dingtalk_tokio::Client::builder(credentials)
        .endpoints(endpoints)
        .on_bot_message(|ctx| async move {
            ctx.reply_text(ctx.text().unwrap_or_default().to_owned())
                .await?;
            stop();
            Ok::<(), dingtalk_tokio::HandlerError>(())
        })
        .build()
        .map_err(|e| e.to_string())?;
    let _ = STOP.set(client.stop_handle());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(client.run()).map_err(|e| e.to_string())
}

fn async_std_bot(credentials: Credentials, endpoints: Endpoints) -> Result<(), String> {
    let client = dingtalk_async_std::Client::builder(credentials)
        .endpoints(endpoints)
        .on_bot_message(|ctx| async move {
            ctx.reply_text(ctx.text().unwrap_or_default().to_owned())
                .await?;
            stop();
            Ok::<(), dingtalk_async_std::HandlerError>(())
        })
        .build()
        .map_err(|e| e.to_string())?;
    let _ = STOP.set(client.stop_handle());
    async_std::task::block_on(client.run()).map_err(|e| e.to_string())
}

fn blocking_bot(credentials: Credentials, endpoints: Endpoints) -> Result<(), String> {
    let client = dingtalk_blocking::Client::builder(credentials)
        .endpoints(endpoints)
        .on_bot_message(|ctx| {
            ctx.reply_text(ctx.text().unwrap_or_default().to_owned())?;
            stop();
            Ok::<(), dingtalk_blocking::HandlerError>(())
        })
        .build()
        .map_err(|e| e.to_string())?;
    let _ = STOP.set(client.stop_handle());
    client.run().map_err(|e| e.to_string())
}
