//! The Chatwoot simulator on the wire: the rules the middleware relies on (token, contact
//! uniqueness, display ids, replace semantics, `source_id` echo, flood guard), response
//! shapes against `../shared/fixtures/chatwoot/api/`, scripted faults, the count of
//! calls to routes it does not simulate, and its webhooks: events, payload shapes against
//! `../shared/fixtures/chatwoot/webhooks/`, signatures, delivery and chaos.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on anything unexpected"
)]

use cons_sim::chatwoot::{ChatwootSim, ChatwootSimConfig, SimStatus};
use cons_sim::webhooks::sign;
use cons_sim::{
    Fault, SentWebhook, SimServer, SimWebhook, SimWebhooks, WebhookChaos, WebhookOutcome,
    serve_recorder,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token";

struct Api {
    sim: ChatwootSim,
    http: reqwest::Client,
}

impl Api {
    fn start() -> Self {
        let sim = ChatwootSim::start(ChatwootSimConfig {
            bind: "127.0.0.1:0".to_owned(),
            account_id: 1,
            inbox_id: 3,
            api_token: TOKEN.to_owned(),
            workers: 1,
        })
        .unwrap();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self { sim, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/accounts/1{path}", self.sim.base_url())
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(
            self.http
                .get(self.url(path))
                .header("api_access_token", TOKEN),
        )
        .await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(
            self.http
                .post(self.url(path))
                .header("api_access_token", TOKEN)
                .json(&body),
        )
        .await
    }

    async fn contact(&self, identifier: &str) -> u64 {
        let (status, body) = self
            .post(
                "/contacts",
                json!({"inbox_id": 3, "name": "N", "identifier": identifier}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["payload"]["contact"]["id"].as_u64().unwrap()
    }

    async fn conversation(&self, contact_id: u64, cons_id: &str) -> u64 {
        let body = json!({"inbox_id": 3, "contact_id": contact_id, "custom_attributes": {"cons_id": cons_id}});
        let (status, body) = self.post("/conversations", body).await;
        assert_eq!(status, 200, "{body}");
        body["id"].as_u64().unwrap()
    }
}

/// A file under `shared/fixtures/chatwoot/`.
fn fixture_text(path: &str) -> String {
    let path = format!(
        "{}/../../../shared/fixtures/chatwoot/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap()
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(&format!("api/{name}"))).unwrap()
}

fn webhook_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(&format!("webhooks/{name}"))).unwrap()
}

/// Maps whose keys are data, not schema.
const FREE_FORM: &[&str] = &[
    "custom_attributes",
    "additional_attributes",
    "content_attributes",
    "auto_assignment_config",
    "csat_config",
    "sentiment",
    "external_source_ids",
];

/// Where `actual` differs in shape from `expected`: key sets of objects, element shapes
/// of arrays, JSON types of leaves (`null` on either side matches anything).
fn shape_differences(path: &str, actual: &Value, expected: &Value, out: &mut Vec<String>) {
    match (actual, expected) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(a), Value::Object(e)) => {
            if FREE_FORM.iter().any(|k| path.ends_with(&format!(".{k}"))) {
                return;
            }
            for key in e.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{key}: missing"));
            }
            for key in a.keys().filter(|k| !e.contains_key(*k)) {
                out.push(format!("{path}.{key}: not in the fixture"));
            }
            for (key, value) in a {
                if let Some(expected) = e.get(key) {
                    shape_differences(&format!("{path}.{key}"), value, expected, out);
                }
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            if let (Some(a), Some(e)) = (a.first(), e.first()) {
                shape_differences(&format!("{path}[0]"), a, e, out);
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        _ => out.push(format!("{path}: {actual} where the fixture has {expected}")),
    }
}

fn assert_shape_like(actual: &Value, expected: &Value, fixture_name: &str) {
    let mut differences = Vec::new();
    shape_differences("$", actual, expected, &mut differences);
    assert!(
        differences.is_empty(),
        "{fixture_name}: {differences:#?}\n{actual:#}"
    );
}

fn assert_shape(actual: &Value, fixture_name: &str) {
    assert_shape_like(actual, &fixture(fixture_name), fixture_name);
}

#[tokio::test]
async fn responses_have_the_fixture_shapes() {
    let api = Api::start();
    api.sim.add_agent(7, "John Smith", "john@acme.inc");

    let created = api
        .post("/contacts", fixture("contacts.create.request.json"))
        .await;
    assert_eq!(created.0, 200);
    assert_shape(&created.1, "contacts.create.response.json");
    let contact_id = created.1["payload"]["contact"]["id"].as_u64().unwrap();
    let source_id = created.1["payload"]["contact"]["contact_inboxes"][0]["source_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        created.1["payload"]["contact_inbox"]["source_id"],
        json!(source_id)
    );

    let without_inbox = api
        .post("/contacts", json!({"name": "Other", "identifier": "crm-2"}))
        .await;
    assert_shape(
        &without_inbox.1,
        "contacts.create.response.without_inbox.json",
    );
    assert_eq!(
        without_inbox.1["payload"]["contact_inbox"],
        json!({"inbox": null, "source_id": null})
    );

    let mut request = fixture("conversations.create.request.json");
    request["source_id"] = json!(source_id);
    request["contact_id"] = json!(contact_id);
    let conversation = api.post("/conversations", request).await;
    assert_eq!(conversation.0, 200, "{}", conversation.1);
    assert_shape(&conversation.1, "conversations.create.response.json");
    let id = conversation.1["id"].as_u64().unwrap();

    let note = api
        .post(
            &format!("/conversations/{id}/messages"),
            fixture("messages.create.private_note.request.json"),
        )
        .await;
    assert_shape(&note.1, "messages.create.private_note.response.json");
    assert_eq!(
        (note.1["message_type"].clone(), note.1["private"].clone()),
        (json!(1), json!(true))
    );

    let incoming = api
        .post(
            &format!("/conversations/{id}/messages"),
            fixture("messages.create.incoming.request.json"),
        )
        .await;
    assert_shape(&incoming.1, "messages.create.incoming.response.json");
    assert_eq!(incoming.1["message_type"], json!(0));
    assert_eq!(incoming.1["source_id"], json!("helpdesk:TCK-2041:c-1"));
    assert_eq!(incoming.1["sender"]["id"], json!(contact_id));

    let assigned = api
        .post(
            &format!("/conversations/{id}/assignments"),
            fixture("assignments.request.json"),
        )
        .await;
    assert_shape(&assigned.1, "assignments.response.json");

    let shown = api.get(&format!("/conversations/{id}")).await;
    assert_shape(&shown.1, "conversations.show.response.json");
    assert_eq!(shown.1["meta"]["assignee"]["id"], json!(7));

    let filtered = api
        .post("/contacts/filter", fixture("contacts.filter.request.json"))
        .await;
    assert_shape(&filtered.1, "contacts.filter.response.json");
    assert_eq!(filtered.1["meta"]["count"], json!(1));

    let attributes = api
        .post(
            &format!("/conversations/{id}/custom_attributes"),
            fixture("custom_attributes.request.json"),
        )
        .await;
    assert_eq!(attributes.1, fixture("custom_attributes.response.json"));
    let labels = api
        .post(
            &format!("/conversations/{id}/labels"),
            fixture("labels.request.json"),
        )
        .await;
    assert_eq!(labels.1, fixture("labels.response.json"));

    let resolved = api
        .post(
            &format!("/conversations/{id}/toggle_status"),
            json!({"status": "resolved"}),
        )
        .await;
    let mut expected = fixture("toggle_status.resolved.response.json");
    expected["payload"]["conversation_id"] = json!(id);
    assert_eq!(resolved.1, expected);
    let snoozed = api
        .post(
            &format!("/conversations/{id}/toggle_status"),
            fixture("toggle_status.request.json"),
        )
        .await;
    let mut expected = fixture("toggle_status.response.json");
    expected["payload"]["conversation_id"] = json!(id);
    assert_eq!(snoozed.1, expected);

    let inbox = api
        .post(
            &format!("/contacts/{contact_id}/contact_inboxes"),
            fixture("contact_inboxes.create.request.json"),
        )
        .await;
    assert_eq!(inbox.0, 200, "{}", inbox.1);
    assert_shape(&inbox.1, "contact_inboxes.create.response.json");

    assert_eq!(api.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn the_token_is_required_and_checked() {
    let api = Api::start();
    let errors = fixture("errors.json");
    let url = api.url("/contacts/filter");
    let body = fixture("contacts.filter.request.json");

    let missing = api.send(api.http.post(&url).json(&body)).await;
    assert_eq!(missing, (401, errors["401_missing_token"]["body"].clone()));
    let wrong = api
        .send(
            api.http
                .post(&url)
                .header("api_access_token", "nope")
                .json(&body),
        )
        .await;
    assert_eq!(wrong, (401, errors["401_invalid_token"]["body"].clone()));
    let other_account = api
        .send(
            api.http
                .get(format!("{}/api/v1/accounts/2/teams", api.sim.base_url()))
                .header("api_access_token", TOKEN),
        )
        .await;
    assert_eq!(
        other_account,
        (401, errors["401_not_member_of_account"]["body"].clone())
    );
    // Rack maps the dash spelling to the same header.
    let dashed = api
        .send(
            api.http
                .post(&url)
                .header("Api-Access-Token", TOKEN)
                .json(&body),
        )
        .await;
    assert_eq!(dashed.0, 200);
    assert_eq!(api.sim.counts().contacts, 0);
}

#[tokio::test]
async fn contact_identifier_email_and_phone_are_unique_per_account() {
    let api = Api::start();
    let first = json!({"inbox_id": 3, "name": "Jane", "identifier": "c-1", "email": "Jane@Acme.inc", "phone_number": "+998901112233"});
    assert_eq!(api.post("/contacts", first).await.0, 200);

    let same_identifier = api
        .post("/contacts", json!({"name": "J2", "identifier": "c-1"}))
        .await;
    assert_eq!(
        same_identifier,
        (
            422,
            json!({"message": "Identifier has already been taken", "attributes": ["identifier"]})
        )
    );
    // E-mails compare case-insensitively (Chatwoot stores them lower-cased).
    let same_email = api
        .post(
            "/contacts",
            json!({"identifier": "c-2", "email": "jane@ACME.inc"}),
        )
        .await;
    assert_eq!(
        same_email,
        (
            422,
            fixture("errors.json")["422_record_invalid_duplicate_email"]["body"].clone()
        )
    );
    let same_phone = api
        .post(
            "/contacts",
            json!({"identifier": "c-3", "phone_number": "+998901112233"}),
        )
        .await;
    assert_eq!(same_phone.1["attributes"], json!(["phone_number"]));
    let bad_phone = api
        .post(
            "/contacts",
            json!({"identifier": "c-4", "phone_number": "998901112233"}),
        )
        .await;
    assert_eq!(
        bad_phone,
        (
            422,
            fixture("errors.json")["422_record_invalid_phone"]["body"].clone()
        )
    );
    // Identifiers are case-sensitive for uniqueness.
    assert_eq!(
        api.post("/contacts", json!({"identifier": "C-1"})).await.0,
        200
    );

    assert_eq!(api.sim.contacts_with_identifier("c-1"), 1);
    assert_eq!(api.sim.counts().contacts, 2);
    assert_eq!(
        api.sim
            .contacts()
            .iter()
            .filter(|c| c.identifier.as_deref() == Some("c-1"))
            .count(),
        1
    );
}

#[tokio::test]
async fn filter_matches_exactly_on_identifier_email_and_phone() {
    let api = Api::start();
    let body = json!({"inbox_id": 3, "identifier": "crm-AB", "email": "x@y.z", "phone_number": "+14155550123"});
    let (_, created) = api.post("/contacts", body).await;
    let id = created["payload"]["contact"]["id"].clone();
    api.contact("crm-ABC").await;

    let filter = |key: &str, value: &str| json!({"payload": [{"attribute_key": key, "filter_operator": "equal_to", "values": [value], "query_operator": null}]});
    for (key, value) in [
        ("identifier", "crm-AB"),
        ("identifier", "CRM-ab"),
        ("email", "X@y.z"),
        ("phone_number", "+14155550123"),
    ] {
        let (status, found) = api
            .post("/contacts/filter?page=1", filter(key, value))
            .await;
        assert_eq!(status, 200);
        assert_eq!(found["meta"]["count"], json!(1), "{key}={value}: {found}");
        assert_eq!(found["payload"][0]["id"], id);
    }
    let (_, none) = api
        .post("/contacts/filter", filter("identifier", "crm-A"))
        .await;
    assert_eq!(none["meta"]["count"], json!(0));
    assert_eq!(none["payload"], json!([]));
    let (status, _) = api
        .post("/contacts/filter", filter("favourite_colour", "red"))
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn conversations_have_per_account_display_ids() {
    let api = Api::start();
    let contact = api.contact("c-1").await;
    let ids = [
        api.conversation(contact, "t-1").await,
        api.conversation(contact, "t-2").await,
        api.conversation(contact, "t-3").await,
    ];
    assert_eq!(ids, [1, 2, 3]);

    let (status, shown) = api.get("/conversations/2").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            shown["id"].clone(),
            shown["custom_attributes"]["cons_id"].clone()
        ),
        (json!(2), json!("t-2"))
    );
    assert_eq!(shown["inbox_id"], json!(3));
    assert_eq!(shown["meta"]["sender"]["id"], json!(contact));
    assert_eq!(
        api.get("/conversations/4").await,
        (404, json!({"error": "Resource could not be found"}))
    );
    // A contact id is not a conversation id.
    assert_eq!(api.get(&format!("/conversations/{contact}")).await.0, 404);

    // Newest first, and only the newest 20.
    for i in 4..=23 {
        api.conversation(contact, &format!("t-{i}")).await;
    }
    let (_, listed) = api.get(&format!("/contacts/{contact}/conversations")).await;
    let listed: Vec<u64> = listed["payload"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, (4..=23).rev().collect::<Vec<u64>>());
    assert_eq!(api.sim.conversations_with_cons_id("t-2"), 1);
    assert_eq!(api.get("/contacts/999999/conversations").await.0, 404);
}

#[tokio::test]
async fn conversation_creation_follows_the_contact_inbox_rules() {
    let api = Api::start();
    let jane = api.contact("jane").await;
    let john = api.contact("john").await;
    let jane_source = api.sim.contact(jane).unwrap().source_ids[0].clone();

    // Without source_id every conversation gets a fresh contact inbox.
    api.conversation(jane, "t-1").await;
    assert_eq!(api.sim.contact(jane).unwrap().source_ids.len(), 2);
    // Another contact's source_id is refused.
    let taken = api
        .post(
            "/conversations",
            json!({"inbox_id": 3, "contact_id": john, "source_id": jane_source}),
        )
        .await;
    assert_eq!(taken, (422, json!({"error": "source_id should be unique"})));
    // The legacy lookup by source_id alone.
    let (status, legacy) = api
        .post("/conversations", json!({"source_id": jane_source}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(legacy["meta"]["sender"]["id"], json!(jane));
    assert_eq!(
        api.post("/conversations", json!({"source_id": "nobody"}))
            .await
            .0,
        404
    );
    assert_eq!(
        api.post("/conversations", json!({"inbox_id": 4, "contact_id": jane}))
            .await
            .0,
        404
    );
    assert_eq!(
        api.post("/conversations", json!({"inbox_id": 3, "contact_id": 5}))
            .await
            .0,
        404
    );
    // The initial message is outgoing unless said otherwise.
    let (_, with_message) = api
        .post(
            "/conversations",
            json!({"inbox_id": 3, "contact_id": jane, "message": {"content": "hi"}}),
        )
        .await;
    assert_eq!(with_message["messages"][0]["message_type"], json!(1));
}

#[tokio::test]
async fn custom_attributes_and_labels_are_replaced() {
    let api = Api::start();
    let contact = api.contact("c-1").await;
    let id = api.conversation(contact, "t-1").await;

    let (_, set) = api
        .post(
            &format!("/conversations/{id}/custom_attributes"),
            json!({"custom_attributes": {"cons_id": "t-1", "a": 1}}),
        )
        .await;
    assert_eq!(
        set,
        json!({"custom_attributes": {"cons_id": "t-1", "a": 1}})
    );
    // `merge` is a 4.17 flag: 4.16.2 ignores it and replaces.
    let (_, replaced) = api
        .post(
            &format!("/conversations/{id}/custom_attributes"),
            json!({"custom_attributes": {"b": 2}, "merge": true}),
        )
        .await;
    assert_eq!(replaced, json!({"custom_attributes": {"b": 2}}));
    assert_eq!(
        api.get(&format!("/conversations/{id}")).await.1["custom_attributes"],
        json!({"b": 2})
    );
    assert_eq!(api.sim.conversations_with_cons_id("t-1"), 0);

    let labels = |list: Value| json!({"labels": list});
    assert_eq!(
        api.post(
            &format!("/conversations/{id}/labels"),
            labels(json!(["рус", "тех"]))
        )
        .await
        .1,
        json!({"payload": ["рус", "тех"]})
    );
    assert_eq!(
        api.post(
            &format!("/conversations/{id}/labels"),
            labels(json!(["бух"]))
        )
        .await
        .1,
        json!({"payload": ["бух"]})
    );
    assert_eq!(
        api.get(&format!("/conversations/{id}/labels")).await.1,
        json!({"payload": ["бух"]})
    );
    assert_eq!(
        api.post(&format!("/conversations/{id}/labels"), labels(json!([])))
            .await
            .1,
        json!({"payload": []})
    );
    assert_eq!(
        api.sim.conversation(id).unwrap().labels,
        Vec::<String>::new()
    );
    assert_eq!(
        api.post("/conversations/77/labels", labels(json!(["x"])))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn messages_echo_source_id_and_page_like_chatwoot() {
    let api = Api::start();
    let contact = api.contact("c-1").await;
    let id = api.conversation(contact, "t-1").await;
    let path = format!("/conversations/{id}/messages");

    let (_, first) = api
        .post(
            &path,
            json!({"content": "m-0", "message_type": "incoming", "source_id": "cons:0"}),
        )
        .await;
    let first_id = first["id"].as_u64().unwrap();
    for i in 1..25 {
        api.post(&path, json!({"content": format!("m-{i}"), "message_type": "outgoing", "source_id": format!("cons:{i}")})).await;
    }
    assert_eq!(api.sim.messages_with_source_id("cons:3"), 1);
    assert_eq!(api.sim.messages(id).len(), 25);

    let (_, latest) = api.get(&path).await;
    let page = latest["payload"].as_array().unwrap();
    assert_eq!(page.len(), 20);
    assert_eq!(page[0]["source_id"], json!("cons:5"));
    assert_eq!(page[19]["source_id"], json!("cons:24"));
    assert_eq!(page[19]["message_type"], json!(1));
    let (_, after) = api.get(&format!("{path}?after={first_id}")).await;
    assert_eq!(after["payload"].as_array().unwrap().len(), 24);
    assert_eq!(after["payload"][0]["source_id"], json!("cons:1"));

    // Resending is not refused: Chatwoot's source_id is not unique.
    api.post(
        &path,
        json!({"content": "again", "message_type": "outgoing", "source_id": "cons:3"}),
    )
    .await;
    assert_eq!(api.sim.messages_with_source_id("cons:3"), 2);

    // An incoming message reopens a resolved conversation.
    api.post(
        &format!("/conversations/{id}/toggle_status"),
        json!({"status": "resolved"}),
    )
    .await;
    api.post(
        &path,
        json!({"content": "back", "message_type": "incoming"}),
    )
    .await;
    assert_eq!(api.sim.conversation(id).unwrap().status, SimStatus::Open);
    assert_eq!(
        api.post(&path, json!({"content": "x", "message_type": "sideways"}))
            .await
            .0,
        422
    );
    assert_eq!(
        api.post("/conversations/50/messages", json!({"content": "x"}))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn the_flood_guard_refuses_too_many_messages_a_minute() {
    let api = Api::start();
    api.sim.set_message_flood_limit(Some(3));
    let contact = api.contact("c-1").await;
    let id = api.conversation(contact, "t-1").await;
    let path = format!("/conversations/{id}/messages");
    for _ in 0..3 {
        assert_eq!(api.post(&path, json!({"content": "x"})).await.0, 200);
    }
    let refused = api
        .post(&path, json!({"content": "x", "source_id": "late"}))
        .await;
    assert_eq!(
        refused,
        (
            422,
            fixture("errors.json")["422_message_flood"]["body"].clone()
        )
    );
    assert_eq!(api.sim.messages_with_source_id("late"), 0);
}

#[tokio::test]
async fn assignments_accept_configured_teams_and_agents_only() {
    let api = Api::start();
    api.sim.add_team(2, "техническая поддержка");
    api.sim.add_agent(7, "John Smith", "john@acme.inc");
    let contact = api.contact("c-1").await;
    let id = api.conversation(contact, "t-1").await;
    let path = format!("/conversations/{id}/assignments");

    let (status, team) = api.post(&path, json!({"team_id": 2})).await;
    assert_eq!(
        (status, team["id"].clone(), team["name"].clone()),
        (200, json!(2), json!("техническая поддержка"))
    );
    assert_eq!(
        api.get(&format!("/conversations/{id}")).await.1["meta"]["team"]["id"],
        json!(2)
    );
    // An unknown team clears the team and answers null.
    assert_eq!(
        api.post(&path, json!({"team_id": 99})).await,
        (200, Value::Null)
    );
    assert_eq!(api.sim.conversation(id).unwrap().team_id, None);
    assert!(
        api.get(&format!("/conversations/{id}")).await.1["meta"]
            .get("team")
            .is_none()
    );

    assert_eq!(
        api.post(&path, json!({"assignee_id": 7})).await.1["id"],
        json!(7)
    );
    assert_eq!(api.sim.conversation(id).unwrap().assignee_id, Some(7));
    assert_eq!(
        api.post(&path, json!({"assignee_id": null})).await,
        (200, Value::Null)
    );
    assert_eq!(api.sim.conversation(id).unwrap().assignee_id, None);
    assert_eq!(
        api.get("/teams").await.1,
        json!([{"id": 2, "name": "техническая поддержка", "description": "", "allow_auto_assign": true, "account_id": 1, "is_member": false}])
    );
}

#[tokio::test]
async fn toggle_status_sets_or_toggles() {
    let api = Api::start();
    let contact = api.contact("c-1").await;
    let id = api.conversation(contact, "t-1").await;
    let path = format!("/conversations/{id}/toggle_status");
    let current = |body: Value| body["payload"]["current_status"].clone();

    assert_eq!(
        current(api.post(&path, json!({"status": "pending"})).await.1),
        json!("pending")
    );
    // Without a status: anything but open becomes open, open becomes resolved.
    assert_eq!(current(api.post(&path, json!({})).await.1), json!("open"));
    assert_eq!(
        current(api.post(&path, json!({})).await.1),
        json!("resolved")
    );
    assert_eq!(api.post(&path, json!({"status": "closed"})).await.0, 422);
    assert!(api.sim.agent_set_status(id, SimStatus::Snoozed));
    assert_eq!(
        api.get(&format!("/conversations/{id}")).await.1["status"],
        json!("snoozed")
    );
}

#[tokio::test]
async fn scripted_faults_apply_around_the_handlers() {
    let api = Api::start();
    let contact = api.contact("c-1").await;
    let id = api.conversation(contact, "t-1").await;
    let path = format!("/conversations/{id}/messages");

    api.sim.faults().next_matching(
        "POST /api/v1/accounts/1/conversations/",
        1,
        Fault::Status {
            status: 503,
            body: "{}".to_owned(),
        },
    );
    assert_eq!(
        api.post(&path, json!({"content": "x", "source_id": "s-1"}))
            .await
            .0,
        503
    );
    assert_eq!(api.sim.messages_with_source_id("s-1"), 0);

    api.sim.faults().next(
        1,
        Fault::RateLimited {
            retry_after_secs: 4,
        },
    );
    let response = api
        .http
        .get(api.url("/teams"))
        .header("api_access_token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "4");

    // The peer acts, then never answers: the caller times out, the message exists.
    api.sim.faults().next(1, Fault::ActThenStall);
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let timed_out = impatient
        .post(api.url(&path))
        .header("api_access_token", TOKEN)
        .json(&json!({"content": "x", "source_id": "s-2"}))
        .send()
        .await
        .unwrap_err();
    assert!(timed_out.is_timeout());
    assert_eq!(api.sim.messages_with_source_id("s-2"), 1);
    assert_eq!(api.sim.faults().pending(), 0);
    assert!(
        api.sim
            .requests()
            .iter()
            .any(|r| r.path == format!("/api/v1/accounts/1{path}")
                && r.json().is_some_and(|b| b["source_id"] == "s-2"))
    );
}

#[tokio::test]
async fn unsimulated_routes_answer_404_and_are_counted() {
    let api = Api::start();
    assert_eq!(api.sim.unimplemented_calls(), 0);
    assert_eq!(api.get("/contacts/search?q=jane").await.0, 404);
    assert_eq!(
        api.send(
            api.http
                .delete(api.url("/conversations/1"))
                .header("api_access_token", TOKEN)
        )
        .await
        .0,
        404
    );
    assert_eq!(api.get("/contacts").await.0, 404);
    assert_eq!(
        api.send(
            api.http
                .get(format!("{}/public/api/v1/inboxes/x", api.sim.base_url()))
        )
        .await
        .0,
        404
    );
    assert_eq!(api.sim.unimplemented_calls(), 4);
}

// --- webhooks ---------------------------------------------------------------------------

/// The secret of `signature_test_vectors.json`.
const SECRET: &str = "dN4cQz8pVt2sWm6hJr9kXe3B";

impl Api {
    /// Points the simulator's webhooks at a fresh recording receiver.
    fn hook(&self, secret: Option<&str>) -> SimServer {
        let receiver = serve_recorder("127.0.0.1:0").unwrap();
        self.sim.set_webhook(Some(SimWebhook {
            url: format!("{}/webhook/chatwoot", receiver.base_url),
            secret: secret.map(str::to_owned),
        }));
        receiver
    }
}

/// A simulator with agent 7 and a conversation (its display id), then hooked to a fresh
/// receiver.
async fn hooked_conversation(secret: Option<&str>) -> (Api, u64, SimServer) {
    let api = Api::start();
    api.sim.add_agent(7, "John Smith", "john@acme.inc");
    let contact = api.contact("c").await;
    let id = api.conversation(contact, "cons-1").await;
    let receiver = api.hook(secret);
    (api, id, receiver)
}

fn assert_webhook_shape(actual: &Value, fixture_name: &str) {
    assert_shape_like(actual, &webhook_fixture(fixture_name), fixture_name);
}

/// `(event, payload)` of every delivery, in emission order.
fn emitted(log: &[SentWebhook]) -> Vec<(String, Value)> {
    log.iter()
        .map(|w| (w.event.clone(), w.json().unwrap()))
        .collect()
}

fn event_names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(event, _)| event.as_str()).collect()
}

/// The columns a `conversation_updated` reports, in its order.
fn changed_columns(payload: &Value) -> Vec<String> {
    payload["changed_attributes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|change| change.as_object().unwrap().keys().cloned())
        .collect()
}

/// `{previous_value, current_value}` of one reported column.
fn change(payload: &Value, column: &str) -> Value {
    payload["changed_attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|change| change.get(column))
        .cloned()
        .unwrap()
}

#[test]
fn signing_matches_chatwoots_test_vectors() {
    let vectors: Value =
        serde_json::from_str(&fixture_text("webhooks/signature_test_vectors.json")).unwrap();
    for vector in vectors["vectors"].as_array().unwrap() {
        let body = match vector["body"].as_str() {
            Some(body) => body.to_owned(),
            None => fixture_text(&format!(
                "webhooks/{}",
                vector["body_file"].as_str().unwrap()
            )),
        };
        let secret = vector["secret"].as_str().unwrap();
        let timestamp = vector["timestamp"].as_str().unwrap();
        let signature = sign(secret, timestamp, body.as_bytes());
        assert_eq!(
            signature, vector["expected_signature"],
            "{}",
            vector["name"]
        );
        if let Some(wrong) = vector["wrong_signature_body_only"].as_str() {
            assert_ne!(signature, wrong);
        }
    }
}

#[tokio::test]
async fn webhooks_are_chatwoots_events_in_the_fixture_shapes() {
    let api = Api::start();
    api.sim.add_agent(7, "John Smith", "john@acme.inc");
    let _receiver = api.hook(Some(SECRET));
    let contact = api.contact("crm-7f3a9c").await;
    let id = api.conversation(contact, "cons-1").await;
    let incoming = json!({"content": "Hi", "message_type": "incoming", "source_id": "cons:1:c-1"});
    let messages = format!("/conversations/{id}/messages");
    assert_eq!(api.post(&messages, incoming).await.0, 200);
    assert!(api.sim.agent_assign(id, Some(7)));
    let attributes = json!({"custom_attributes": {"cons_id": "cons-1", "stage": "in_progress"}});
    let path = format!("/conversations/{id}/custom_attributes");
    assert_eq!(api.post(&path, attributes).await.0, 200);
    api.sim.agent_reply(id, 7, "Hello", false).unwrap();
    api.sim.agent_reply(id, 7, "Internal note", true).unwrap();
    let path = format!("/conversations/{id}/toggle_status");
    assert_eq!(api.post(&path, json!({"status": "resolved"})).await.0, 200);
    api.sim.webhooks_settled().await;

    let events = emitted(&api.sim.webhook_log());
    assert_eq!(
        event_names(&events),
        [
            "conversation_created",
            "message_created",      // our incoming message
            "conversation_updated", // assignee
            "conversation_updated", // custom attributes
            "message_created",      // the agent's reply
            "conversation_updated", // what the reply moved
            "message_created",      // the private note
            "conversation_status_changed",
            "conversation_updated", // status
        ]
    );
    let payload = |i: usize| &events[i].1;

    assert_webhook_shape(payload(0), "conversation_created.json");
    assert_eq!(payload(0)["id"], id);
    assert_eq!(payload(0)["custom_attributes"]["cons_id"], "cons-1");
    assert_eq!(payload(0)["messages"], json!([]));

    assert_webhook_shape(payload(1), "message_created.incoming.json");
    assert_eq!(payload(1)["message_type"], "incoming");
    assert_eq!(payload(1)["source_id"], "cons:1:c-1");
    assert_eq!(payload(1)["conversation"]["id"], id);
    assert_eq!(payload(1)["sender"]["id"], contact);

    assert_webhook_shape(payload(2), "conversation_updated.assignee.json");
    assert_eq!(changed_columns(payload(2)), ["assignee_id", "updated_at"]);
    assert_eq!(
        change(payload(2), "assignee_id"),
        json!({"previous_value": null, "current_value": 7})
    );
    assert_eq!(payload(2)["meta"]["assignee"]["id"], 7);
    assert_eq!(payload(2)["meta"]["assignee_type"], "User");

    assert_webhook_shape(payload(3), "conversation_updated.custom_attributes.json");
    assert_eq!(
        changed_columns(payload(3)),
        ["updated_at", "custom_attributes"]
    );
    assert_eq!(
        change(payload(3), "custom_attributes")["current_value"],
        json!({"cons_id": "cons-1", "stage": "in_progress"})
    );

    assert_webhook_shape(payload(4), "message_created.outgoing.json");
    assert_eq!(payload(4)["message_type"], "outgoing");
    assert_eq!(
        payload(4)["sender"],
        json!({"id": 7, "name": "John Smith", "email": "john@acme.inc", "type": "user"})
    );
    assert_eq!(
        changed_columns(payload(5)),
        ["updated_at", "first_reply_created_at", "waiting_since"]
    );

    assert_webhook_shape(payload(6), "message_created.private_note.json");
    assert_eq!(payload(6)["private"], true);
    // The nested message is the last public one, not the note (as in Chatwoot).
    assert_eq!(
        payload(6)["conversation"]["messages"][0]["content"],
        "Hello"
    );

    assert_webhook_shape(payload(7), "conversation_status_changed.json");
    assert!(payload(7).as_object().unwrap()["changed_attributes"].is_null());
    assert_webhook_shape(payload(8), "conversation_updated.status.json");
    assert_eq!(changed_columns(payload(8)), ["status", "updated_at"]);
    assert_eq!(
        change(payload(8), "status"),
        json!({"previous_value": "open", "current_value": "resolved"})
    );
    assert_eq!(payload(7)["status"], "resolved");
    assert_eq!(payload(8)["status"], "resolved");

    // `updated_at` never goes back, and every save moves it.
    let conversation = |p: &Value| p.get("conversation").cloned().unwrap_or(p.clone());
    let times: Vec<f64> = events
        .iter()
        .map(|(_, p)| conversation(p)["updated_at"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|t| t[0] <= t[1]), "{times:?}");
    let updates: Vec<f64> = events
        .iter()
        .filter(|(event, _)| event == "conversation_updated")
        .map(|(_, p)| p["updated_at"].as_f64().unwrap())
        .collect();
    assert!(updates.windows(2).all(|t| t[0] < t[1]), "{updates:?}");
}

#[tokio::test]
async fn deliveries_are_signed_asynchronous_and_never_retried() {
    let api = Api::start();
    let contact = api.contact("c").await;
    // No webhook: nothing is emitted.
    api.conversation(contact, "cons-0").await;
    api.sim.webhooks_settled().await;
    assert!(api.sim.webhook_log().is_empty());

    let receiver = api.hook(Some(SECRET));
    receiver
        .faults()
        .next(1, Fault::Latency(Duration::from_secs(1)));
    let started = Instant::now();
    let id = api.conversation(contact, "cons-1").await;
    // The REST answer came while its webhook was still on its way.
    assert_eq!(api.sim.webhook_log()[0].outcome, WebhookOutcome::Pending);
    api.sim.webhooks_settled().await;
    assert!(started.elapsed() >= Duration::from_secs(1));

    let sent = api.sim.webhook_log()[0].clone();
    assert_eq!(sent.outcome, WebhookOutcome::Answered(200));
    assert_eq!(sent.conversation_id(), Some(id));
    let request = &receiver.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/webhook/chatwoot")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("accept"), Some("application/json"));
    let delivery = request.header("x-chatwoot-delivery").unwrap();
    assert_eq!(delivery, sent.delivery_id);
    uuid::Uuid::parse_str(delivery).unwrap();
    let timestamp = request.header("x-chatwoot-timestamp").unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now - timestamp.parse::<i64>().unwrap()).abs() < 60);
    assert_eq!(
        request.header("x-chatwoot-signature").unwrap(),
        sign(SECRET, timestamp, &request.body)
    );
    assert_eq!(request.body, sent.body);

    // The receiver fails: the answer is logged, nothing is sent again.
    let failure = Fault::Status {
        status: 500,
        body: "{}".to_owned(),
    };
    receiver.faults().next(2, failure);
    assert!(api.sim.agent_set_status(id, SimStatus::Pending));
    api.sim.webhooks_settled().await;
    let log = api.sim.webhook_log();
    assert_eq!(log.len(), 3);
    assert!(
        log[1..]
            .iter()
            .all(|w| w.outcome == WebhookOutcome::Answered(500))
    );
    assert_eq!(receiver.requests().len(), 3);

    // Without a secret: unsigned, as Chatwoot before 4.12.
    let url = format!("{}/webhook/chatwoot", receiver.base_url);
    api.sim.set_webhook(Some(SimWebhook { url, secret: None }));
    assert!(api.sim.agent_set_status(id, SimStatus::Open));
    api.sim.webhooks_settled().await;
    let requests = receiver.requests();
    let unsigned = requests.last().unwrap();
    assert!(unsigned.header("x-chatwoot-delivery").is_some());
    assert_eq!(unsigned.header("x-chatwoot-signature"), None);
    assert_eq!(unsigned.header("x-chatwoot-timestamp"), None);

    // Nobody listening: failed, and that is all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhook", closed.local_addr().unwrap());
    drop(closed);
    api.sim.set_webhook(Some(SimWebhook { url, secret: None }));
    assert!(api.sim.agent_set_status(id, SimStatus::Resolved));
    api.sim.webhooks_settled().await;
    let log = api.sim.webhook_log();
    assert!(
        matches!(log.last().unwrap().outcome, WebhookOutcome::Failed(_)),
        "{log:?}"
    );
}

#[tokio::test]
async fn webhook_bodies_are_rails_json() {
    let (api, id, _receiver) = hooked_conversation(None).await;
    api.sim.contact_reply(id, "Цена <10 & >5").unwrap();
    api.sim.webhooks_settled().await;
    let sent = api.sim.webhook_log()[0].clone();
    let body = String::from_utf8(sent.body.to_vec()).unwrap();
    assert!(
        body.contains(r#""content":"Цена \u003c10 \u0026 \u003e5""#),
        "{body}"
    );
    assert!(!body.contains('<') && !body.contains('\n') && !body.contains("\": "));
    assert_eq!(sent.json().unwrap()["content"], "Цена <10 & >5");
}

#[tokio::test]
async fn agent_actions_emit_their_webhooks() {
    let (api, id, _receiver) = hooked_conversation(Some(SECRET)).await;
    api.sim.add_team(2, "Accounting");

    assert!(api.sim.agent_set_team(id, Some(2)));
    assert!(!api.sim.agent_set_team(id, Some(99)));
    assert!(api.sim.agent_set_labels(id, &["vip", "billing"]));
    // Nothing changes, nothing is sent.
    assert!(api.sim.agent_set_labels(id, &["vip", "billing"]));
    let mut attributes = serde_json::Map::new();
    attributes.insert("cons_id".to_owned(), json!("cons-1"));
    attributes.insert("consultation_date".to_owned(), json!("2026-12-01"));
    assert!(api.sim.agent_set_custom_attributes(id, attributes));
    assert!(api.sim.agent_assign(id, Some(7)));
    assert!(api.sim.agent_assign(id, None));
    assert!(!api.sim.agent_assign(id, Some(99)));
    assert!(api.sim.agent_set_status(id, SimStatus::Resolved));
    // The client writes again: Chatwoot reopens the conversation.
    api.sim.contact_reply(id, "One more question").unwrap();
    assert!(!api.sim.agent_set_status(999, SimStatus::Open));
    api.sim.webhooks_settled().await;

    let events = emitted(&api.sim.webhook_log());
    assert_eq!(
        event_names(&events),
        [
            "conversation_updated", // team
            "conversation_updated", // labels
            "conversation_updated", // custom attributes
            "conversation_updated", // assigned
            "conversation_updated", // unassigned
            "conversation_status_changed",
            "conversation_updated", // resolved
            "message_created",
            "conversation_status_changed",
            "conversation_updated", // reopened
        ]
    );
    let payload = |i: usize| &events[i].1;
    assert_eq!(changed_columns(payload(0)), ["updated_at", "team_id"]);
    assert_eq!(payload(0)["meta"]["team"]["id"], 2);
    assert_eq!(payload(0)["meta"]["team"]["name"], "Accounting");
    assert_eq!(
        changed_columns(payload(1)),
        ["updated_at", "cached_label_list"]
    );
    assert_eq!(payload(1)["labels"], json!(["vip", "billing"]));
    assert_eq!(
        change(payload(2), "custom_attributes")["current_value"]["consultation_date"],
        "2026-12-01"
    );
    assert_eq!(
        change(payload(4), "assignee_id"),
        json!({"previous_value": 7, "current_value": null})
    );
    assert!(payload(4)["meta"]["assignee"].is_null());
    assert_eq!(payload(5)["status"], "resolved");
    assert_eq!(payload(7)["message_type"], "incoming");
    assert_eq!(payload(7)["conversation"]["status"], "open");
    assert_eq!(
        change(payload(9), "status"),
        json!({"previous_value": "resolved", "current_value": "open"})
    );
}

/// A conversation, then `notes` private notes under `chaos` (each one `message_created`).
async fn notes_under(chaos: WebhookChaos, notes: usize) -> (Api, SimServer) {
    let (api, id, receiver) = hooked_conversation(Some(SECRET)).await;
    api.sim.set_webhook_chaos(chaos);
    for n in 0..notes {
        api.sim
            .agent_reply(id, 7, &format!("note {n}"), true)
            .unwrap();
    }
    api.sim.webhooks_settled().await;
    (api, receiver)
}

#[tokio::test]
async fn seeded_chaos_duplicates_and_drops_the_same_way_every_time() {
    let chaos = WebhookChaos {
        duplicate_probability: 0.3,
        drop_probability: 0.3,
        seed: 42,
        ..WebhookChaos::default()
    };
    let (api, receiver) = notes_under(chaos, 40).await;
    let log = api.sim.webhook_log();
    let requests = receiver.requests();
    let dropped: Vec<&SentWebhook> = log
        .iter()
        .filter(|w| w.outcome == WebhookOutcome::Dropped)
        .collect();
    let copies: Vec<&SentWebhook> = log.iter().filter(|w| w.duplicate).collect();
    assert!(!dropped.is_empty() && !copies.is_empty(), "{log:?}");
    assert_eq!(requests.len(), log.len() - dropped.len());
    for lost in &dropped {
        assert!(!requests.iter().any(|r| r.body == lost.body));
    }
    for copy in &copies {
        let original = log
            .iter()
            .find(|w| w.sequence == copy.sequence && !w.duplicate)
            .unwrap();
        assert_eq!(original.body, copy.body);
        assert_ne!(original.delivery_id, copy.delivery_id);
        let received = requests.iter().filter(|r| r.body == copy.body).count();
        assert_eq!(received, 2);
    }

    let fate = |log: &[SentWebhook]| {
        log.iter()
            .map(|w| {
                (
                    w.sequence,
                    w.duplicate,
                    w.outcome == WebhookOutcome::Dropped,
                )
            })
            .collect::<Vec<_>>()
    };
    let (again, _receiver) = notes_under(chaos, 40).await;
    assert_eq!(fate(&log), fate(&again.sim.webhook_log()));
}

#[tokio::test]
async fn extra_delays_reorder_deliveries() {
    let chaos = WebhookChaos {
        max_extra_delay: Duration::from_millis(400),
        seed: 7,
        ..WebhookChaos::default()
    };
    let (api, receiver) = notes_under(chaos, 12).await;
    let log = api.sim.webhook_log();
    let arrival: Vec<u64> = receiver
        .requests()
        .iter()
        .map(|r| log.iter().find(|w| w.body == r.body).unwrap().sequence)
        .collect();
    let mut sorted = arrival.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..12).collect::<Vec<u64>>(), "each exactly once");
    assert_ne!(arrival, sorted, "the delays did not reorder anything");
}

#[tokio::test]
async fn a_payload_is_the_state_of_its_moment() {
    let (api, id, _receiver) = hooked_conversation(None).await;
    api.sim.set_webhook_chaos(WebhookChaos {
        max_extra_delay: Duration::from_millis(200),
        seed: 3,
        ..WebhookChaos::default()
    });
    let statuses = [
        SimStatus::Resolved,
        SimStatus::Open,
        SimStatus::Pending,
        SimStatus::Resolved,
    ];
    for status in statuses {
        assert!(api.sim.agent_set_status(id, status));
    }
    api.sim.webhooks_settled().await;
    let reported: Vec<String> = emitted(&api.sim.webhook_log())
        .iter()
        .filter(|(event, _)| event == "conversation_status_changed")
        .map(|(_, p)| p["status"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    assert_eq!(reported, expected);
}

#[tokio::test]
async fn resend_replays_or_refreshes_an_earlier_delivery() {
    let api = Api::start();
    let contact = api.contact("c").await;
    let receiver = api.hook(Some(SECRET));
    api.conversation(contact, "cons-1").await;
    api.sim.webhooks_settled().await;
    let original = api.sim.webhook_log()[0].clone();

    let replay = api.sim.resend(&original.delivery_id, false).await.unwrap();
    assert!(replay.resent);
    assert_eq!(replay.outcome, WebhookOutcome::Answered(200));
    assert_eq!(
        (&replay.delivery_id, &replay.timestamp, &replay.signature),
        (
            &original.delivery_id,
            &original.timestamp,
            &original.signature
        )
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    let sorted_headers = |i: usize| {
        let mut headers = requests[i].headers.clone();
        headers.sort();
        headers
    };
    assert_eq!(sorted_headers(0), sorted_headers(1));
    assert_eq!(requests[0].body, requests[1].body);

    let fresh = api.sim.resend(&original.delivery_id, true).await.unwrap();
    assert_ne!(fresh.delivery_id, original.delivery_id);
    assert_eq!(fresh.body, original.body);
    let timestamp = fresh.timestamp.clone().unwrap();
    assert_eq!(
        fresh.signature.unwrap(),
        sign(SECRET, &timestamp, &original.body)
    );
    assert!(api.sim.resend("no-such-delivery", true).await.is_none());
    assert_eq!(api.sim.webhook_log().len(), 3);
}
