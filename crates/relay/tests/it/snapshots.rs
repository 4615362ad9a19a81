//! The exact requests the relay sends to Chatwoot and 1C for one ticket, compared with the
//! snapshots in `tests/snapshots/` (ids, dates and times redacted). A change to what we
//! send shows up here as a diff to review; `UPDATE_SNAPSHOTS=1` rewrites the files.

use crate::peers::{accounting_ticket, create, drain_all, world};
use cons_sim::Recorded;
use serde_json::{Value, json};

/// Values that differ from run to run.
fn redact(value: &mut Value, replacements: &[(String, &str)]) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                let volatile = key.contains("Дата")
                    || key == "Date"
                    || key.ends_with("_at")
                    || key == "date_con";
                let contact_inbox = key == "source_id"
                    && inner
                        .as_str()
                        .is_some_and(|v| uuid::Uuid::parse_str(v).is_ok());
                if volatile && inner.is_string() {
                    *inner = json!("<time>");
                } else if contact_inbox {
                    *inner = json!("<contact_inbox_source_id>");
                } else {
                    redact(inner, replacements);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| redact(item, replacements)),
        Value::String(text) => {
            for (from, to) in replacements {
                *text = text.replace(from.as_str(), to);
            }
        }
        _ => {}
    }
}

fn describe(requests: &[Recorded], replacements: &[(String, &str)]) -> Value {
    Value::Array(
        requests
            .iter()
            .map(|r| {
                let mut body = r.json().unwrap_or(Value::Null);
                redact(&mut body, replacements);
                let mut target = Value::String(format!("{} {}?{}", r.method, r.path, r.query));
                redact(&mut target, replacements);
                json!({"request": target, "body": body})
            })
            .collect(),
    )
}

fn compare(name: &str, actual: &Value) {
    let path = format!("{}/tests/snapshots/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let rendered = format!("{}\n", serde_json::to_string_pretty(actual).unwrap());
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("no snapshot {path}: run with UPDATE_SNAPSHOTS=1 and review it")
    });
    assert_eq!(
        rendered, expected,
        "requests to {name} changed: review, then UPDATE_SNAPSHOTS=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requests_for_one_ticket_match_their_snapshots() {
    let world = world().await;
    let cons_id = create(
        &world,
        &accounting_ticket("+998901234567", Some("301234567")),
    )
    .await;
    drain_all(&world, 5).await;
    let client_id = crate::column(
        world.db.pool(),
        "SELECT client_id::text AS value FROM cons.clients",
    )
    .await
    .join("");
    let mut replacements = vec![
        (cons_id.to_string(), "<cons_id>"),
        (client_id, "<client_id>"),
    ];
    for consultation in world.onec.consultations() {
        if let Some(key) = consultation["Ref_Key"].as_str() {
            replacements.push((key.to_owned(), "<document_ref_key>"));
        }
    }
    for counterparty in world.onec.counterparties() {
        if let Some(key) = counterparty["Ref_Key"].as_str() {
            replacements.push((key.to_owned(), "<counterparty_ref_key>"));
        }
    }
    compare(
        "chatwoot",
        &describe(&world.chatwoot.requests(), &replacements),
    );
    compare("onec", &describe(&world.onec.requests(), &replacements));
}
