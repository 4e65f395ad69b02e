//! The routing directory is edited with the CLI while the server runs, and takes effect
//! without a restart; unchanged connectors keep their links.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{DataDir, Rampart, Smsc};
use crate::require_node;

#[tokio::test]
async fn connectors_and_routes_added_with_the_cli_take_effect_without_a_restart() {
    require_node!();
    let app = Rampart::start(DataDir::new());
    // Nothing configured: a live account's message has nowhere to go, and is never
    // "delivered" by the simulator.
    let (status, list) = app.get("/v1/connectors", &app.ops).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["routes"], json!([]));
    let ids = app.send(json!("+447911123456"), "no route yet").await;
    let failed = app.wait_for_status(&ids[0], &["failed"]).await;
    assert_eq!(failed["error_code"], "no_route", "{failed}");

    let smsc = Smsc::start(json!({"port": 0})).await;
    app.dir
        .add_connector("carrier", smsc.port, &["--window", "8", "--max-rate", "50"]);
    app.dir
        .cli(&["route", "add", "--prefix", "+44", "--connector", "carrier"]);
    app.dir
        .cli(&["route", "add", "--prefix", "", "--connector", "sandbox"]);
    let carrier = app.wait_until_bound("carrier").await;
    assert_eq!(carrier["kind"], "smpp");
    assert_eq!(carrier["window"], 8);
    assert_eq!(carrier["tls"], false, "{carrier}");
    assert!(
        app.log().contains("SMPP connector without TLS"),
        "a plaintext SMPP connector is warned about at start"
    );
    let sandbox = app.wait_for_connector("sandbox", |c| c.is_object()).await;
    assert!(sandbox.get("tls").is_none(), "{sandbox}");
    let listed = app.dir.cli(&["connector", "list"]);
    assert!(listed.contains("carrier\tsmpp\t127.0.0.1:"), "{listed}");
    assert!(
        !listed.contains("secret"),
        "the password must never be printed: {listed}"
    );

    let uk = app.send(json!("+447911123456"), "via SMPP").await;
    let fr = app.send(json!("+33612345678"), "still via sandbox").await;
    app.wait_for_status(&uk[0], &["delivered"]).await;
    app.wait_for_status(&fr[0], &["delivered"]).await;
    let accepted = smsc.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0]["destination_addr"], "447911123456");

    // A change elsewhere in the directory reloads the router but keeps the link.
    let own = app.dir.cli(&["account", "list"]);
    let own = own.split('\t').next().unwrap().to_owned();
    app.dir.cli(&["number", "add", "12345", "--account", &own]);
    app.dir.cli(&[
        "route",
        "add",
        "--prefix",
        "+4479",
        "--connector",
        "carrier",
        "--priority",
        "2",
    ]);
    let (_, list) = app.get("/v1/connectors", &app.ops).await;
    let deadline = std::time::Instant::now() + crate::harness::WAIT;
    let mut list = list;
    while list["routes"].as_array().unwrap().len() != 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "route not loaded: {list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        list = app.get("/v1/connectors", &app.ops).await.1;
    }
    assert_eq!(
        list["routes"][0]["prefix"], "+4479",
        "longest prefix first: {list}"
    );
    assert_eq!(
        smsc.recorded("bind").len(),
        1,
        "the unchanged connector rebound"
    );

    // Removing the connector unbinds it and takes its routes along; +44 falls back to "".
    let removed = app.dir.cli(&["connector", "remove", "carrier"]);
    assert!(removed.contains("2 route(s)"), "{removed}");
    smsc.wait_for(1, |r| r["event"] == "unbind").await;
    app.wait_for_connector("carrier", serde_json::Value::is_null)
        .await;
    let again = app.send(json!("+447911123456"), "sandbox again").await;
    app.wait_for_status(&again[0], &["delivered"]).await;
    assert_eq!(smsc.accepted().len(), 1);
}

#[test]
fn the_cli_refuses_what_the_server_could_not_run() {
    let dir = DataDir::new();
    let password = dir.root().join("long.password");
    crate::harness::write_private(&password, "much-too-long-for-smpp");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("--data-dir")
        .arg(&dir.path)
        .args([
            "connector",
            "add",
            "smpp",
            "--name",
            "c",
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", "2775", "--system-id", "x", "--password-file"])
        .arg(&password)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("password"), "{error}");
    assert!(
        !error.contains("much-too-long"),
        "the password leaked: {error}"
    );

    for args in [
        &["route", "add", "--prefix", "+44", "--connector", "nowhere"][..],
        &["route", "add", "--prefix", "44", "--connector", "sandbox"][..],
        &["number", "add", "12345", "--account", "acc_missing"][..],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
            .arg("--data-dir")
            .arg(&dir.path)
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} was accepted");
    }
}
