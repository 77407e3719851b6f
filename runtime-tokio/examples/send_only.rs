//! Sending without a bot: one `ApiClient::send(target, message)` for a group, a user, a work
//! notification and a custom robot (signed), and a typed error for a message a target cannot
//! carry. Against the embedded emulator; with `DINGTALK_CLIENT_ID` / `DINGTALK_CLIENT_SECRET`
//! set it would send for real, so it only runs against the emulator.
//!
//! Run: `cargo run -p dingtalk-tokio --example send_only`

use dingtalk_core::send::{Outgoing, Target};
use dingtalk_core::webhook::At;
use dingtalk_core::{Credentials, Endpoints};
use dingtalk_sim::{Sim, SimConfig};
use dingtalk_tokio::ApiClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = Sim::start(SimConfig::default()).await?;
    let (id, secret) = sim.credentials();
    let api = ApiClient::new(
        Credentials::new(id, secret),
        Endpoints::single(sim.base_url()),
    )?;
    let robot = Target::CustomRobot {
        webhook: format!("{}/robot/send?access_token=ROBOT-TOKEN", sim.base_url()),
        secret: Some("SECexample".into()),
    };
    let sends = [
        (
            Target::Group {
                open_conversation_id: "cidTeamRoom".into(),
            },
            Outgoing::markdown("Deploy", "**v1.2.3** is live"),
        ),
        (
            Target::User {
                user_id: "staff-7".into(),
            },
            Outgoing::text("your report is ready"),
        ),
        (
            Target::WorkNotification {
                agent_id: 1001,
                user_ids: vec!["staff-7".into(), "staff-8".into()],
            },
            Outgoing::text("timesheets are due today"),
        ),
        (
            robot.clone(),
            Outgoing::text("@staff-7 please look").at(At::users(["staff-7"])),
        ),
    ];
    for (target, message) in sends {
        let shown = format!("{target:?}");
        api.send(target, message).await?;
        println!("sent to {shown}");
    }
    match api
        .send(
            robot,
            Outgoing::Image {
                media_id: "@img".into(),
            },
        )
        .await
    {
        Err(refused) => println!("refused: {refused}"),
        Ok(()) => return Err("an image to a custom robot was sent".into()),
    }
    let snap = sim.snapshot();
    println!(
        "the emulator saw {} API calls and {} webhook calls",
        snap.api_calls.len(),
        snap.webhooks.len()
    );
    Ok(())
}
