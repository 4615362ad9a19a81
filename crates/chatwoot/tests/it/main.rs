//! Client tests against the Chatwoot simulator over real HTTP: every method, error
//! classification from real answers and scripted faults, the requests checked against
//! Chatwoot's OpenAPI document, and the records decoded from Chatwoot's own fixtures.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on anything unexpected"
)]

mod calls;
mod errors;
mod fixtures;
mod openapi;

use cons_chatwoot::{ChatwootClient, ChatwootConfig};
use cons_sim::chatwoot::{ChatwootSim, ChatwootSimConfig};
use std::time::Duration;

const TOKEN: &str = "it-token";

struct Setup {
    sim: ChatwootSim,
    client: ChatwootClient,
}

/// A fresh simulator (account 1, API inbox 3) and a client of it.
fn setup() -> Setup {
    setup_with_timeout(Duration::from_secs(10))
}

fn setup_with_timeout(timeout: Duration) -> Setup {
    let sim = ChatwootSim::start(ChatwootSimConfig {
        bind: "127.0.0.1:0".to_owned(),
        account_id: 1,
        inbox_id: 3,
        api_token: TOKEN.to_owned(),
        workers: 1,
    })
    .unwrap();
    let client = client_of(&sim, TOKEN, timeout);
    Setup { sim, client }
}

fn client_of(sim: &ChatwootSim, token: &str, timeout: Duration) -> ChatwootClient {
    ChatwootClient::new(ChatwootConfig {
        base_url: sim.base_url().to_owned(),
        api_token: token.to_owned(),
        account_id: sim.account_id(),
        inbox_id: sim.inbox_id(),
        timeout,
    })
    .unwrap()
}

/// `../shared/fixtures/chatwoot/<relative>` as JSON.
fn fixture(relative: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../../shared/fixtures/chatwoot/{relative}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}
