//! Errors from real answers and scripted faults, classified for the relay; the create
//! whose answer was lost is found again instead of duplicated.

use crate::{PASSWORD, SUBSCRIBER, Setup, client_of, new_consultation, setup, setup_with_timeout};
use cons_onec::OnecError;
use cons_sim::Fault;
use std::time::Duration;
use uuid::Uuid;

const DOCUMENTS: &str = "/Document_ТелефонныйЗвонок";

#[tokio::test]
async fn the_lost_answer_of_a_create_is_found_by_its_marker() {
    let Setup { sim, client } = setup_with_timeout(Duration::from_millis(700));
    let new = new_consultation(SUBSCRIBER, "2026-11-27T06:00:00Z");
    sim.faults().next_matching(
        &format!("POST /int/rbd_sl_copy/odata/standard.odata{DOCUMENTS}"),
        1,
        Fault::ActThenStall,
    );
    let error = client.create_consultation(&new).await.unwrap_err();
    assert_eq!(error, OnecError::Timeout);
    assert!(error.is_ambiguous() && error.is_retryable());
    // 1C committed although we never heard back
    assert_eq!(sim.consultation_count(), 1);
    // what the relay does before sending the create again: look it up
    let found = client
        .find_consultation_by_ticket(new.ticket_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.ticket_id(), Some(new.ticket_id));
    assert_eq!(found.number, "ЦЛ00-000001");
    assert_eq!(sim.consultations_with_marker(&found.marker), 1);
    assert_eq!(sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn the_daily_limit_is_a_business_refusal() {
    let Setup { sim, client } = setup();
    let mut created = Vec::new();
    for hour in ["05", "06", "07"] {
        created.push(
            client
                .create_consultation(&new_consultation(
                    SUBSCRIBER,
                    &format!("2026-11-27T{hour}:00:00Z"),
                ))
                .await
                .unwrap(),
        );
    }
    let refused = client
        .create_consultation(&new_consultation(SUBSCRIBER, "2026-11-27T08:00:00Z"))
        .await
        .unwrap_err();
    assert!(refused.is_business_refusal(), "{refused:?}");
    assert!(!refused.is_retryable() && !refused.is_ambiguous());
    assert_eq!(
        (refused.http_status(), refused.onec_code()),
        (Some(500), Some("-1"))
    );
    assert_eq!(refused.kind(), "business_refusal");
    assert_eq!(sim.consultation_count(), 3);
    // the day is counted in the base's zone: 2026-11-27T20:00Z is already the 28th there
    client
        .create_consultation(&new_consultation(SUBSCRIBER, "2026-11-27T20:00:00Z"))
        .await
        .unwrap();
    // cancelling one frees a slot
    let cancel = cons_onec::ConsultationPatch {
        deletion_mark: Some(true),
        ..Default::default()
    };
    client
        .patch_consultation(created[0].ref_key, &cancel)
        .await
        .unwrap();
    client
        .create_consultation(&new_consultation(SUBSCRIBER, "2026-11-27T08:00:00Z"))
        .await
        .unwrap();
    assert_eq!(sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn credentials_statuses_and_stalls_classify() {
    let Setup { sim, client } = setup_with_timeout(Duration::from_millis(700));
    let wrong = client_of(&sim, "пароль", Duration::from_secs(5));
    let unauthorized = wrong.get_consultation(Uuid::now_v7()).await.unwrap_err();
    assert_eq!(unauthorized, OnecError::Unauthorized);
    assert!(!unauthorized.is_retryable());
    assert_eq!(
        client_of(&sim, PASSWORD, Duration::from_secs(5))
            .get_consultation(Uuid::now_v7())
            .await,
        Ok(None)
    );

    sim.faults().next(
        1,
        Fault::Status {
            status: 503,
            body: "Service Unavailable".to_owned(),
        },
    );
    let unavailable = client.get_consultation(Uuid::now_v7()).await.unwrap_err();
    assert_eq!(
        unavailable,
        OnecError::Server {
            status: 503,
            code: None,
            excerpt: "Service Unavailable".to_owned()
        }
    );
    assert!(unavailable.is_retryable() && !unavailable.is_ambiguous());

    sim.faults().next(
        1,
        Fault::Status {
            status: 504,
            body: "<html><body>Gateway Timeout</body></html>".to_owned(),
        },
    );
    let gateway = client
        .create_consultation(&new_consultation(SUBSCRIBER, "2026-11-27T06:00:00Z"))
        .await
        .unwrap_err();
    assert!(
        gateway.is_retryable() && gateway.is_ambiguous(),
        "{gateway:?}"
    );

    let internal = std::fs::read_to_string(format!(
        "{}/../../../shared/fixtures/onec/error.500.internal.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    sim.faults().next(
        1,
        Fault::Status {
            status: 500,
            body: internal,
        },
    );
    let failed = client.get_consultation(Uuid::now_v7()).await.unwrap_err();
    assert!(
        !failed.is_business_refusal() && failed.is_retryable() && !failed.is_ambiguous(),
        "{failed:?}"
    );

    sim.faults().next(
        1,
        Fault::RateLimited {
            retry_after_secs: 3,
        },
    );
    let limited = client.find_consultation_by_marker("x").await.unwrap_err();
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
    assert!(limited.is_retryable());

    sim.faults().next(1, Fault::Stall);
    assert_eq!(
        client.find_consultation_by_marker("x").await,
        Err(OnecError::Timeout)
    );

    // a 2xx that is not JSON (what 1C sends when JSON was not negotiated)
    sim.faults().next(
        1,
        Fault::Status {
            status: 200,
            body: "<?xml version=\"1.0\"?><feed/>".to_owned(),
        },
    );
    let decode = client.find_consultation_by_marker("x").await.unwrap_err();
    assert!(matches!(decode, OnecError::Decode(_)), "{decode:?}");

    // IIS's own 404 for a URL over its limit is not "no such object"
    sim.set_url_limits(20, 4096);
    let too_long = client.find_consultation_by_marker("x").await.unwrap_err();
    assert!(
        matches!(
            too_long,
            OnecError::Rejected {
                status: 404,
                code: None,
                ..
            }
        ),
        "{too_long:?}"
    );
    assert!(!too_long.is_retryable());
    assert_eq!(sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn transport_failures_tell_sent_from_not_sent() {
    // nothing listens: nothing was sent
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = cons_onec::OnecClient::new(cons_onec::OnecConfig::new(
        format!("http://127.0.0.1:{port}/p/odata/standard.odata/"),
        "u",
        "p",
    ))
    .unwrap();
    let refused = closed.get_consultation(Uuid::now_v7()).await.unwrap_err();
    assert!(matches!(refused, OnecError::Connect(_)), "{refused:?}");
    assert!(refused.is_retryable() && !refused.is_ambiguous());

    // a server that reads the request and hangs up: it may have acted
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt as _;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = socket.read(&mut buffer).await;
            drop(socket);
        }
    });
    let hanging_up = cons_onec::OnecClient::new(cons_onec::OnecConfig::new(
        format!("http://127.0.0.1:{port}/p/odata/standard.odata/"),
        "u",
        "p",
    ))
    .unwrap();
    let lost = hanging_up
        .create_consultation(&new_consultation(SUBSCRIBER, "2026-11-27T06:00:00Z"))
        .await
        .unwrap_err();
    assert!(matches!(lost, OnecError::Disconnected(_)), "{lost:?}");
    assert!(lost.is_retryable() && lost.is_ambiguous());
    // no URL (with personal data) in the message
    assert!(!lost.to_string().contains("127.0.0.1"), "{lost}");
}
