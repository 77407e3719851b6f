//! `dingtalk-sim serve`: run the emulator by hand, open its console in a browser, and drive a
//! bot against it. `dingtalk-sim serve --help` lists the flags.

use std::time::Duration;

use dingtalk_sim::{Sim, SimConfig};

const HELP: &str = "\
dingtalk-sim: a local DingTalk emulator (Stream gateway, tokens, OpenAPI, webhooks, a web console)

USAGE:
    dingtalk-sim serve [FLAGS]

FLAGS:
    --port PORT               listen on 127.0.0.1:PORT (default: any free port)
    --client-id ID            the app's client id the emulator accepts (default sim-client-id)
    --client-secret SECRET    the app's client secret (default sim-client-secret)
    --robot-secret SEC...     sign check for custom-robot webhooks (default: none checked)
    --token-ttl SECS          lifetime of issued access tokens (default 7200)
    --disconnect-grace SECS   how long a connection lives after a SYSTEM disconnect (default 10)
    --redeliver-after MS      push an un-acked frame again after MS, as DingTalk does (default: never)
    --fail-tokens N           fault: the first N token requests fail with HTTP 500
    --rate-limit N            fault: the first N OpenAPI calls are rate limited
    --fail-opens S1,S2,...    fault: the first connection opens answer these HTTP statuses
    --fail-card-creates N     fault: the first N card creations answer param.templateNotExist
    -h, --help                this text

The console (chat as a user, cards, AI cards, events, API log, fault buttons) is at the
printed address. The control API (`/_sim/messages`, `/_sim/replies`, `/_sim/acks`,
`/_sim/state`, `/_sim/event`, `/_sim/card-action`, `/_sim/fault`) is described in the README.";

fn parse<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: `{value}` is not a valid value (see --help)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("serve") => {}
        Some("-h" | "--help") => {
            println!("{HELP}");
            return Ok(());
        }
        _ => {
            eprintln!("{HELP}");
            std::process::exit(2);
        }
    }
    let mut config = SimConfig::default();
    let mut port = 0u16;
    let (mut fail_tokens, mut rate_limit, mut fail_cards) = (0u32, 0u32, 0u32);
    let mut fail_opens: Vec<u16> = Vec::new();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{HELP}");
            return Ok(());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value (see --help)"))?;
        match flag.as_str() {
            "--port" => port = parse(&flag, &value)?,
            "--client-id" => config.client_id = value,
            "--client-secret" => config.client_secret = value,
            "--robot-secret" => config.robot_secret = Some(value),
            "--token-ttl" => config.token_ttl = Duration::from_secs(parse(&flag, &value)?),
            "--disconnect-grace" => {
                config.disconnect_grace = Duration::from_secs(parse(&flag, &value)?)
            }
            "--redeliver-after" => {
                config.redeliver_after = Some(Duration::from_millis(parse(&flag, &value)?))
            }
            "--fail-tokens" => fail_tokens = parse(&flag, &value)?,
            "--rate-limit" => rate_limit = parse(&flag, &value)?,
            "--fail-card-creates" => fail_cards = parse(&flag, &value)?,
            "--fail-opens" => {
                fail_opens = value
                    .split(',')
                    .map(|s| parse(&flag, s.trim()))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown flag {other} (see --help)").into()),
        }
    }
    let sim = Sim::start_on(config, port).await?;
    sim.fail_next_tokens(fail_tokens);
    sim.rate_limit_next_calls(rate_limit);
    sim.fail_next_card_creates(fail_cards);
    if !fail_opens.is_empty() {
        sim.fail_next_opens(&fail_opens);
    }
    let (id, secret) = sim.credentials();
    let base = sim.base_url();
    println!("dingtalk-sim listening on {base}");
    println!();
    println!("  console:  {base}/   (open it in a browser: chat with your bot as a user)");
    println!();
    println!("  DINGTALK_CLIENT_ID={id}");
    println!("  DINGTALK_CLIENT_SECRET={secret}");
    println!("  DINGTALK_OPENAPI_ENDPOINT={base}");
    println!();
    println!(
        "inject a user message:  curl -s -XPOST {base}/_sim/messages -H 'content-type: application/json' -d '{{\"text\":\"hi\"}}'"
    );
    println!("list the bot's replies: curl -s {base}/_sim/replies");
    println!("list the acks:          curl -s {base}/_sim/acks");
    println!();
    println!("Ctrl-C stops.");
    tokio::signal::ctrl_c().await?;
    drop(sim);
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(())
}
