//! The 1C simulator on the wire: IIS and Basic auth in front, JSON only when asked for,
//! percent-decoding with a literal `+`, envelopes and value formats against
//! `../shared/fixtures/onec/`, `$filter`/`$select`/`$orderby`/`$top`/`$skip`, writes
//! (POST, PATCH, DELETE, registers), the daily limit, operator actions, faults, the
//! count of calls to what it does not simulate, and the `consultation.updated` events it
//! pushes like the contract's 1C extension.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on anything unexpected"
)]

use chrono::NaiveDateTime;
use cons_sim::onec::{
    CONSULTATIONS, COUNTERPARTIES, MARKER_FIELD, OnecSim, OnecSimConfig, RESCHEDULES,
};
use cons_sim::webhooks::sign;
use cons_sim::{Fault, SimWebhook, SimWebhooks, WebhookOutcome, serve_recorder};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::time::Duration;

const USER: &str = "Интеграция";
const PASSWORD: &str = "пароль+1";
const SUBSCRIBER: &str = "3f9a6c12-a7b4-11f0-9c3e-00155d0a1c07";
const FOLDER: &str = "7ccd31ca-887b-11eb-938b-00e04cd03b68";

struct Odata {
    sim: OnecSim,
    http: reqwest::Client,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `(status, odata.error.code)`
    fn error(&self) -> (u16, String) {
        let body = self.json();
        (
            self.status,
            body["odata.error"]["code"].as_str().unwrap().to_owned(),
        )
    }

    fn message(&self) -> String {
        self.json()["odata.error"]["message"]["value"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Percent-encodes as UTF-8 everything but unreserved characters and `keep`.
fn enc(text: &str, keep: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric()
            || b"-._~".contains(&byte)
            || keep.as_bytes().contains(&byte)
        {
            out.push(char::from(byte));
        } else {
            write!(out, "%{byte:02X}").unwrap();
        }
    }
    out
}

/// A query string from options, values encoded (space `%20`, never `+`).
fn query(options: &[(&str, &str)]) -> String {
    options
        .iter()
        .map(|(name, value)| format!("{name}={}", enc(value, "'(),")))
        .collect::<Vec<_>>()
        .join("&")
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../../shared/fixtures/onec/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn local(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap()
}

impl Odata {
    fn start() -> Self {
        let sim = OnecSim::start(OnecSimConfig {
            bind: "127.0.0.1:0".to_owned(),
            publication: "int/rbd_sl_copy".to_owned(),
            user: USER.to_owned(),
            password: PASSWORD.to_owned(),
            workers: 1,
        })
        .unwrap();
        sim.freeze_clock(local("2026-11-26T10:15:02"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Odata { sim, http }
    }

    /// `<base><set, encoded><rest>?<query>`
    fn url(&self, set: &str, rest: &str, query: &str) -> String {
        let mut url = format!("{}{}{rest}", self.sim.base_url(), enc(set, ""));
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer {
            status,
            headers,
            text,
        }
    }

    fn authed(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .basic_auth(USER, Some(PASSWORD))
    }

    async fn get(&self, set: &str, rest: &str, options: &[(&str, &str)]) -> Answer {
        let mut all = vec![("$format", "json")];
        all.extend_from_slice(options);
        self.send(self.authed(reqwest::Method::GET, &self.url(set, rest, &query(&all))))
            .await
    }

    async fn list(&self, set: &str, options: &[(&str, &str)]) -> Vec<Value> {
        let answer = self.get(set, "", options).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.json()["value"].as_array().unwrap().clone()
    }

    async fn write(&self, method: reqwest::Method, set: &str, rest: &str, body: &str) -> Answer {
        let request = self
            .authed(method, &self.url(set, rest, "$format=json"))
            .header("Content-Type", "application/json")
            .body(body.to_owned());
        self.send(request).await
    }

    async fn post(&self, set: &str, body: &Value) -> Answer {
        self.write(reqwest::Method::POST, set, "", &body.to_string())
            .await
    }

    async fn patch(&self, set: &str, key: &str, body: &Value) -> Answer {
        self.write(
            reqwest::Method::PATCH,
            set,
            &format!("(guid'{key}')"),
            &body.to_string(),
        )
        .await
    }

    /// A consultation for `subscriber` on `day` (local date) at 11:00.
    async fn consultation(&self, subscriber: &str, day: &str, marker: &str) -> Answer {
        let mut body = fixture("document.create.request.json");
        body["Абонент_Key"] = json!(subscriber);
        body["ДатаКонсультации"] = json!(format!("{day}T11:00:00"));
        body[MARKER_FIELD] = json!(marker);
        self.post(CONSULTATIONS, &body).await
    }
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn basic_auth_is_utf8_and_refusals_are_not_json() {
    let odata = Odata::start();
    let url = odata.url(COUNTERPARTIES, "", "$format=json");
    let anonymous = odata.send(odata.http.get(&url)).await;
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    assert!(serde_json::from_str::<Value>(&anonymous.text).is_err());
    let wrong = odata
        .send(odata.http.get(&url).basic_auth(USER, Some("пароль")))
        .await;
    assert_eq!(wrong.status, 401);
    let right = odata.send(odata.authed(reqwest::Method::GET, &url)).await;
    assert_eq!(right.status, 200, "{}", right.text);
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn json_only_when_asked_for() {
    let odata = Odata::start();
    let bare = odata
        .send(odata.authed(reqwest::Method::GET, &odata.url(COUNTERPARTIES, "", "")))
        .await;
    assert_eq!(bare.status, 200);
    assert!(bare.text.starts_with("<?xml"), "{}", bare.text);
    assert!(!bare.header("content-type").unwrap().contains("json"));

    let by_accept = odata
        .send(
            odata
                .authed(reqwest::Method::GET, &odata.url(COUNTERPARTIES, "", ""))
                .header("Accept", "application/json"),
        )
        .await;
    assert_eq!(by_accept.json()["value"], json!([]));
    let by_format = odata.get(COUNTERPARTIES, "", &[]).await;
    assert_eq!(
        by_format.header("content-type"),
        Some("application/json;charset=utf-8")
    );
    assert_eq!(by_format.header("dataserviceversion"), Some("3.0"));
    assert!(by_format.header("etag").is_none());
    let metadata = by_format.json()["odata.metadata"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        metadata.ends_with("/odata/standard.odata/$metadata#Catalog_Контрагенты"),
        "{metadata}"
    );

    // an error without JSON asked for comes as Atom-style XML
    let missing = odata
        .send(odata.authed(
            reqwest::Method::GET,
            &odata.url(
                CONSULTATIONS,
                "(guid'5e8c7d14-cab2-11f0-9c3e-00155d0a1c07')",
                "",
            ),
        ))
        .await;
    assert_eq!(missing.status, 404);
    assert!(missing.text.contains("<m:code>9</m:code>"));

    let service = odata
        .send(odata.authed(
            reqwest::Method::GET,
            &format!("{}?$format=json", odata.sim.base_url()),
        ))
        .await;
    let service = service.json();
    let names: Vec<&str> = service["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&CONSULTATIONS) && names.contains(&COUNTERPARTIES));
    let csdl = odata
        .send(odata.authed(
            reqwest::Method::GET,
            &format!("{}$metadata", odata.sim.base_url()),
        ))
        .await;
    assert!(
        csdl.text
            .contains("<EntityType Name=\"Document_ТелефонныйЗвонок\">")
    );
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn counterparty_create_and_filter_have_the_fixture_shape() {
    let odata = Odata::start();
    let created = odata
        .post(COUNTERPARTIES, &fixture("counterparty.create.request.json"))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let body = created.json();
    let expected = fixture("counterparty.create.response.json");
    assert_eq!(keys(&body), keys(&expected));
    let ref_key = body["Ref_Key"].as_str().unwrap().to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&ref_key).unwrap().get_version_num(),
        1
    );
    assert_eq!(body["Code"], "000000001");
    assert_eq!(body["DataVersion"], "AAAAAAAAAAA=");
    assert_eq!(body["КодАбонентаClobus"], "10240");
    assert_eq!(
        body["ОсновноеКонтактноеЛицо_Key"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert!(
        body["odata.metadata"]
            .as_str()
            .unwrap()
            .ends_with("#Catalog_Контрагенты/@Element")
    );
    let rows = body["КонтактнаяИнформация"].as_array().unwrap();
    assert_eq!(keys(&rows[0]), keys(&expected["КонтактнаяИнформация"][0]));
    assert_eq!(rows[1]["Ref_Key"], json!(ref_key));
    assert_eq!(rows[1]["LineNumber"], "2");
    assert_eq!(rows[1]["АдресЭП"], "");
    // Location carries the Cyrillic set name as raw UTF-8 bytes
    let location = created.headers.get("location").unwrap().as_bytes();
    let location = std::str::from_utf8(location).unwrap();
    assert!(
        location.ends_with(&format!("Catalog_Контрагенты(guid'{ref_key}')")),
        "{location}"
    );

    let filter = format!(
        "КодАбонентаClobus eq 10240 and ИНН eq '303045154' and Parent_Key eq guid'{FOLDER}' and DeletionMark eq false"
    );
    let select = "Ref_Key,Description,ИНН,КодАбонентаClobus,Parent_Key,DeletionMark";
    let found = odata
        .get(
            COUNTERPARTIES,
            "",
            &[("$select", select), ("$filter", &filter)],
        )
        .await;
    let found = found.json();
    let expected = fixture("counterparty.filter.response.json");
    assert_eq!(keys(&found), keys(&expected));
    assert_eq!(keys(&found["value"][0]), keys(&expected["value"][0]));
    assert_eq!(found["value"][0]["Ref_Key"], json!(ref_key));
    assert_eq!(
        odata
            .sim
            .counterparty(uuid::Uuid::parse_str(&ref_key).unwrap())
            .unwrap()["ИНН"],
        "303045154"
    );
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn document_create_get_and_patch_follow_the_fixtures() {
    let odata = Odata::start();
    let created = odata
        .post(CONSULTATIONS, &fixture("document.create.request.json"))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let body = created.json();
    let expected = fixture("document.create.response.json");
    assert_eq!(keys(&body), keys(&expected));
    for (name, value) in expected.as_object().unwrap() {
        if !["odata.metadata", "Ref_Key", "Number"].contains(&name.as_str()) {
            assert_eq!(&body[name], value, "{name}");
        }
    }
    assert_eq!(body["Number"], "ЦЛ00-000001");
    let ref_key = body["Ref_Key"].as_str().unwrap().to_owned();
    let got = odata
        .get(CONSULTATIONS, &format!("(guid'{ref_key}')"), &[])
        .await;
    assert_eq!(
        got.json(),
        body,
        "a read right after the create is the create's answer"
    );

    odata
        .sim
        .advance_clock(chrono::Duration::minutes(16) + chrono::Duration::seconds(25));
    let patched = odata
        .patch(
            CONSULTATIONS,
            &ref_key,
            &fixture("document.patch.request.json"),
        )
        .await;
    assert_eq!(patched.status, 200);
    let patched = patched.json();
    let expected = fixture("document.patch.response.json");
    for (name, value) in expected.as_object().unwrap() {
        if !["odata.metadata", "Ref_Key", "Number"].contains(&name.as_str()) {
            assert_eq!(&patched[name], value, "{name}");
        }
    }
    // unknown properties and Ref_Key are ignored; an empty PATCH still counts as a write
    let other = "11111111-1111-1111-1111-111111111111";
    let ignored = odata
        .patch(
            CONSULTATIONS,
            &ref_key,
            &json!({"Ref_Key": other, "НетТакого": 1}),
        )
        .await
        .json();
    assert_eq!(ignored["Ref_Key"], json!(ref_key));
    assert_eq!(ignored["DataVersion"], "AAAAAAAAAAI=");
    // DeletionMark both ways; a marked document is still listed
    let marked = odata
        .patch(CONSULTATIONS, &ref_key, &json!({"DeletionMark": true}))
        .await
        .json();
    assert_eq!(marked["DeletionMark"], true);
    assert_eq!(odata.list(CONSULTATIONS, &[]).await.len(), 1);
    let unmarked = odata
        .patch(CONSULTATIONS, &ref_key, &json!({"DeletionMark": false}))
        .await
        .json();
    assert_eq!(unmarked["DeletionMark"], false);
    assert_eq!(unmarked["DataVersion"], "AAAAAAAAAAQ=");
    // a tabular part is replaced whole; LineNumber must run 1..n
    let rows = json!({"ВопросыИОтветы": [{"LineNumber": "1", "Вопрос": "a"}, {"LineNumber": 2, "Вопрос": "b"}]});
    assert_eq!(
        odata.patch(CONSULTATIONS, &ref_key, &rows).await.json()["ВопросыИОтветы"][1]["LineNumber"],
        "2"
    );
    let one = json!({"ВопросыИОтветы": [{"LineNumber": "1", "Ответ": "c"}]});
    let replaced = odata.patch(CONSULTATIONS, &ref_key, &one).await.json();
    assert_eq!(
        replaced["ВопросыИОтветы"],
        json!([{"Ref_Key": ref_key, "LineNumber": "1", "Вопрос": "", "Ответ": "c"}])
    );
    let gap = odata
        .patch(
            CONSULTATIONS,
            &ref_key,
            &json!({"ВопросыИОтветы": [{"LineNumber": "2"}]}),
        )
        .await;
    assert_eq!(gap.status, 400);
    let missing = odata
        .patch(
            CONSULTATIONS,
            &ref_key,
            &json!({"ВопросыИОтветы": [{"Вопрос": "x"}]}),
        )
        .await;
    assert_eq!(missing.error(), (500, "-1".to_owned()));
    assert_eq!(odata.sim.consultation_count(), 1);
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn bad_bodies_are_refused_like_1c() {
    let odata = Odata::start();
    let bad_guid = odata
        .post(CONSULTATIONS, &json!({"Менеджер_Key": "FRONT"}))
        .await;
    assert_eq!(bad_guid.json(), fixture("error.400.bad_guid.json"));
    let bad_bool = odata.post(CONSULTATIONS, &json!({"Входящий": "да"})).await;
    assert_eq!(bad_bool.error(), (400, "1".to_owned()));
    assert!(bad_bool.message().contains("'да'"));
    let broken = odata
        .write(reqwest::Method::POST, CONSULTATIONS, "", "{\"Тема\": ")
        .await;
    assert_eq!(broken.error(), (500, "-1".to_owned()));
    let array = odata.post(CONSULTATIONS, &json!({"Тема": ["x"]})).await;
    assert_eq!(array.json(), fixture("error.500.internal.json"));
    assert_eq!(odata.sim.consultation_count(), 0);
    // strings are truncated silently; a non-number in an Int64 is stored as 0
    let long = odata
        .post(
            COUNTERPARTIES,
            &json!({"Description": "д".repeat(400), "КодАбонентаClobus": "abc"}),
        )
        .await;
    assert_eq!(long.status, 201);
    assert_eq!(
        long.json()["Description"].as_str().unwrap().chars().count(),
        150
    );
    assert_eq!(long.json()["КодАбонентаClobus"], "0");
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn unknown_keys_sets_and_methods() {
    let odata = Odata::start();
    let absent = odata
        .get(
            CONSULTATIONS,
            "(guid'5e8c7d14-cab2-11f0-9c3e-00155d0a1c07')",
            &[],
        )
        .await;
    assert_eq!(absent.json(), fixture("error.404.not_found.json"));
    let absent_patch = odata
        .patch(
            CONSULTATIONS,
            "5e8c7d14-cab2-11f0-9c3e-00155d0a1c07",
            &json!({}),
        )
        .await;
    assert_eq!(absent_patch.error(), (404, "9".to_owned()));
    assert_eq!(
        odata.get(CONSULTATIONS, "(guid'FRONT')", &[]).await.status,
        400
    );
    assert_eq!(odata.get(CONSULTATIONS, "(5)", &[]).await.status, 400);
    assert_eq!(odata.sim.unimplemented_calls(), 0);
    // real 1C has these; the simulator says 404 and counts them
    assert_eq!(odata.get("Catalog_Пользователи", "", &[]).await.status, 404);
    assert_eq!(
        odata
            .get("Document_ТелефонныйЗвонок_КонсультацииИТС", "", &[])
            .await
            .status,
        404
    );
    let put = odata
        .write(
            reqwest::Method::PUT,
            CONSULTATIONS,
            "(guid'5e8c7d14-cab2-11f0-9c3e-00155d0a1c07')",
            "{}",
        )
        .await;
    assert_eq!(put.status, 404);
    assert_eq!(odata.sim.unimplemented_calls(), 3);
}

#[tokio::test]
async fn url_limits_and_characters_iis_refuses() {
    let odata = Odata::start();
    let long = "x".repeat(2100);
    let too_long = odata
        .get(
            COUNTERPARTIES,
            "",
            &[("$filter", &format!("ИНН eq '{long}'"))],
        )
        .await;
    assert_eq!(too_long.status, 404);
    assert!(too_long.text.contains("<html>") || too_long.text.contains("<!DOCTYPE html>"));
    odata.sim.set_url_limits(50, 4096);
    let shorter = odata
        .get(
            COUNTERPARTIES,
            "",
            &[("$filter", "ИНН eq '303045154' and Code eq '000000001'")],
        )
        .await;
    assert_eq!(shorter.status, 404);
    odata.sim.set_url_limits(2048, 4096);
    let plus = odata
        .send(odata.authed(
            reqwest::Method::GET,
            &format!("{}Catalog+X?$format=json", odata.sim.base_url()),
        ))
        .await;
    assert_eq!(plus.status, 404);
    assert!(serde_json::from_str::<Value>(&plus.text).is_err());
    // no such publication
    let elsewhere = odata
        .send(odata.http.get(format!(
            "http://127.0.0.1:{}/other/odata/standard.odata/",
            odata.sim.port()
        )))
        .await;
    assert_eq!(elsewhere.status, 404);
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn query_strings_decode_as_utf8_with_a_literal_plus() {
    let odata = Odata::start();
    let mut phone = fixture("counterparty.create.request.json");
    phone["ИНН"] = json!("+998 90");
    assert_eq!(odata.post(COUNTERPARTIES, &phone).await.status, 201);
    // %2B is a plus, %20 a space
    assert_eq!(
        odata
            .list(COUNTERPARTIES, &[("$filter", "ИНН eq '+998 90'")])
            .await
            .len(),
        1
    );
    // form encoding (space as +) is read literally and breaks the filter
    let form = format!("$format=json&$filter={}+eq+'x'", enc("ИНН", ""));
    let answer = odata
        .send(odata.authed(reqwest::Method::GET, &odata.url(COUNTERPARTIES, "", &form)))
        .await;
    assert_eq!(answer.status, 400);
    let recorded = odata.sim.requests();
    let last = recorded.last().unwrap();
    assert_eq!(
        last.path,
        "/int/rbd_sl_copy/odata/standard.odata/Catalog_Контрагенты"
    );
    assert!(last.query.contains("+eq+"));
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn filters_follow_1c() {
    let odata = Odata::start();
    for (code, inn) in [(1, "O'Neil"), (2, "200000000"), (3, "300000000")] {
        let body = json!({"Description": format!("n{code}"), "ИНН": inn, "КодАбонентаClobus": code, "Parent_Key": FOLDER});
        assert_eq!(odata.post(COUNTERPARTIES, &body).await.status, 201);
    }
    let count = |options: &'static [(&'static str, &'static str)]| {
        let odata = &odata;
        async move { odata.list(COUNTERPARTIES, options).await.len() }
    };
    assert_eq!(count(&[("$filter", "ИНН eq 'O''Neil'")]).await, 1);
    assert_eq!(count(&[("$filter", "КодАбонентаClobus ge 2")]).await, 2);
    assert_eq!(
        count(&[(
            "$filter",
            "КодАбонентаClobus gt 1 and (ИНН eq '200000000' or ИНН eq 'x')"
        )])
        .await,
        1
    );
    assert_eq!(
        count(&[("$filter", "not (КодАбонентаClobus eq 1)")]).await,
        2
    );
    assert_eq!(
        count(&[(
            "$filter",
            "КодАбонентаClobus ne 1 and DeletionMark eq false"
        )])
        .await,
        2
    );
    assert_eq!(
        count(&[("$filter", "substringof('000', ИНН) eq true")]).await,
        2
    );
    assert_eq!(
        count(&[("$filter", "startswith(Description, 'n')")]).await,
        3
    );
    assert_eq!(
        count(&[(
            "$filter",
            "Parent_Key eq guid'7ccd31ca-887b-11eb-938b-00e04cd03b68'"
        )])
        .await,
        3
    );
    assert_eq!(count(&[("$filter", "Code le '000000002'")]).await, 2);
    // a datetime against a string answers 200 with nothing
    assert_eq!(
        count(&[("$filter", "ИНН eq datetime'2026-11-19T10:00:00'")]).await,
        0
    );

    let refused: &[(&str, (u16, &str))] = &[
        ("ИНН eq 200000000", (400, "14")),
        ("КодАбонентаClobus eq '2'", (400, "14")),
        (
            "Parent_Key gt guid'7ccd31ca-887b-11eb-938b-00e04cd03b68'",
            (400, "14"),
        ),
        ("НетТакого eq 1", (400, "6")),
        ("ИНН eq 'unclosed", (400, "14")),
        ("tolower(ИНН) eq 'x'", (400, "21")),
    ];
    for (filter, expected) in refused {
        let answer = odata.get(COUNTERPARTIES, "", &[("$filter", filter)]).await;
        assert_eq!(
            answer.error(),
            (expected.0, expected.1.to_owned()),
            "{filter}"
        );
    }
    assert_eq!(
        odata
            .get(COUNTERPARTIES, "", &[("$filter", "ИНН eq '1' and")])
            .await
            .json(),
        fixture("error.400.filter_syntax.json")
    );
    assert_eq!(odata.sim.unimplemented_calls(), 0);
    // what 1C has but the simulator does not: refused and counted
    assert_eq!(
        odata
            .get(COUNTERPARTIES, "", &[("$filter", "year(Code) eq 1")])
            .await
            .status,
        400
    );
    assert_eq!(
        odata
            .get(COUNTERPARTIES, "", &[("$filter", "Parent/Code eq '1'")])
            .await
            .status,
        400
    );
    assert_eq!(
        odata
            .get(COUNTERPARTIES, "", &[("$expand", "Parent")])
            .await
            .status,
        400
    );
    assert_eq!(odata.sim.unimplemented_calls(), 3);
}

#[tokio::test]
async fn select_orderby_top_skip_count() {
    let odata = Odata::start();
    for (code, inn) in [(5, "b"), (3, "a"), (9, "a"), (1, "c")] {
        let body = json!({"ИНН": inn, "КодАбонентаClobus": code});
        assert_eq!(odata.post(COUNTERPARTIES, &body).await.status, 201);
    }
    let codes = |rows: &[Value]| {
        rows.iter()
            .map(|r| r["КодАбонентаClobus"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let ordered = odata
        .list(
            COUNTERPARTIES,
            &[("$orderby", "ИНН asc, КодАбонентаClobus desc")],
        )
        .await;
    assert_eq!(codes(&ordered), ["9", "3", "5", "1"]);
    // $skip applies before $top whatever their order in the URL
    let page = odata
        .list(
            COUNTERPARTIES,
            &[
                ("$top", "2"),
                ("$orderby", "КодАбонентаClobus"),
                ("$skip", "1"),
            ],
        )
        .await;
    assert_eq!(codes(&page), ["3", "5"]);
    let selected = odata
        .list(
            COUNTERPARTIES,
            &[("$select", "Ref_Key, ИНН"), ("$top", "1")],
        )
        .await;
    assert_eq!(keys(&selected[0]), ["Ref_Key", "ИНН"]);
    let all_but_parts = odata
        .list(COUNTERPARTIES, &[("$select", "**"), ("$top", "1")])
        .await;
    assert!(
        all_but_parts[0].get("КонтактнаяИнформация").is_none()
            && all_but_parts[0].get("Code").is_some()
    );
    let unknown = odata
        .get(COUNTERPARTIES, "", &[("$select", "Ref_Key,Нет")])
        .await;
    assert_eq!(unknown.error(), (400, "6".to_owned()));
    assert_eq!(unknown.message(), "Сегмент пути Нет не найден!");
    assert_eq!(
        odata
            .get(COUNTERPARTIES, "", &[("$orderby", "Нет asc")])
            .await
            .error(),
        (400, "6".to_owned())
    );
    assert_eq!(
        odata
            .get(COUNTERPARTIES, "", &[("$top", "-1")])
            .await
            .error(),
        (400, "14".to_owned())
    );
    // $inlinecount: a string, and 1C then ignores $top/$skip
    let counted = odata
        .get(
            COUNTERPARTIES,
            "",
            &[
                ("$inlinecount", "allpages"),
                ("$top", "1"),
                ("$filter", "ИНН eq 'a'"),
            ],
        )
        .await;
    let counted = counted.json();
    assert_eq!(counted["odata.count"], "2");
    assert_eq!(counted["value"].as_array().unwrap().len(), 2);
    let bare = odata
        .get(COUNTERPARTIES, "/$count", &[("$filter", "ИНН eq 'a'")])
        .await;
    assert_eq!(bare.text, "2");
    let one = odata
        .get(
            COUNTERPARTIES,
            "",
            &[("$filter", "ИНН eq 'c'"), ("$select", "Ref_Key")],
        )
        .await
        .json();
    let key = one["value"][0]["Ref_Key"].as_str().unwrap().to_owned();
    let element = odata
        .get(
            COUNTERPARTIES,
            &format!("(guid'{key}')"),
            &[("$select", "ИНН")],
        )
        .await
        .json();
    assert_eq!(keys(&element), ["odata.metadata", "ИНН"]);
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn unordered_reads_are_deterministic_but_not_insertion_order() {
    let odata = Odata::start();
    for index in 0..20 {
        let body = json!({"ИНН": format!("{index:09}")});
        assert_eq!(odata.post(COUNTERPARTIES, &body).await.status, 201);
    }
    let inns = |rows: Vec<Value>| {
        rows.into_iter()
            .map(|r| r["ИНН"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let first = inns(odata.list(COUNTERPARTIES, &[]).await);
    let second = inns(odata.list(COUNTERPARTIES, &[]).await);
    assert_eq!(first, second);
    let mut sorted = first.clone();
    sorted.sort();
    assert_ne!(first, sorted);
}

#[tokio::test]
async fn the_daily_limit_counts_live_documents_per_subscriber_and_day() {
    let odata = Odata::start();
    let mut keys = Vec::new();
    for index in 0..3 {
        let created = odata
            .consultation(SUBSCRIBER, "2026-11-27", &format!("m{index}"))
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        keys.push(created.json()["Ref_Key"].as_str().unwrap().to_owned());
    }
    let fourth = odata.consultation(SUBSCRIBER, "2026-11-27", "m3").await;
    assert_eq!(fourth.error(), (500, "-1".to_owned()));
    assert!(
        fourth
            .message()
            .starts_with("Ошибка при выполнении обработчика - 'ПередЗаписью'"),
        "{}",
        fourth.message()
    );
    assert!(fourth.message().contains("27.11.2026"));
    assert_eq!(odata.sim.consultations_with_marker("m3"), 0);
    // another day, another subscriber: fine
    assert_eq!(
        odata
            .consultation(SUBSCRIBER, "2026-11-28", "d2")
            .await
            .status,
        201
    );
    assert_eq!(
        odata
            .consultation("8d2e41b0-5e7a-11ef-9c3e-00155d0a1c07", "2026-11-27", "s2")
            .await
            .status,
        201
    );
    // moving a document into the full day is refused too
    let day2 = odata
        .sim
        .consultations()
        .into_iter()
        .find(|d| d[MARKER_FIELD] == "d2")
        .unwrap();
    let day2_key = day2["Ref_Key"].as_str().unwrap().to_owned();
    let moved = odata
        .patch(
            CONSULTATIONS,
            &day2_key,
            &json!({"ДатаКонсультации": "2026-11-27T15:00:00"}),
        )
        .await;
    assert_eq!(moved.error(), (500, "-1".to_owned()));
    // marking one deleted frees its slot; unmarking it then is refused
    assert_eq!(
        odata
            .patch(CONSULTATIONS, &keys[0], &json!({"DeletionMark": true}))
            .await
            .status,
        200
    );
    assert_eq!(
        odata
            .consultation(SUBSCRIBER, "2026-11-27", "m4")
            .await
            .status,
        201
    );
    let unmark = odata
        .patch(CONSULTATIONS, &keys[0], &json!({"DeletionMark": false}))
        .await;
    assert_eq!(unmark.error(), (500, "-1".to_owned()));
    // other writes to a document of a full day are fine
    assert_eq!(
        odata
            .patch(CONSULTATIONS, &keys[1], &json!({"Описание": "x"}))
            .await
            .status,
        200
    );
    odata.sim.set_daily_limit(None);
    assert_eq!(
        odata
            .consultation(SUBSCRIBER, "2026-11-27", "m5")
            .await
            .status,
        201
    );
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn operator_actions_bump_version_and_change_date() {
    let odata = Odata::start();
    let created = odata
        .consultation(SUBSCRIBER, "2026-11-27", "op")
        .await
        .json();
    let key = uuid::Uuid::parse_str(created["Ref_Key"].as_str().unwrap()).unwrap();
    odata.sim.advance_clock(chrono::Duration::minutes(5));
    let closed = odata.sim.close_consultation(key).unwrap();
    assert_eq!(closed["DataVersion"], "AAAAAAAAAAE=");
    assert_eq!(closed["ДатаИзменения"], "2026-11-26T10:20:02");
    assert_eq!(closed["Конец"], "2026-11-26T10:20:02");
    assert_eq!(closed["ВидОбращения"], "КонсультацияИТС");
    assert_eq!(closed["КонсультацииИТС"][0]["LineNumber"], "1");
    odata.sim.advance_clock(chrono::Duration::seconds(1));
    let manager = uuid::Uuid::parse_str("8d2e41b0-5e7a-11ef-9c3e-00155d0a1c08").unwrap();
    let reassigned = odata.sim.reassign_manager(key, manager).unwrap();
    assert_eq!(reassigned["Менеджер_Key"], manager.to_string());
    assert_eq!(reassigned["ДатаИзменения"], "2026-11-26T10:20:03");
    let without = odata.sim.close_without_consultation(key).unwrap();
    assert_eq!(without["ЗакрытоБезКонсультации"], true);
    let moved = odata
        .sim
        .reschedule_consultation(key, local("2026-11-29T09:00:00"))
        .unwrap();
    assert_eq!(moved["ДатаКонсультации"], "2026-11-29T09:00:00");
    let deleted = odata.sim.mark_deleted(key, true).unwrap();
    assert_eq!(deleted["DeletionMark"], true);
    assert_eq!(deleted["DataVersion"], "AAAAAAAAAAU=");
    let edited = odata
        .sim
        .edit_consultation(key, &json!({"Ответ": "готово"}))
        .unwrap();
    assert_eq!(edited["Ответ"], "готово");
    // what the interface serves is what the operator saved
    assert_eq!(
        odata
            .get(CONSULTATIONS, &format!("(guid'{key}')"), &[])
            .await
            .json()["Ответ"],
        "готово"
    );
    assert!(odata.sim.delete_consultation(key));
    assert_eq!(
        odata
            .get(CONSULTATIONS, &format!("(guid'{key}')"), &[])
            .await
            .error(),
        (404, "9".to_owned())
    );
    assert!(odata.sim.close_consultation(key).is_err());
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn delete_post_and_unpost() {
    let odata = Odata::start();
    let key = odata
        .consultation(SUBSCRIBER, "2026-11-27", "p")
        .await
        .json()["Ref_Key"]
        .as_str()
        .unwrap()
        .to_owned();
    let posted = odata
        .write(
            reqwest::Method::POST,
            CONSULTATIONS,
            &format!("(guid'{key}')/Post"),
            "",
        )
        .await;
    assert_eq!(posted.status, 200);
    assert_eq!(
        odata
            .get(CONSULTATIONS, &format!("(guid'{key}')"), &[])
            .await
            .json()["Posted"],
        true
    );
    odata
        .write(
            reqwest::Method::POST,
            CONSULTATIONS,
            &format!("(guid'{key}')/Unpost"),
            "",
        )
        .await;
    assert_eq!(
        odata
            .get(CONSULTATIONS, &format!("(guid'{key}')"), &[])
            .await
            .json()["Posted"],
        false
    );
    let deleted = odata
        .write(
            reqwest::Method::DELETE,
            CONSULTATIONS,
            &format!("(guid'{key}')"),
            "",
        )
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(
        odata
            .get(CONSULTATIONS, &format!("(guid'{key}')"), &[])
            .await
            .status,
        404
    );
    assert_eq!(odata.sim.consultation_count(), 0);
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn register_records_have_composite_keys() {
    let odata = Odata::start();
    let record = fixture("register.reschedule.create.request.json");
    let created = odata.post(RESCHEDULES, &record).await;
    assert_eq!(created.status, 200, "{}", created.text);
    let body = created.json();
    let expected = fixture("register.reschedule.create.response.json");
    assert_eq!(keys(&body), keys(&expected));
    for (name, value) in expected.as_object().unwrap() {
        if name != "odata.metadata" {
            assert_eq!(&body[name], value, "{name}");
        }
    }
    let again = odata.post(RESCHEDULES, &record).await;
    assert_eq!(again.json(), fixture("error.400.duplicate_record.json"));
    let key = "(Period=datetime'2026-11-26T10:31:25',ДокументОбращения_Key=guid'5e8c7d14-cab2-11f0-9c3e-00155d0a1c07')";
    let read = odata.get(RESCHEDULES, key, &[]).await;
    assert_eq!(read.json()["НоваяДата"], "2026-11-28T10:00:00");
    let incomplete = odata
        .get(RESCHEDULES, "(Period=datetime'2026-11-26T10:31:25')", &[])
        .await;
    assert_eq!(incomplete.error(), (400, "7".to_owned()));
    let patched = odata
        .write(
            reqwest::Method::PATCH,
            RESCHEDULES,
            key,
            "{\"Комментарий\": \"ok\"}",
        )
        .await;
    assert_eq!(patched.json()["Комментарий"], "ok");
    assert_eq!(odata.sim.register_records(RESCHEDULES).len(), 1);
    assert_eq!(
        odata
            .write(reqwest::Method::DELETE, RESCHEDULES, key, "")
            .await
            .status,
        204
    );
    assert_eq!(
        odata.get(RESCHEDULES, key, &[]).await.error(),
        (404, "9".to_owned())
    );
    let rating = odata
        .post(
            cons_sim::onec::RATINGS,
            &fixture("register.rating.create.request.json"),
        )
        .await;
    assert_eq!(rating.status, 200);
    assert_eq!(rating.json()["Оценка"], 5);
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn act_then_stall_commits_without_an_answer() {
    let odata = Odata::start();
    odata.sim.faults().next_matching(
        "POST /int/rbd_sl_copy/odata/standard.odata/Document_",
        1,
        Fault::ActThenStall,
    );
    let request = odata
        .authed(
            reqwest::Method::POST,
            &odata.url(CONSULTATIONS, "", "$format=json"),
        )
        .timeout(Duration::from_millis(500))
        .json(&json!({"Абонент_Key": SUBSCRIBER, MARKER_FIELD: "cons:lost"}));
    let error = request.send().await.unwrap_err();
    assert!(error.is_timeout());
    assert_eq!(odata.sim.consultations_with_marker("cons:lost"), 1);
    let found = odata
        .list(
            CONSULTATIONS,
            &[("$filter", &format!("{MARKER_FIELD} eq 'cons:lost'"))],
        )
        .await;
    assert_eq!(found.len(), 1);
    // scripted statuses answer instead of the simulator
    odata.sim.faults().next(
        1,
        Fault::Status {
            status: 503,
            body: "Service Unavailable".to_owned(),
        },
    );
    assert_eq!(odata.get(CONSULTATIONS, "", &[]).await.status, 503);
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn changed_date_pages_are_stable_under_one_second_resolution() {
    let odata = Odata::start();
    for index in 0..6 {
        assert_eq!(
            odata
                .consultation(
                    &uuid::Uuid::now_v7().to_string(),
                    "2026-11-27",
                    &format!("same{index}")
                )
                .await
                .status,
            201
        );
    }
    odata.sim.advance_clock(chrono::Duration::seconds(1));
    assert_eq!(
        odata
            .consultation(SUBSCRIBER, "2026-11-27", "later")
            .await
            .status,
        201
    );
    let same = odata
        .list(
            CONSULTATIONS,
            &[("$filter", "ДатаИзменения eq datetime'2026-11-26T10:15:02'")],
        )
        .await;
    assert_eq!(same.len(), 6);
    let later = odata
        .list(
            CONSULTATIONS,
            &[("$filter", "ДатаИзменения gt datetime'2026-11-26T10:15:02'")],
        )
        .await;
    assert_eq!(later.len(), 1);
    assert_eq!(later[0][MARKER_FIELD], "later");
    let window = odata
        .list(
            CONSULTATIONS,
            &[
                ("$filter", "ДатаИзменения ge datetime'2026-11-26T10:15:02' and ДатаИзменения lt datetime'2026-11-26T10:15:03'"),
                ("$orderby", "ДатаИзменения asc,Ref_Key asc"),
            ],
        )
        .await;
    assert_eq!(window.len(), 6);
    assert_eq!(odata.sim.unimplemented_calls(), 0);
}

#[tokio::test]
async fn operator_actions_and_patches_push_signed_consultation_events() {
    const SECRET: &str = "onec-webhook-secret";
    let odata = Odata::start();
    let receiver = serve_recorder("127.0.0.1:0").unwrap();
    odata.sim.set_webhook(Some(SimWebhook {
        url: format!("{}/webhook/1c_cl", receiver.base_url),
        secret: Some(SECRET.to_owned()),
    }));
    let created = odata
        .consultation(SUBSCRIBER, "2026-11-27", "cons:0194")
        .await
        .json();
    let key = uuid::Uuid::parse_str(created["Ref_Key"].as_str().unwrap()).unwrap();
    // Our own create pushes nothing: only changes to a consultation do.
    odata.sim.webhooks_settled().await;
    assert!(odata.sim.webhook_log().is_empty());

    odata.sim.close_consultation(key).unwrap();
    let manager = "8d2e41b0-5e7a-11ef-9c3e-00155d0a1c08";
    let patch = json!({"Менеджер_Key": manager});
    assert_eq!(
        odata
            .patch(CONSULTATIONS, &key.to_string(), &patch)
            .await
            .status,
        200
    );
    odata
        .sim
        .reschedule_consultation(key, local("2026-11-29T09:00:00"))
        .unwrap();
    odata.sim.close_without_consultation(key).unwrap();
    odata.sim.mark_deleted(key, true).unwrap();
    odata.sim.webhooks_settled().await;

    let log = odata.sim.webhook_log();
    assert_eq!(log.len(), 5);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 5);
    let mut event_ids = Vec::new();
    for sent in &log {
        assert_eq!(sent.outcome, WebhookOutcome::Answered(200));
        assert_eq!(sent.event, "consultation.updated");
        assert_eq!(sent.subject, key.to_string());
        let request = requests.iter().find(|r| r.body == sent.body).unwrap();
        assert_eq!(request.path, "/webhook/1c_cl");
        assert_eq!(request.header("content-type"), Some("application/json"));
        let timestamp = request.header("x-timestamp").unwrap();
        assert_eq!(
            request.header("x-signature").unwrap(),
            sign(SECRET, timestamp, &request.body)
        );
        let event = sent.json().unwrap();
        assert_eq!(keys(&event), ["data", "event", "event_id", "occurred_at"]);
        assert_eq!(event["event"], "consultation.updated");
        // the frozen local 10:15:02 in Tashkent (UTC+5)
        assert_eq!(event["occurred_at"], "2026-11-26T05:15:02Z");
        event_ids.push(event["event_id"].as_str().unwrap().to_owned());
    }
    event_ids.sort();
    event_ids.dedup();
    assert_eq!(event_ids.len(), 5, "a fresh event_id per event");

    let data = |i: usize| log[i].json().unwrap()["data"].clone();
    assert_eq!(
        keys(&data(0)),
        [
            "closed_without_consultation",
            "consultation_date",
            "data_version",
            "date_changed",
            "deletion_mark",
            "end",
            "manager_key",
            "marker",
            "number",
            "ref_key",
            "status_1c",
        ]
    );
    assert_eq!(
        data(0),
        json!({
            "ref_key": key.to_string(),
            "number": created["Number"],
            "status_1c": "КонсультацияИТС",
            "end": "2026-11-26T05:15:02Z",
            "closed_without_consultation": false,
            "deletion_mark": false,
            "manager_key": data(0)["manager_key"],
            "consultation_date": "2026-11-27T06:00:00Z",
            "date_changed": "2026-11-26T05:15:02Z",
            "data_version": "AAAAAAAAAAE=",
            "marker": "cons:0194",
        })
    );
    assert_eq!(data(1)["manager_key"], manager);
    assert_eq!(data(1)["data_version"], "AAAAAAAAAAI=");
    assert_eq!(data(2)["consultation_date"], "2026-11-29T04:00:00Z");
    assert_eq!(data(3)["closed_without_consultation"], true);
    assert_eq!(data(4)["deletion_mark"], true);
    assert_eq!(
        data(4)["data_version"],
        odata.sim.consultation(key).unwrap()["DataVersion"]
    );
}

#[tokio::test]
async fn empty_end_and_manager_are_pushed_as_null() {
    let odata = Odata::start();
    let receiver = serve_recorder("127.0.0.1:0").unwrap();
    odata.sim.set_webhook(Some(SimWebhook {
        url: format!("{}/webhook/1c_cl", receiver.base_url),
        secret: None,
    }));
    let created = odata
        .consultation(SUBSCRIBER, "2026-11-27", "m")
        .await
        .json();
    let key = uuid::Uuid::parse_str(created["Ref_Key"].as_str().unwrap()).unwrap();
    odata
        .sim
        .edit_consultation(
            key,
            &json!({"Менеджер_Key": "00000000-0000-0000-0000-000000000000"}),
        )
        .unwrap();
    odata.sim.webhooks_settled().await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("x-signature"), None);
    let data = requests[0].json().unwrap()["data"].clone();
    assert!(
        data["end"].is_null() && data["manager_key"].is_null(),
        "{data}"
    );
    assert_eq!(data["status_1c"], created["ВидОбращения"]);
}
