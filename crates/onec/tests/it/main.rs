//! Client tests against the 1C simulator over real HTTP: every method, the requests as
//! they travel (encoding, JSON negotiation, UTF-8 Basic auth), errors from real answers
//! and scripted faults, the lost-answer create found again by its marker, and polling
//! across documents that share one `ДатаИзменения`.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on anything unexpected"
)]

mod calls;
mod errors;
mod polling;

use chrono::{DateTime, NaiveDateTime, Utc};
use cons_onec::{Channel, Importance, NewConsultation, OnecClient, OnecConfig};
use cons_sim::onec::{OnecSim, OnecSimConfig};
use std::time::Duration;
use uuid::Uuid;

const USER: &str = "Интеграция";
const PASSWORD: &str = "пароль:+1";
const FOLDER: Uuid = Uuid::from_u128(0x7ccd31ca_887b_11eb_938b_00e04cd03b68);
const SUBSCRIBER: Uuid = Uuid::from_u128(0x3f9a6c12_a7b4_11f0_9c3e_00155d0a1c07);
const MANAGER: Uuid = Uuid::from_u128(0x8d2e41b0_5e7a_11ef_9c3e_00155d0a1c07);
const LANGUAGE_RU: Uuid = Uuid::from_u128(0x15d38cda_1812_11ef_b824_c67597d01fa8);

struct Setup {
    sim: OnecSim,
    client: OnecClient,
}

/// A fresh simulator (clock frozen at 2026-11-26 10:15:02 Tashkent) and a client of it.
fn setup() -> Setup {
    setup_with_timeout(Duration::from_secs(10))
}

fn setup_with_timeout(timeout: Duration) -> Setup {
    let sim = OnecSim::start(OnecSimConfig {
        bind: "127.0.0.1:0".to_owned(),
        publication: "int/rbd_sl_copy".to_owned(),
        user: USER.to_owned(),
        password: PASSWORD.to_owned(),
        workers: 1,
    })
    .unwrap();
    sim.freeze_clock(local("2026-11-26T10:15:02"));
    let client = client_of(&sim, PASSWORD, timeout);
    Setup { sim, client }
}

fn client_of(sim: &OnecSim, password: &str, timeout: Duration) -> OnecClient {
    let mut config = OnecConfig::new(sim.base_url(), USER, password);
    config.timeout = timeout;
    OnecClient::new(config).unwrap()
}

fn local(text: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").unwrap()
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// A consultation of `subscriber` scheduled at `scheduled` (UTC), as the relay would send
/// it for a new ticket.
fn new_consultation(subscriber: Uuid, scheduled: &str) -> NewConsultation {
    NewConsultation {
        ticket_id: Uuid::now_v7(),
        counterparty_key: subscriber,
        author_key: None,
        manager_key: Some(MANAGER),
        scheduled_at: utc(scheduled),
        created_at: utc("2026-11-26T05:15:02.250Z"),
        description: "Не закрывается октябрь".to_owned(),
        topic: Some("Закрытие месяца".to_owned()),
        language_key: LANGUAGE_RU,
        category_key: None,
        question_key: None,
        channel: Channel::Telegram,
        how_to_contact: "+998901234567 / Азизов Бахтиёр / TELEGRAM".to_owned(),
        importance: Importance::High,
        comment: "Создано из Clobus.uz\nНе закрывается октябрь".to_owned(),
    }
}
