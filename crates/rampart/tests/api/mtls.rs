//! Mutual TLS against the real server: with `tls_client_ca_file` set, clients may present a
//! certificate from that CA; a key bound to one certificate (`client_cert_sha256`) works only
//! over a connection that presented it, and every refusal is a 403 problem with an audit event.
//! A certificate from another CA ends the handshake. Certificates are made here with rcgen.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{POLL_INTERVAL, Reply, TestApp, serve_refused, spawn_app, spawn_app_with};

/// How long the server may take to notice a new CA bundle (it looks every second).
const RELOAD_DEADLINE: Duration = Duration::from_secs(15);

/// A CA that issues client certificates.
struct ClientCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl ClientCa {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// A client certificate for `name`, signed by this CA.
    fn issue(&self, name: &str) -> ClientCert {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            sha256: hex(&Sha256::digest(cert.der())),
        }
    }
}

struct ClientCert {
    cert_pem: String,
    key_pem: String,
    /// Lowercase hex, as the server shows it.
    sha256: String,
}

impl ClientCert {
    fn identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.key_pem, self.cert_pem).as_bytes())
            .expect("a client identity")
    }

    /// `AB:CD:…`, as `openssl x509 -fingerprint -sha256` prints it.
    fn openssl_fingerprint(&self) -> String {
        self.sha256
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|pair| String::from_utf8_lossy(pair).into_owned())
            .collect::<Vec<_>>()
            .join(":")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A server asking for client certificates from the CA in `ca_file`.
fn spawn_mtls_app(ca_file: &Path) -> TestApp {
    spawn_app_with(&[(
        "RAMPART_TLS_CLIENT_CA_FILE",
        ca_file.to_str().expect("a UTF-8 path"),
    )])
}

fn write_ca(dir: &Path, ca: &ClientCa) -> PathBuf {
    let path = dir.join("client-ca.pem");
    let temp = dir.join("client-ca.pem.new");
    fs::write(&temp, &ca.pem).unwrap();
    fs::rename(&temp, &path).unwrap();
    path
}

async fn create_key(app: &TestApp, key: &str, body: Value) -> Reply {
    app.post_json("/v1/api-keys", key, &body).await
}

/// `GET /v1/messages` with `key` through `client`.
async fn list_with(app: &TestApp, client: &reqwest::Client, key: &str) -> Reply {
    let response = client
        .get(app.url("/v1/messages"))
        .bearer_auth(key)
        .send()
        .await
        .expect("an answer");
    let status = response.status();
    let headers = response.headers().clone();
    Reply {
        status,
        headers,
        text: response.text().await.unwrap_or_default(),
    }
}

/// The outcomes of the `request.refused` audit events naming `key_id`, once `expected` have
/// landed (they are written in the background; bounded wait).
async fn refusals_of(app: &TestApp, key_id: &str, expected: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let db = rusqlite::Connection::open_with_flags(
            app.data_dir.join("rampart.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut query = db
            .prepare(
                "SELECT outcome FROM audit_events WHERE action = 'request.refused' AND target = ?1 \
                 ORDER BY seq",
            )
            .unwrap();
        let found: Vec<String> = query
            .query_map([key_id], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if found.len() >= expected || Instant::now() >= deadline {
            return found;
        }
        drop(query);
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

#[tokio::test]
async fn a_key_bound_to_a_client_certificate_works_only_with_that_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClientCa::new("Bank clients");
    let app = spawn_mtls_app(&write_ca(dir.path(), &ca));
    let (a, b) = (ca.issue("billing"), ca.issue("reporting"));

    let created = create_key(
        &app,
        &app.key,
        json!({"name": "billing", "scopes": ["messages:read", "keys:manage"],
               "client_cert_sha256": a.openssl_fingerprint()}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let created = created.json();
    assert_eq!(created["client_cert_sha256"], json!(a.sha256), "normalised");
    let (id, key) = (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    );
    let shown = app.get(&format!("/v1/api-keys/{id}"), &app.key).await;
    assert_eq!(shown.json()["client_cert_sha256"], json!(a.sha256));
    let listed = app.get("/v1/api-keys", &app.key).await.json();
    let entry = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == json!(id))
        .cloned()
        .unwrap();
    assert_eq!(entry["client_cert_sha256"], json!(a.sha256));

    let with_a = app.client_with_identity(a.identity());
    assert_eq!(list_with(&app, &with_a, &key).await.status, StatusCode::OK);
    list_with(&app, &app.client, &key)
        .await
        .assert_problem(403, "client_certificate_required");
    let with_b = app.client_with_identity(b.identity());
    list_with(&app, &with_b, &key)
        .await
        .assert_problem(403, "client_certificate_mismatch");
    // The key keeps working with its certificate after the refusals.
    assert_eq!(list_with(&app, &with_a, &key).await.status, StatusCode::OK);

    assert_eq!(
        refusals_of(&app, &id, 2).await,
        [
            "denied:client_certificate_required",
            "denied:client_certificate_mismatch"
        ]
    );

    // A key without a binding works with and without a certificate.
    for client in [&app.client, &with_a, &with_b] {
        assert_eq!(
            list_with(&app, client, &app.key).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_refused_at_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClientCa::new("Bank clients");
    let app = spawn_mtls_app(&write_ca(dir.path(), &ca));
    let stranger = ClientCa::new("Someone else").issue("billing");

    let with_stranger = app.client_with_identity(stranger.identity());
    let refused = with_stranger
        .get(app.url("/v1/messages"))
        .bearer_auth(&app.key)
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a certificate from another CA must end the handshake: {refused:?}"
    );
    // Refused even for a key that needs no certificate: the client claimed an identity that
    // cannot be verified, and that is not taken for no identity. Clients without one still
    // connect.
    assert_eq!(
        list_with(&app, &app.client, &app.key).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_key_made_by_a_bound_key_inherits_its_certificate_and_cannot_change_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClientCa::new("Bank clients");
    let app = spawn_mtls_app(&write_ca(dir.path(), &ca));
    let (a, b) = (ca.issue("billing"), ca.issue("reporting"));
    let parent = create_key(
        &app,
        &app.key,
        json!({"name": "parent", "scopes": ["messages:read", "keys:manage"],
               "client_cert_sha256": a.sha256}),
    )
    .await
    .json();
    let parent_key = parent["key"].as_str().unwrap().to_owned();
    let with_a = app.client_with_identity(a.identity());

    let made = with_a
        .post(app.url("/v1/api-keys"))
        .bearer_auth(&parent_key)
        .json(&json!({"name": "child", "scopes": ["messages:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let child: Value = made.json().await.unwrap();
    assert_eq!(child["client_cert_sha256"], json!(a.sha256), "inherited");
    let child_key = child["key"].as_str().unwrap();
    assert_eq!(
        list_with(&app, &with_a, child_key).await.status,
        StatusCode::OK
    );
    list_with(&app, &app.client, child_key)
        .await
        .assert_problem(403, "client_certificate_required");

    let other = with_a
        .post(app.url("/v1/api-keys"))
        .bearer_auth(&parent_key)
        .json(&json!({"name": "child", "scopes": ["messages:read"],
                      "client_cert_sha256": b.sha256}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(
        other
            .text()
            .await
            .unwrap()
            .contains("\"client_certificate_escalation\"")
    );
}

#[tokio::test]
async fn a_malformed_client_cert_fingerprint_is_a_422() {
    let app = spawn_app();
    for bad in ["abc", "zz".repeat(32).as_str(), "ab:cd"] {
        create_key(
            &app,
            &app.key,
            json!({"name": "bad", "scopes": ["messages:read"], "client_cert_sha256": bad}),
        )
        .await
        .assert_problem(422, "invalid_client_cert_sha256");
    }
}

#[tokio::test]
async fn the_cli_binds_a_key_to_the_certificate_in_a_pem_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClientCa::new("Bank clients");
    let app = spawn_mtls_app(&write_ca(dir.path(), &ca));
    let a = ca.issue("billing");
    let cert_file = dir.path().join("billing.pem");
    fs::write(&cert_file, &a.cert_pem).unwrap();

    let key = app.cli(&[
        "apikey",
        "create",
        "--scopes",
        "messages:read",
        "--client-cert",
        cert_file.to_str().unwrap(),
    ]);
    let by_hex = app.cli(&[
        "apikey",
        "create",
        "--scopes",
        "messages:read",
        "--client-cert-sha256",
        &a.openssl_fingerprint(),
    ]);
    let listing = app.cli(&["apikey", "list"]);
    assert_eq!(
        listing
            .lines()
            .filter(|l| l.ends_with(&format!("client certificate: {}", a.sha256)))
            .count(),
        2,
        "{listing}"
    );
    let with_a = app.client_with_identity(a.identity());
    for key in [&key, &by_hex] {
        assert_eq!(list_with(&app, &with_a, key).await.status, StatusCode::OK);
        list_with(&app, &app.client, key)
            .await
            .assert_problem(403, "client_certificate_required");
    }
    let (ok, _, stderr) = app.cli_output(&[
        "apikey",
        "create",
        "--scopes",
        "messages:read",
        "--client-cert-sha256",
        "nope",
    ]);
    assert!(!ok);
    assert!(stderr.contains("64 hex digits"), "{stderr}");
}

#[tokio::test]
async fn a_replaced_client_ca_bundle_is_used_for_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (ClientCa::new("Old clients"), ClientCa::new("New clients"));
    let app = spawn_mtls_app(&write_ca(dir.path(), &old_ca));
    let (old, new) = (old_ca.issue("billing"), new_ca.issue("billing"));
    let with_old = app.client_with_identity(old.identity());
    assert_eq!(
        list_with(&app, &with_old, &app.key).await.status,
        StatusCode::OK
    );

    write_ca(dir.path(), &new_ca);
    let deadline = Instant::now() + RELOAD_DEADLINE;
    loop {
        // A fresh client each time: a new connection, a new handshake.
        let with_new = app.client_with_identity(new.identity());
        let answer = with_new
            .get(app.url("/v1/messages"))
            .bearer_auth(&app.key)
            .send()
            .await;
        if answer.is_ok_and(|a| a.status() == StatusCode::OK) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new CA is not used; log:\n{}",
            app.server_log()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    let fresh_old = app.client_with_identity(old.identity());
    assert!(
        fresh_old
            .get(app.url("/v1/messages"))
            .bearer_auth(&app.key)
            .send()
            .await
            .is_err(),
        "a new connection with the old CA's certificate is refused"
    );
}

#[test]
fn the_server_refuses_to_start_with_an_unusable_client_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    fs::write(&junk, "not a certificate").unwrap();
    for path in [junk, dir.path().join("missing.pem")] {
        let stderr = serve_refused(&[("RAMPART_TLS_CLIENT_CA_FILE", path.to_str().unwrap())]);
        assert!(stderr.contains("client CA bundle"), "{stderr}");
    }
}
