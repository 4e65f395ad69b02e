//! How bodies are costed, seen through the API: the alphabet chosen (`gsm7` or `ucs2`) and the
//! number of SMS segments, at the boundaries where they change, and the segment limit.

use serde_json::json;

use crate::helpers::{NORMAL_NUMBER, TestApp, id_of, spawn_app};

/// Sends each body and checks the encoding and segments in the 202 and in the stored message
/// (and that the body comes back unchanged). Collects every mismatch before failing.
async fn check_costs(app: &TestApp, cases: &[(&str, String, &str, u64)]) {
    let mut wrong = Vec::new();
    for (name, body, encoding, segments) in cases {
        let accepted = app
            .send(&json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": body}))
            .await;
        let entry = &accepted[0];
        let got = (entry["encoding"].clone(), entry["segments"].clone());
        if got != (json!(encoding), json!(segments)) {
            wrong.push(format!(
                "{name}: expected {encoding}/{segments}, the send answered {}/{}",
                got.0, got.1
            ));
        }
        let stored = app.message(&id_of(entry)).await;
        if (stored["encoding"].clone(), stored["segments"].clone())
            != (json!(encoding), json!(segments))
        {
            wrong.push(format!(
                "{name}: expected {encoding}/{segments}, GET shows {}/{}",
                stored["encoding"], stored["segments"]
            ));
        }
        if stored["body"] != json!(body) {
            wrong.push(format!("{name}: the body came back changed"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn gsm7_extension_characters_stay_gsm7_and_cost_two_septets() {
    let app = spawn_app();
    check_costs(
        &app,
        &[
            ("euro sign", "€".into(), "gsm7", 1),
            ("opening bracket", "[".into(), "gsm7", 1),
            ("all extension chars", "^{}\\[~]|€".into(), "gsm7", 1),
            ("80 euro signs are 160 septets", "€".repeat(80), "gsm7", 1),
            ("81 euro signs are 162 septets", "€".repeat(81), "gsm7", 2),
            (
                "159 plain and one bracket",
                format!("{}[", "a".repeat(159)),
                "gsm7",
                2,
            ),
            (
                "basic-table accents",
                "èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉÄÖÑÜ§¿äöñüà".into(),
                "gsm7",
                1,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn one_character_outside_gsm7_makes_the_whole_body_ucs2() {
    let app = spawn_app();
    check_costs(
        &app,
        &[
            ("emoji", "😀".into(), "ucs2", 1),
            (
                "text with an emoji",
                "Your code is 1234 😀".into(),
                "ucs2",
                1,
            ),
            ("cyrillic", "Привет".into(), "ucs2", 1),
            ("lowercase c cedilla", "ç".into(), "ucs2", 1),
            (
                "160 plain and one emoji",
                format!("{}😀", "a".repeat(160)),
                "ucs2",
                3,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn gsm7_bodies_take_160_septets_in_one_segment_then_153_per_segment() {
    let app = spawn_app();
    check_costs(
        &app,
        &[
            ("160 plain", "a".repeat(160), "gsm7", 1),
            ("161 plain", "a".repeat(161), "gsm7", 2),
            ("306 plain (153 * 2)", "a".repeat(306), "gsm7", 2),
            ("307 plain", "a".repeat(307), "gsm7", 3),
            ("1530 plain (the limit)", "a".repeat(1530), "gsm7", 10),
        ],
    )
    .await;
}

#[tokio::test]
async fn ucs2_bodies_take_70_units_in_one_segment_then_67_per_segment() {
    let app = spawn_app();
    check_costs(
        &app,
        &[
            ("70 cyrillic", "Ж".repeat(70), "ucs2", 1),
            ("71 cyrillic", "Ж".repeat(71), "ucs2", 2),
            ("134 cyrillic (67 * 2)", "Ж".repeat(134), "ucs2", 2),
            ("135 cyrillic", "Ж".repeat(135), "ucs2", 3),
            ("35 emoji are 70 units", "😀".repeat(35), "ucs2", 1),
            ("36 emoji are 72 units", "😀".repeat(36), "ucs2", 2),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_body_over_the_segment_limit_is_refused_with_invalid_body() {
    let app = spawn_app();
    for (name, body) in [
        ("1531 plain is 11 gsm7 segments", "a".repeat(1531)),
        ("671 cyrillic is 11 ucs2 segments", "Ж".repeat(671)),
        ("766 euro signs are 1532 septets", "€".repeat(766)),
    ] {
        let reply = app
            .post_json(
                "/v1/messages",
                &app.key,
                &json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": body}),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 422, "{name}: {}", reply.text);
        assert_eq!(reply.problem_code(), "invalid_body", "{name}");
        assert_eq!(reply.json()["field"], "body", "{name}");
    }
    assert!(app.list_all("", 50).await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn the_segment_limit_follows_the_configuration() {
    let app = crate::helpers::spawn_app_with(&[("RAMPART_MESSAGING__MAX_SEGMENTS", "2")]);
    check_costs(&app, &[("306 plain", "a".repeat(306), "gsm7", 2)]).await;
    let reply = app
        .post_json(
            "/v1/messages",
            &app.key,
            &json!({"to": NORMAL_NUMBER, "from": "Rampart", "body": "a".repeat(307)}),
        )
        .await;
    reply.assert_problem(422, "invalid_body");
}
