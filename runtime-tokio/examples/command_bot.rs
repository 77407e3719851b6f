//! A command bot: a calculator. `/calc 1 + 2 * (3 - 4)` evaluates integer arithmetic, `/help`
//! lists the commands (generated from their registrations), other text gets a hint, pictures get
//! their own answer. In a group the bot is @-mentioned first (`@Bot /calc 6 * 7`).
//!
//! Without credentials: plays a short conversation against the embedded emulator and prints
//! it. With `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET`: serves until Ctrl-C.
//!
//! Run: `cargo run -p dingtalk-tokio --example command_bot`

use std::time::Duration;

use dingtalk_sim::{Chat, Sim, SimConfig};
use dingtalk_tokio::{Client, ClientBuilder, HandlerError, Router, env_config};

/// Integer arithmetic with `+ - * /` and parentheses; `None` for anything malformed, a
/// division by zero or an overflow (never a panic).
fn eval(input: &str) -> Option<i64> {
    let tokens: Vec<char> = input.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pos = 0;
    let value = expr(&tokens, &mut pos, 0)?;
    (pos == tokens.len()).then_some(value)
}

fn expr(t: &[char], pos: &mut usize, depth: u32) -> Option<i64> {
    let mut value = term(t, pos, depth)?;
    while let Some(&op) = t.get(*pos).filter(|c| **c == '+' || **c == '-') {
        *pos += 1;
        let rhs = term(t, pos, depth)?;
        value = if op == '+' {
            value.checked_add(rhs)?
        } else {
            value.checked_sub(rhs)?
        };
    }
    Some(value)
}

fn term(t: &[char], pos: &mut usize, depth: u32) -> Option<i64> {
    let mut value = atom(t, pos, depth)?;
    while let Some(&op) = t.get(*pos).filter(|c| **c == '*' || **c == '/') {
        *pos += 1;
        let rhs = atom(t, pos, depth)?;
        value = if op == '*' {
            value.checked_mul(rhs)?
        } else {
            value.checked_div(rhs)?
        };
    }
    Some(value)
}

fn atom(t: &[char], pos: &mut usize, depth: u32) -> Option<i64> {
    match t.get(*pos)? {
        '(' if depth < 32 => {
            *pos += 1;
            let v = expr(t, pos, depth + 1)?;
            (t.get(*pos) == Some(&')')).then(|| *pos += 1)?;
            Some(v)
        }
        '-' => {
            *pos += 1;
            atom(t, pos, depth)?.checked_neg()
        }
        c if c.is_ascii_digit() => {
            let start = *pos;
            while t.get(*pos).is_some_and(char::is_ascii_digit) {
                *pos += 1;
            }
            t[start..*pos].iter().collect::<String>().parse().ok()
        }
        _ => None,
    }
}

fn router() -> Router {
    Router::new()
        .command(
            "calc",
            "integer arithmetic, e.g. /calc 1 + 2 * (3 - 4)",
            |ctx, args| async move {
                let answer = match eval(&args) {
                    Some(v) => format!("{args} = {v}"),
                    None => format!("I cannot compute `{args}`"),
                };
                ctx.reply_text(answer).await?;
                Ok::<(), HandlerError>(())
            },
        )
        .on_kind("picture", |ctx| async move {
            ctx.reply_text("Nice picture. I only do arithmetic: /calc 6 * 7")
                .await?;
            Ok::<(), HandlerError>(())
        })
        .on_text(|ctx| async move {
            ctx.reply_text("Try /calc 6 * 7, or /help").await?;
            Ok::<(), HandlerError>(())
        })
}

fn bot(builder: ClientBuilder) -> Result<Client, dingtalk_tokio::Error> {
    builder.router(router()).build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some((credentials, endpoints)) = env_config() {
        let client = bot(Client::builder(credentials).endpoints(endpoints))?;
        let stop = client.stop_handle();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.stop();
        });
        client.run().await?;
        return Ok(());
    }
    let sim = Sim::start(SimConfig::default()).await?;
    let (id, secret) = sim.credentials();
    let client = bot(Client::builder(dingtalk_core::Credentials::new(id, secret))
        .endpoints(dingtalk_core::Endpoints::single(sim.base_url())))?;
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.run().await }
    });
    sim.wait_connections(1, Duration::from_secs(10)).await?;
    let said = [
        ("/calc 1 + 2 * (3 - 4)", Chat::Private),
        ("@CalcBot /calc 6 * 7", Chat::Group),
        ("/calc 1 / 0", Chat::Private),
        ("/help", Chat::Private),
        ("hello", Chat::Private),
    ];
    for (i, (text, chat)) in said.iter().enumerate() {
        sim.bot_text(text, *chat);
        let snap = sim
            .wait_for("the reply", Duration::from_secs(10), |s| {
                s.webhooks.len() > i
            })
            .await?;
        let reply = snap.webhooks[i].body["text"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        println!("user: {text}\nbot:  {}\n", reply.replace('\n', "\n      "));
    }
    client.stop_handle().stop();
    running.await??;
    Ok(())
}
