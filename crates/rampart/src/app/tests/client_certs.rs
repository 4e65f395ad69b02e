//! Keys bound to a client certificate (mutual TLS): refused without it or with another one
//! (audited), inherited by the keys they make, and refused when malformed.

use super::*;
use crate::network::client_cert::CertFingerprint;

fn fingerprint(seed: &[u8]) -> CertFingerprint {
    CertFingerprint::of_der(seed)
}

async fn bound_key(
    bench: &Bench,
    caller: &Caller,
    cert: Option<String>,
) -> Result<super::super::api_keys::IssuedApiKey, AppError> {
    bench
        .app
        .issue_api_key(
            caller,
            NewApiKey {
                name: "bound".into(),
                scopes: vec!["messages:read".into(), "keys:manage".into()],
                expires_at: None,
                allowed_ips: Vec::new(),
                client_cert_sha256: cert,
            },
        )
        .await
}

fn code(outcome: Result<Caller, AppError>) -> String {
    match outcome {
        Err(AppError::Forbidden { code, .. }) => code.to_owned(),
        other => panic!("expected a 403, got {other:?}"),
    }
}

/// The outcomes of the `request.refused` events, once the background writes have landed.
async fn refusals(bench: &Bench, expected: usize) -> Vec<String> {
    for _ in 0..200 {
        let trail = bench.app.audit_trail(Some(&bench.account), 50).unwrap();
        let found: Vec<String> = trail
            .into_iter()
            .filter(|e| e.action == "request.refused")
            .map(|e| e.outcome)
            .collect();
        if found.len() >= expected {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Vec::new()
}

#[tokio::test]
async fn a_bound_key_works_only_with_its_certificate_and_each_refusal_is_audited() {
    let bench = Bench::new().await;
    let cert = fingerprint(b"client a");
    // Upper case with colons, as openssl prints it: stored lowercase without colons.
    let openssl_style = cert
        .to_hex()
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let issued = bound_key(&bench, &bench.operator(), Some(openssl_style))
        .await
        .unwrap();
    assert_eq!(issued.key.client_cert_sha256, Some(cert));
    let token = issued.token.reveal();

    let with = |c: Option<CertFingerprint>| {
        bench
            .app
            .authenticate_with_certificate(Some(token), None, c)
    };
    assert!(with(Some(cert)).is_ok());
    assert_eq!(code(with(None)), "client_certificate_required");
    assert_eq!(
        code(bench.app.authenticate(Some(token), None)),
        "client_certificate_required"
    );
    assert_eq!(
        code(with(Some(fingerprint(b"client b")))),
        "client_certificate_mismatch"
    );
    let mut trail = refusals(&bench, 3).await;
    trail.sort();
    assert_eq!(
        trail,
        [
            "denied:client_certificate_mismatch",
            "denied:client_certificate_required",
            "denied:client_certificate_required"
        ]
    );

    // A key without a binding does not care whether a certificate came along.
    let free = bench.issue_key(&["messages:read"], None).await;
    for presented in [None, Some(cert)] {
        assert!(
            bench
                .app
                .authenticate_with_certificate(Some(free.reveal()), None, presented)
                .is_ok()
        );
    }
}

#[tokio::test]
async fn a_key_made_by_a_bound_key_is_bound_to_the_same_certificate() {
    let bench = Bench::new().await;
    let cert = fingerprint(b"client a");
    let parent = bound_key(&bench, &bench.operator(), Some(cert.to_hex()))
        .await
        .unwrap();
    let caller = bench
        .app
        .authenticate_with_certificate(Some(parent.token.reveal()), None, Some(cert))
        .unwrap();
    assert_eq!(caller.client_cert_sha256, Some(cert));

    let child = bound_key(&bench, &caller, None).await.unwrap();
    assert_eq!(child.key.client_cert_sha256, Some(cert), "inherited");
    let same = bound_key(&bench, &caller, Some(cert.to_hex().to_uppercase()))
        .await
        .unwrap();
    assert_eq!(same.key.client_cert_sha256, Some(cert));
    let other = bound_key(&bench, &caller, Some(fingerprint(b"client b").to_hex())).await;
    assert!(
        matches!(
            other,
            Err(AppError::Forbidden {
                code: "client_certificate_escalation",
                ..
            })
        ),
        "{other:?}"
    );
    let trail = bench.app.audit_trail(Some(&bench.account), 50).unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.outcome == "denied:client_certificate_escalation"),
        "{trail:?}"
    );

    // The child is bound through the store and the key cache too.
    assert_eq!(
        code(
            bench
                .app
                .authenticate_with_certificate(Some(child.token.reveal()), None, None)
        ),
        "client_certificate_required"
    );
    let listed = bench.app.list_api_keys(&bench.operator()).unwrap();
    let child_listed = listed.iter().find(|k| k.id == child.key.id).unwrap();
    assert_eq!(child_listed.client_cert_sha256, Some(cert));
}

#[tokio::test]
async fn a_malformed_fingerprint_is_refused_as_invalid() {
    let bench = Bench::new().await;
    for bad in [
        "",
        "abc",
        &"g".repeat(64),
        &format!("{}00", "ab".repeat(32)),
    ] {
        let refused = bound_key(&bench, &bench.operator(), Some(bad.to_owned())).await;
        assert!(
            matches!(
                refused,
                Err(AppError::Invalid {
                    code: "invalid_client_cert_sha256",
                    ..
                })
            ),
            "{bad:?}: {refused:?}"
        );
    }
}
