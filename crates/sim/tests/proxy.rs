//! The TCP fault proxy as a client sees it: each mode fails the way the network or a
//! stopped peer would (reset after the request reached the peer, request timeout, connect
//! timeout, refusal), also on connections opened before the fault, and passing again
//! afterwards works.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on anything unexpected"
)]

use cons_sim::chatwoot::{ChatwootSim, ChatwootSimConfig};
use cons_sim::{FaultProxy, TcpFault};
use std::time::{Duration, Instant};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(800);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TIMEOUT)
        .build()
        .unwrap()
}

/// One call through the proxy: the status, or the error, and how long it took.
async fn call(http: &reqwest::Client, url: &str) -> (Result<u16, reqwest::Error>, Duration) {
    let started = Instant::now();
    let result = http
        .get(format!("{url}/api/v1/accounts/1/teams"))
        .header("api_access_token", "sim-chatwoot-token")
        .send()
        .await
        .map(|r| r.status().as_u16());
    (result, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mode_fails_like_the_network_and_passing_again_works() {
    let sim = ChatwootSim::start(ChatwootSimConfig::default()).unwrap();
    let proxy = FaultProxy::start(sim.port()).await.unwrap();
    let url = proxy.url_for(sim.base_url());
    assert_ne!(url, sim.base_url());
    let http = client();

    let (passed, _) = call(&http, &url).await;
    assert_eq!(passed.unwrap(), 200);
    let seen = sim.requests().len();

    // Reset: the request reaches the peer, the caller gets an RST instead of the answer,
    // on the connection it already had open.
    proxy.set(TcpFault::Reset);
    let (reset, _) = call(&http, &url).await;
    let error = reset.unwrap_err();
    assert!(!error.is_connect() && !error.is_timeout(), "{error:?}");
    assert_eq!(sim.requests().len(), seen + 1, "the peer got the request");
    assert!(proxy.resets() >= 1);

    // Black hole: accepted, read, never answered; only the request timeout ends it.
    proxy.set(TcpFault::BlackHole);
    let (hole, took) = call(&http, &url).await;
    let error = hole.unwrap_err();
    assert!(error.is_timeout() && !error.is_connect(), "{error:?}");
    assert!(took >= TIMEOUT && took < TIMEOUT * 3, "{took:?}");
    assert_eq!(sim.requests().len(), seen + 1, "nothing reached the peer");
    assert!(proxy.swallowed() >= 1);

    // Unreachable: a new connection hangs in the handshake until the connect timeout.
    proxy.set(TcpFault::Unreachable);
    let (unreachable, took) = call(&client(), &url).await;
    let error = unreachable.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
    assert!(
        took >= CONNECT_TIMEOUT && took < TIMEOUT,
        "the connect timeout, not the request timeout, ended it: {took:?}"
    );

    // Refuse: nothing listens.
    proxy.set(TcpFault::Refuse);
    let (refused, took) = call(&client(), &url).await;
    let error = refused.unwrap_err();
    assert!(error.is_connect() && !error.is_timeout(), "{error:?}");
    assert!(took < CONNECT_TIMEOUT, "refused at once: {took:?}");

    // Passing again, with the old client (its pooled connections were broken) and a new one.
    proxy.set(TcpFault::Pass);
    for http in [&http, &client()] {
        let (passed, _) = call(http, &url).await;
        assert_eq!(passed.unwrap(), 200);
    }
    assert_eq!(sim.requests().len(), seen + 3);
}
