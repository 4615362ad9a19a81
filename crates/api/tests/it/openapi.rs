//! The OpenAPI document lists every route of the contract, and Swagger UI serves it.

use crate::TestApp;

const CONTRACT_ROUTES: &[(&str, &str)] = &[
    ("post", "/api/auth/login"),
    ("post", "/api/tickets/create"),
    ("get", "/api/tickets/{cons_id}"),
    ("get", "/api/tickets/clients/{client_id}/tickets"),
    ("get", "/api/tickets/{cons_id}/history"),
    ("get", "/api/health"),
    ("get", "/api/health/db"),
    ("get", "/api/openapi.json"),
    ("get", "/metrics"),
    ("post", "/webhook/chatwoot"),
    ("post", "/webhook/1c_cl"),
];

#[tokio::test]
async fn the_served_document_lists_every_route_and_nothing_else() {
    let app = TestApp::new().await;
    let (status, document) = app.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    let mut listed = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            listed.push((method.clone(), path.clone()));
        }
    }
    listed.sort();
    let mut expected: Vec<(String, String)> = CONTRACT_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(document["components"]["schemas"]["CreateTicketRequest"].is_object());
    assert!(document["components"]["schemas"]["LoginRequest"].is_object());
    assert!(document["components"]["schemas"]["LoginResponse"].is_object());
    assert!(document["components"]["schemas"]["OnecEvent"].is_object());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    assert_eq!(cons_api::openapi().paths.paths.len(), paths.len());
}

#[tokio::test]
async fn swagger_ui_is_served_at_docs() {
    let app = TestApp::new().await;
    let response = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("swagger")
    );
    let redirected = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(redirected.status(), 200, "/docs redirects to the UI");
}
