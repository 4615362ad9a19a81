//! Every method against the simulator, and the requests as they arrive there.

use crate::{FOLDER, MANAGER, SUBSCRIBER, Setup, local, new_consultation, setup, utc};
use cons_onec::{
    ConsultationKind, ConsultationPatch, ContactInfo, ContactKind, ItsRow, LegalForm, MARKER_FIELD,
    NewCounterparty, OnecError, consultation_marker,
};
use serde_json::json;
use uuid::Uuid;

fn new_counterparty(code: &str, inn: &str) -> NewCounterparty {
    NewCounterparty {
        folder: FOLDER,
        description: format!("Clobus OOO ZARAFSHON SAVDO {code} ({inn})"),
        inn: inn.to_owned(),
        code_abonent: code.to_owned(),
        legal_form: LegalForm::from_inn(inn),
        contacts: vec![
            ContactInfo {
                kind: ContactKind::Phone,
                kind_key: Uuid::parse_str("c07763c7-2ae8-4708-a608-7691be9d782b").unwrap(),
                presentation: "+998901234567".to_owned(),
            },
            ContactInfo {
                kind: ContactKind::Email,
                kind_key: Uuid::parse_str("f0dddb0f-1cac-49ab-ad37-f9480b0ef654").unwrap(),
                presentation: "buh@zarafshon.uz".to_owned(),
            },
        ],
    }
}

#[tokio::test]
async fn counterparties_are_found_only_in_our_folder() {
    let Setup { sim, client } = setup();
    assert_eq!(
        client
            .find_counterparty(FOLDER, "10240", "303045154")
            .await
            .unwrap(),
        None
    );
    let created = client
        .create_counterparty(&new_counterparty("10240", "303045154"))
        .await
        .unwrap();
    assert_eq!(created.code, "000000001");
    assert_eq!(created.code_abonent, Some(10240));
    assert_eq!(created.folder, Some(FOLDER));
    assert_eq!(
        created.data_version.as_ref().and_then(|v| v.counter()),
        Some(0)
    );
    let stored = sim.counterparty(created.ref_key).unwrap();
    assert_eq!(stored["ЮридическоеФизическоеЛицо"], "ЮридическоеЛицо");
    assert_eq!(
        stored["КонтактнаяИнформация"][1]["Представление"],
        "buh@zarafshon.uz"
    );

    let found = client
        .find_counterparty(FOLDER, "10240", "303045154")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, created);
    // another folder, another INN, a deletion mark: not ours
    let elsewhere = Uuid::from_u128(1);
    assert_eq!(
        client
            .find_counterparty(elsewhere, "10240", "303045154")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client
            .find_counterparty(FOLDER, "10240", "303045155")
            .await
            .unwrap(),
        None
    );
    sim.insert_counterparty(&json!({"Parent_Key": FOLDER.to_string(), "ИНН": "12345678901234", "КодАбонентаClobus": 7, "DeletionMark": true}))
        .unwrap();
    assert_eq!(
        client
            .find_counterparty(FOLDER, "7", "12345678901234")
            .await
            .unwrap(),
        None
    );
    // a person's 14-digit INN; an INN with a quote travels as a doubled quote
    let person = client
        .create_counterparty(&new_counterparty("8", "12345678901234"))
        .await
        .unwrap();
    assert_eq!(
        sim.counterparty(person.ref_key).unwrap()["ЮридическоеФизическоеЛицо"],
        "ФизическоеЛицо"
    );
    assert_eq!(
        client
            .find_counterparty(FOLDER, "9", "O'Neil")
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        client.find_counterparty(FOLDER, "10240 or true", "1").await,
        Err(OnecError::InvalidArgument(_))
    ));
    assert_eq!(sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn consultations_are_created_read_and_found_by_marker() {
    let Setup { sim, client } = setup();
    let new = new_consultation(SUBSCRIBER, "2026-11-27T06:00:00Z");
    let created = client.create_consultation(&new).await.unwrap();
    assert_eq!(created.number, "ЦЛ00-000001");
    assert_eq!(created.ticket_id(), Some(new.ticket_id));
    assert_eq!(created.marker, consultation_marker(new.ticket_id));
    assert_eq!(created.kind, ConsultationKind::Queued);
    assert_eq!(created.consultation_date, Some(utc("2026-11-27T06:00:00Z")));
    assert_eq!(created.date, created.consultation_date);
    // whole seconds in the base's zone, back in UTC
    assert_eq!(created.date_created, Some(utc("2026-11-26T05:15:02Z")));
    assert_eq!(created.date_changed, Some(utc("2026-11-26T05:15:02Z")));
    assert_eq!(
        (created.manager_key, created.responsible_key),
        (Some(MANAGER), Some(MANAGER))
    );
    assert_eq!(created.author_key, None);
    assert_eq!(created.counterparty_key, Some(SUBSCRIBER));
    assert_eq!(created.importance, Some(cons_onec::Importance::High));
    assert_eq!(created.channel, Some(cons_onec::Channel::Telegram));
    assert!(created.its_rows.is_empty() && !created.deletion_mark && !created.posted);

    // what 1C stored, in its own terms
    let stored = sim.consultation(created.ref_key).unwrap();
    assert_eq!(stored["ДатаКонсультации"], "2026-11-27T11:00:00");
    assert_eq!(stored["ДатаСоздания"], "2026-11-26T10:15:02");
    assert_eq!(stored["Автор_Key"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(
        stored["КатегорияВопроса_Key"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(stored["ВидОбращения"], "ВОчередьНаКонсультацию");
    assert_eq!(stored["Входящий"], true);
    assert_eq!(stored[MARKER_FIELD], json!(created.marker));
    assert_eq!(sim.consultations_with_marker(&created.marker), 1);

    assert_eq!(
        client.get_consultation(created.ref_key).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        client
            .find_consultation_by_marker(&created.marker)
            .await
            .unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        client
            .find_consultation_by_ticket(new.ticket_id)
            .await
            .unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        client
            .find_consultation_by_ticket(Uuid::now_v7())
            .await
            .unwrap(),
        None
    );
    assert_eq!(client.get_consultation(Uuid::now_v7()).await.unwrap(), None);
    assert!(matches!(
        client.find_consultation_by_marker("").await,
        Err(OnecError::InvalidArgument(_))
    ));
    assert_eq!(sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn patches_change_only_what_they_carry() {
    let Setup { sim, client } = setup();
    let created = client
        .create_consultation(&new_consultation(SUBSCRIBER, "2026-11-27T06:00:00Z"))
        .await
        .unwrap();
    sim.advance_clock(chrono::Duration::minutes(16) + chrono::Duration::seconds(25));
    let moved = ConsultationPatch {
        consultation_date: Some(utc("2026-11-28T05:00:00Z")),
        ..Default::default()
    };
    let patched = client
        .patch_consultation(created.ref_key, &moved)
        .await
        .unwrap();
    assert_eq!(patched.consultation_date, Some(utc("2026-11-28T05:00:00Z")));
    assert_eq!(
        patched.date, created.date,
        "Date is not the scheduled time's field"
    );
    assert_eq!(patched.date_changed, Some(utc("2026-11-26T05:31:27Z")));
    assert_eq!(patched.data_version.counter(), Some(1));
    assert_eq!(patched.description, created.description);
    let body = sim.requests().last().unwrap().json().unwrap();
    assert_eq!(body, json!({"ДатаКонсультации": "2026-11-28T10:00:00"}));

    let closing = ConsultationPatch {
        kind: Some(ConsultationKind::ItsConsultation),
        end: Some(Some(utc("2026-11-28T05:40:00Z"))),
        manager_key: Some(Uuid::nil()),
        its_rows: Some(vec![ItsRow {
            question: "Вопрос".into(),
            answer: "Ответ".into(),
            repeated: true,
            ..Default::default()
        }]),
        ..Default::default()
    };
    let closed = client
        .patch_consultation(created.ref_key, &closing)
        .await
        .unwrap();
    assert_eq!(closed.kind, ConsultationKind::ItsConsultation);
    assert_eq!(closed.end, Some(utc("2026-11-28T05:40:00Z")));
    assert!(closed.is_finished());
    assert_eq!(closed.manager_key, None);
    assert_eq!(closed.responsible_key, Some(MANAGER));
    assert_eq!(closed.its_rows[0].question, "Вопрос");
    assert!(closed.its_rows[0].repeated);
    let reopened = client
        .patch_consultation(
            created.ref_key,
            &ConsultationPatch {
                end: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(reopened.end, None);

    let cancelled = client
        .patch_consultation(
            created.ref_key,
            &ConsultationPatch {
                deletion_mark: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(cancelled.deletion_mark && cancelled.is_cancelled());
    // a cancelled document is still found by its marker (the relay decides what it means)
    assert_eq!(
        client
            .find_consultation_by_marker(&created.marker)
            .await
            .unwrap()
            .unwrap()
            .ref_key,
        created.ref_key
    );
    let missing = client
        .patch_consultation(Uuid::now_v7(), &ConsultationPatch::default())
        .await;
    assert_eq!(missing, Err(OnecError::NotFound));
    assert_eq!(sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn operator_changes_are_read_back() {
    let Setup { sim, client } = setup();
    let created = client
        .create_consultation(&new_consultation(SUBSCRIBER, "2026-11-27T06:00:00Z"))
        .await
        .unwrap();
    sim.advance_clock(chrono::Duration::minutes(1));
    sim.close_without_consultation(created.ref_key).unwrap();
    let read = client
        .get_consultation(created.ref_key)
        .await
        .unwrap()
        .unwrap();
    assert!(read.closed_without_consultation && read.is_cancelled());
    assert_eq!(read.end, Some(utc("2026-11-26T05:16:02Z")));
    sim.reschedule_consultation(created.ref_key, local("2026-11-29T09:30:00"))
        .unwrap();
    let read = client
        .get_consultation(created.ref_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.consultation_date, Some(utc("2026-11-29T04:30:00Z")));
    assert_eq!(read.data_version.counter(), Some(2));
    assert!(sim.delete_consultation(created.ref_key));
    assert_eq!(
        client.get_consultation(created.ref_key).await.unwrap(),
        None
    );
    assert_eq!(sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn requests_travel_encoded_as_1c_expects() {
    let Setup { sim, client } = setup();
    let party = client
        .create_counterparty(&new_counterparty("10240", "303045154"))
        .await
        .unwrap();
    client
        .find_counterparty(FOLDER, "10240", "303045154")
        .await
        .unwrap();
    client.get_consultation(party.ref_key).await.unwrap();
    client.find_consultation_by_marker("a b+c'd").await.unwrap();
    let requests = sim.requests();
    for request in &requests {
        assert!(
            request.query.starts_with("$format=json"),
            "{}",
            request.query
        );
        assert!(!request.query.contains('+'), "{}", request.query);
        assert_eq!(request.header("accept"), Some("application/json"));
        assert!(
            request
                .header("authorization")
                .unwrap()
                .starts_with("Basic ")
        );
    }
    assert_eq!(requests[0].method, "POST");
    assert_eq!(
        requests[0].path,
        "/int/rbd_sl_copy/odata/standard.odata/Catalog_Контрагенты"
    );
    assert!(
        requests[0]
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body = requests[0].json().unwrap();
    assert_eq!(body["КодАбонентаClobus"], 10240);
    assert_eq!(body["КонтактнаяИнформация"][0]["LineNumber"], "1");
    assert!(
        requests[1].query.contains("%20eq%2010240%20and%20"),
        "{}",
        requests[1].query
    );
    assert!(
        requests[1].query.contains("$select=Ref_Key,DataVersion"),
        "{}",
        requests[1].query
    );
    assert_eq!(
        requests[2].path,
        format!(
            "/int/rbd_sl_copy/odata/standard.odata/Document_ТелефонныйЗвонок(guid'{}')",
            party.ref_key
        )
    );
    // the marker as a string literal: space %20, plus %2B, quote doubled
    assert!(
        requests[3].query.contains("a%20b%2Bc%27%27d"),
        "{}",
        requests[3].query
    );
    assert_eq!(sim.unimplemented_calls(), 0);
}
