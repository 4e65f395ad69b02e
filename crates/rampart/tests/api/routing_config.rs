//! Connectors and routes declared in the configuration file, and edits to that file applied
//! while the server runs.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{id_of, spawn_app_with};

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The connectors an operator sees (connectors are server-wide: no account key reads them).
async fn connector_names(app: &crate::helpers::TestApp, operator: &str) -> Vec<String> {
    let reply = app.get("/v1/connectors", operator).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn routes_in_the_config_file_apply_and_edits_take_effect_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("smsc.pass");
    crate::helpers::write_private(&password, "secret\n");
    let config = dir.path().join("rampart.toml");
    let port = closed_port();
    std::fs::write(
        &config,
        format!(
            r#"
[[connectors]]
name = "unreachable"
host = "127.0.0.1"
port = {port}
system_id = "rampart"
password_file = "{}"
options = {{ reconnect_min_ms = 100, reconnect_max_ms = 200 }}

[[routes]]
prefix = "+44"
connector = "unreachable"

[[routes]]
prefix = ""
connector = "sandbox"
"#,
            password.display()
        ),
    )
    .unwrap();
    let app = spawn_app_with(&[
        ("RAMPART_CONFIG", config.to_str().unwrap()),
        ("RAMPART_MESSAGING__NEW_ACCOUNTS_LIVE", "true"),
    ]);
    let ops = app.operator_key();

    assert!(
        connector_names(&app, &ops)
            .await
            .contains(&"unreachable".to_owned())
    );
    // The +44 route's only connector is down: the message waits; other destinations go out.
    let uk = app.send_to("+447400123456", "waits for its route").await;
    let fr = app
        .send_to("+33612345678", "goes through the sandbox")
        .await;
    app.wait_for_status(&fr, "delivered").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // It is claimed again now and then (and shows `sending` for that instant) and put back,
    // without using up its attempts.
    let mut waiting = app.message(&uk).await;
    for _ in 0..100 {
        if waiting["status"] == "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiting = app.message(&uk).await;
    }
    assert_eq!(waiting["status"], "queued", "{waiting}");
    assert_eq!(waiting["error_code"], "connectors_down", "{waiting}");

    // Drop the connector and its route from the file: the waiting message is delivered.
    std::fs::write(
        &config,
        "[[routes]]\nprefix = \"\"\nconnector = \"sandbox\"\n",
    )
    .unwrap();
    let delivered: Value = app.wait_for_status(&uk, "delivered").await;
    assert_eq!(id_of(&delivered), uk);
    let deadline = Instant::now() + Duration::from_secs(10);
    while connector_names(&app, &ops)
        .await
        .contains(&"unreachable".to_owned())
    {
        assert!(
            Instant::now() < deadline,
            "the removed connector is still running"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_declared_connector_whose_password_file_others_may_read_is_left_out_until_fixed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("smsc.pass");
    crate::helpers::write_private(&password, "pw4smsc1\n");
    let config = dir.path().join("rampart.toml");
    let declared = |note: &str| {
        format!(
            "# {note}\n[[connectors]]\nname = \"declared\"\nhost = \"127.0.0.1\"\nport = {}\n\
             system_id = \"rampart\"\npassword_file = \"{}\"\n",
            closed_port(),
            password.display()
        )
    };
    std::fs::write(&config, declared("first")).unwrap();
    let app = spawn_app_with(&[
        ("RAMPART_CONFIG", config.to_str().unwrap()),
        ("RAMPART_MESSAGING__NEW_ACCOUNTS_LIVE", "true"),
    ]);
    let ops = app.operator_key();
    let name = "declared".to_owned();
    assert!(connector_names(&app, &ops).await.contains(&name));

    // Exposed while the server runs: the next reading of the file leaves the connector out.
    let chmod = |mode| {
        std::fs::set_permissions(&password, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(0o644);
    std::fs::write(&config, declared("touched")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while connector_names(&app, &ops).await.contains(&name) {
        assert!(
            Instant::now() < deadline,
            "the exposed connector still runs"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = app.server_log();
    assert!(
        log.lines()
            .any(|l| l.contains("declared connector left out")
                && l.contains(&format!("chmod 600 {}", password.display()))),
        "{log}"
    );
    assert!(!log.contains("pw4smsc1"), "the password leaked");

    chmod(0o600);
    std::fs::write(&config, declared("fixed")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !connector_names(&app, &ops).await.contains(&name) {
        assert!(Instant::now() < deadline, "the fixed connector is not back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
