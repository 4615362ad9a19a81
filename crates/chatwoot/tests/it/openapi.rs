//! Every request the client sends, checked against Chatwoot's OpenAPI document
//! (`application_swagger.json`): the path and method exist, query parameters are
//! documented, required body fields are present and every field sent is a documented
//! one, except where the document and Chatwoot's code are known to disagree
//! (chatwoot.md §3.6, §3.11).

use crate::{fixture, setup};
use cons_chatwoot::{ConversationStatus, NewContact, NewConversation, NewMessage};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// (method, path template, field, why the document is wrong about it)
const REQUIRED_BUT_NOT_NEEDED: &[(&str, &str, &str, &str)] = &[(
    "POST",
    "/api/v1/accounts/{account_id}/conversations",
    "source_id",
    "the code takes inbox_id + contact_id instead (§3.4, §3.11)",
)];
const SENT_BUT_UNDOCUMENTED: &[(&str, &str, &str, &str)] = &[(
    "POST",
    "/api/v1/accounts/{account_id}/conversations/{conversation_id}/messages",
    "source_id",
    "stored and echoed by the code; our message marker (§3.6)",
)];

/// The document's path template for a concrete path: `{…}` segments match anything,
/// and among several matches the one with the most literal segments wins.
fn template_of<'a>(spec: &'a Value, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    spec["paths"]
        .as_object()?
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
            let matches = parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s);
            matches.then(|| {
                (
                    parts.iter().filter(|p| !p.starts_with('{')).count(),
                    template.as_str(),
                )
            })
        })
        .max()
        .map(|(_, template)| template)
}

fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(spec, spec.pointer(pointer).unwrap_or(&Value::Null))
        }
        None => node,
    }
}

/// `required` and `properties` of a request schema (`allOf` merged).
fn body_fields(spec: &Value, schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let schema = resolve(spec, schema);
    let mut required = BTreeSet::new();
    let mut properties = BTreeSet::new();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (r, p) = body_fields(spec, part);
        required.extend(r);
        properties.extend(p);
    }
    required.extend(
        schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned),
    );
    properties.extend(
        schema["properties"]
            .as_object()
            .into_iter()
            .flat_map(Map::keys)
            .cloned(),
    );
    (required, properties)
}

fn query_parameters(spec: &Value, path_item: &Value, operation: &Value) -> BTreeSet<String> {
    [&path_item["parameters"], &operation["parameters"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .map(|p| resolve(spec, p))
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

fn excused(list: &[(&str, &str, &str, &str)], method: &str, template: &str, field: &str) -> bool {
    list.iter()
        .any(|(m, t, f, _)| *m == method && *t == template && *f == field)
}

#[tokio::test]
async fn every_request_matches_chatwoots_openapi_document() {
    let s = setup();
    s.sim.add_team(2, "техническая поддержка");
    s.sim.add_agent(7, "John Smith", "john@acme.inc");
    let c = &s.client;

    // One call of every method.
    let new_contact = NewContact {
        identifier: "client-1".to_owned(),
        name: "Jane".to_owned(),
        email: Some("jane@acme.inc".to_owned()),
        phone_number: Some("+998901112233".to_owned()),
        ..NewContact::default()
    };
    let contact = c.create_contact(&new_contact).await.unwrap();
    c.find_contact_by_identifier("client-1").await.unwrap();
    c.find_contact_by_email("jane@acme.inc").await.unwrap();
    c.find_contact_by_phone_number("+998901112233")
        .await
        .unwrap();
    c.get_contact(contact.id).await.unwrap();
    let mut new = NewConversation::for_ticket(contact.id, "t-1");
    new.team_id = Some(2);
    new.assignee_id = Some(7);
    new.status = Some(ConversationStatus::Open);
    new.source_id = contact.source_ids_in(3).next().map(str::to_owned);
    let id = c.create_conversation(&new).await.unwrap().id;
    c.conversations_of_contact(contact.id).await.unwrap();
    c.get_conversation(id).await.unwrap();
    let mut message = NewMessage::incoming("hi", "cons:1");
    message
        .content_attributes
        .insert("cons_outbox_id".to_owned(), Value::from("1"));
    let first = c.create_message(id, &message).await.unwrap();
    c.messages(id).await.unwrap();
    c.messages_after(id, first.id).await.unwrap();
    c.set_custom_attributes(id, &new.custom_attributes)
        .await
        .unwrap();
    c.set_labels(id, &["рус".to_owned()]).await.unwrap();
    c.assign_team(id, 2).await.unwrap();
    c.assign_agent(id, Some(7)).await.unwrap();
    c.toggle_status(id, ConversationStatus::Resolved)
        .await
        .unwrap();
    c.teams().await.unwrap();
    assert_eq!(s.sim.unimplemented_calls(), 0);

    let spec = fixture("openapi/application_swagger.json");
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for request in s.sim.requests() {
        let method = request.method.to_lowercase();
        let Some(template) = template_of(&spec, &request.path) else {
            problems.push(format!(
                "{} {}: no such path in the document",
                request.method, request.path
            ));
            continue;
        };
        let path_item = &spec["paths"][template];
        let operation = &path_item[method.as_str()];
        if operation.is_null() {
            problems.push(format!(
                "{} {template}: no such method in the document",
                request.method
            ));
            continue;
        }
        seen.insert(format!("{} {template}", request.method));

        let documented = query_parameters(&spec, path_item, operation);
        for pair in request.query.split('&').filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap_or_default();
            if !documented.contains(name) {
                problems.push(format!(
                    "{} {template}: query parameter `{name}` is not documented",
                    request.method
                ));
            }
        }

        let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
        match (request.json(), schema.is_null()) {
            (None, _) => {}
            (Some(_), true) => problems.push(format!(
                "{} {template}: sends a body the document does not take",
                request.method
            )),
            (Some(body), false) => {
                let (required, properties) = body_fields(&spec, schema);
                let sent = body.as_object().cloned().unwrap_or_default();
                for field in required.iter().filter(|f| !sent.contains_key(*f)) {
                    if !excused(REQUIRED_BUT_NOT_NEEDED, &request.method, template, field) {
                        problems.push(format!(
                            "{} {template}: required `{field}` missing",
                            request.method
                        ));
                    }
                }
                for field in sent.keys().filter(|f| !properties.contains(*f)) {
                    if !excused(SENT_BUT_UNDOCUMENTED, &request.method, template, field) {
                        problems.push(format!(
                            "{} {template}: `{field}` is not a documented field",
                            request.method
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    let expected = [
        "GET /api/v1/accounts/{account_id}/contacts/{id}",
        "GET /api/v1/accounts/{account_id}/contacts/{id}/conversations",
        "GET /api/v1/accounts/{account_id}/conversations/{conversation_id}",
        "GET /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages",
        "GET /api/v1/accounts/{account_id}/teams",
        "POST /api/v1/accounts/{account_id}/contacts",
        "POST /api/v1/accounts/{account_id}/contacts/filter",
        "POST /api/v1/accounts/{account_id}/conversations",
        "POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/assignments",
        "POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/custom_attributes",
        "POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/labels",
        "POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages",
        "POST /api/v1/accounts/{account_id}/conversations/{conversation_id}/toggle_status",
    ];
    assert_eq!(
        seen,
        expected
            .iter()
            .map(|e| (*e).to_owned())
            .collect::<BTreeSet<_>>()
    );
}
