use super::*;

fn outbound(body: &str) -> Outbound {
    Outbound {
        message_id: "msg_1".into(),
        to: "+447700900123".into(),
        from: "Rampart".into(),
        body: body.into(),
        encoding: encoding::analyze(body).encoding,
        segments: encoding::analyze(body).segments as u32,
        valid_until: None,
        attempt: 2,
    }
}

fn map_with(reference: u64, parts: usize) -> InFlightMap {
    let map: InFlightMap = Arc::default();
    map.lock().unwrap().insert(
        reference,
        InFlight {
            message_id: "msg_1".into(),
            attempt: 2,
            provider_ids: vec![None; parts],
        },
    );
    map
}

#[test]
fn submissions_take_their_bytes_and_parts_from_the_shared_encoder() {
    let submission = submission_for(&outbound("€uro [x]"), 7, 0).unwrap();
    assert_eq!(submission.reference, 7);
    assert_eq!(submission.data_coding, 0x00);
    assert_eq!(submission.parts, encoding::encode("€uro [x]").parts);
    assert_eq!(submission.destination, Address::new(1, 1, "447700900123"));
    assert_eq!(submission.source, Address::new(5, 0, "Rampart"));
    assert!(submission.registered_delivery);

    let ucs2 = submission_for(&outbound("Привет"), 1, 0).unwrap();
    assert_eq!(ucs2.data_coding, 0x08);
    let long = submission_for(&outbound(&"a".repeat(200)), 1, 0).unwrap();
    assert_eq!(long.parts.len(), 2);
}

#[test]
fn validity_is_the_time_left_until_the_message_expires() {
    let mut message = outbound("hi");
    message.valid_until = Some(61_000);
    let submission = submission_for(&message, 1, 1_000).unwrap();
    assert_eq!(submission.validity, Some(Duration::from_secs(60)));
}

#[test]
fn a_message_is_accepted_once_every_part_has_a_carrier_id() {
    let name: Arc<str> = Arc::from("c1");
    let map = map_with(9, 2);
    let second = SmppEvent::Submitted {
        reference: 9,
        part: 1,
        message_id: "b".into(),
    };
    assert!(translate_one(&name, &map, second).is_none());
    let first = SmppEvent::Submitted {
        reference: 9,
        part: 0,
        message_id: "a".into(),
    };
    match translate_one(&name, &map, first) {
        Some(ConnectorEvent::Accepted { provider_ids, .. }) => {
            assert_eq!(provider_ids, vec!["a".to_owned(), "b".to_owned()]);
        }
        other => panic!("{other:?}"),
    }
    assert!(map.lock().unwrap().is_empty());
}

#[test]
fn a_refused_part_refuses_the_message_with_the_smpp_status() {
    let name: Arc<str> = Arc::from("c1");
    let map = map_with(3, 1);
    let rejected = SmppEvent::Rejected {
        reference: 3,
        part: 0,
        status: 0x0B,
        permanent: true,
    };
    match translate_one(&name, &map, rejected) {
        Some(ConnectorEvent::Refused {
            code,
            permanent,
            attempt,
            ..
        }) => {
            assert_eq!(code, "smpp_0x0b");
            assert!(permanent);
            assert_eq!(attempt, 2);
        }
        other => panic!("{other:?}"),
    }
    let map = map_with(4, 1);
    assert!(matches!(
        translate_one(&name, &map, SmppEvent::Requeue { reference: 4 }),
        Some(ConnectorEvent::Requeue { .. })
    ));
}

#[test]
fn receipts_map_to_final_and_pending_states() {
    use rampart_smpp::ReceiptState as S;
    assert_eq!(
        receipt_state(S::Delivered, Some("000")),
        (ReceiptState::Delivered, None)
    );
    assert_eq!(
        receipt_state(S::Undelivered, Some("001")),
        (ReceiptState::Undelivered, Some("smpp_err_001".into()))
    );
    assert_eq!(
        receipt_state(S::Rejected, None),
        (ReceiptState::Undelivered, Some("smpp_rejected".into()))
    );
    assert_eq!(receipt_state(S::Expired, None).0, ReceiptState::Expired);
    assert_eq!(
        receipt_state(S::Enroute, None),
        (ReceiptState::Pending, None)
    );
    assert_eq!(
        receipt_state(S::Accepted, None),
        (ReceiptState::Pending, None)
    );
    assert_eq!(
        receipt_state(S::Unknown, Some("<x>\n9")).1,
        Some("smpp_err_x9".into())
    );
}

#[test]
fn inbound_text_is_decoded_by_its_data_coding() {
    assert_eq!(decode_payload(0x00, &[0x48, 0x69, 0x1B, 0x65]), "Hi€");
    assert_eq!(decode_payload(0x08, &[0x04, 0x1F, 0x00, 0x21]), "П!");
    assert_eq!(decode_payload(0x03, &[0x63, 0x61, 0x66, 0xE9]), "café");
    assert_eq!(
        address_text(&Address::new(1, 1, "447700900001")),
        "+447700900001"
    );
    assert_eq!(address_text(&Address::new(0, 1, "12345")), "12345");
    assert_eq!(address_text(&Address::new(5, 0, "Bank")), "Bank");
}
