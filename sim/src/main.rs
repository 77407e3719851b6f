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

/// What the command line asks for.
#[derive(Debug, Default)]
struct Cli {
    /// `-h` / `--help`: print the help and exit.
    help: bool,
    config: SimConfig,
    port: u16,
    fail_tokens: u32,
    rate_limit: u32,
    fail_cards: u32,
    fail_opens: Vec<u16>,
}

/// Parses the arguments after the program name: `serve` and its flags, or `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Cli, String> {
    let mut cli = Cli::default();
    match args.next().as_deref() {
        Some("serve") => {}
        Some("-h" | "--help") => {
            cli.help = true;
            return Ok(cli);
        }
        _ => return Err("the command is `dingtalk-sim serve` (see --help)".into()),
    }
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            cli.help = true;
            return Ok(cli);
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value (see --help)"))?;
        let config = &mut cli.config;
        match flag.as_str() {
            "--port" => cli.port = parse(&flag, &value)?,
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
            "--fail-tokens" => cli.fail_tokens = parse(&flag, &value)?,
            "--rate-limit" => cli.rate_limit = parse(&flag, &value)?,
            "--fail-card-creates" => cli.fail_cards = parse(&flag, &value)?,
            "--fail-opens" => {
                cli.fail_opens = value
                    .split(',')
                    .map(|s| parse(&flag, s.trim()))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown flag {other} (see --help)")),
        }
    }
    Ok(cli)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = match parse_args(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("{e}\n\n{HELP}");
            std::process::exit(2);
        }
    };
    if cli.help {
        println!("{HELP}");
        return Ok(());
    }
    let Cli {
        config,
        port,
        fail_tokens,
        rate_limit,
        fail_cards,
        fail_opens,
        ..
    } = cli;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests abort on failure
    use super::*;

    fn args(line: &str) -> impl Iterator<Item = String> + '_ {
        line.split_whitespace().map(str::to_owned)
    }

    #[test]
    fn every_flag_reaches_the_emulator_configuration() {
        let cli = parse_args(args(
            "serve --port 7070 --client-id app --client-secret s3 --robot-secret SECabc \
             --token-ttl 60 --disconnect-grace 2 --redeliver-after 1500 --fail-tokens 3 \
             --rate-limit 4 --fail-card-creates 5 --fail-opens 500,403",
        ))
        .unwrap();
        assert!(!cli.help);
        assert_eq!(cli.port, 7070);
        assert_eq!(cli.config.client_id, "app");
        assert_eq!(cli.config.client_secret, "s3");
        assert_eq!(cli.config.robot_secret.as_deref(), Some("SECabc"));
        assert_eq!(cli.config.token_ttl, Duration::from_secs(60));
        assert_eq!(cli.config.disconnect_grace, Duration::from_secs(2));
        assert_eq!(
            cli.config.redeliver_after,
            Some(Duration::from_millis(1500))
        );
        assert_eq!((cli.fail_tokens, cli.rate_limit, cli.fail_cards), (3, 4, 5));
        assert_eq!(cli.fail_opens, [500, 403]);
    }

    #[test]
    fn defaults_help_and_bad_command_lines() {
        let cli = parse_args(args("serve")).unwrap();
        let default = SimConfig::default();
        assert_eq!(cli.port, 0);
        assert_eq!(cli.config.client_id, default.client_id);
        assert!(cli.fail_opens.is_empty());
        assert!(parse_args(args("--help")).unwrap().help);
        assert!(parse_args(args("serve --port 1 -h")).unwrap().help);
        let error = |line| parse_args(args(line)).unwrap_err();
        assert!(error("").contains("dingtalk-sim serve"));
        assert!(error("start").contains("dingtalk-sim serve"));
        assert!(error("serve --port").contains("--port needs a value"));
        assert!(error("serve --port 99999").contains("`99999` is not a valid value"));
        assert!(error("serve --fail-opens 500,x").contains("`x` is not a valid value"));
        assert!(error("serve --colour red").contains("unknown flag --colour"));
    }
}
