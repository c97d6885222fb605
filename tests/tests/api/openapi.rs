//! The committed OpenAPI document is the one the code generates, and the server serves it.

use serde_json::Value;

use crate::helpers::spawn_app;

#[test]
fn the_committed_openapi_document_is_fresh() {
    let generated = tessera_api::openapi::spec_json().unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json")).unwrap();
    assert!(generated == committed, "openapi/openapi.json is stale: run `make openapi` and commit it");
}

#[test]
fn every_operation_documents_its_responses_and_has_an_operation_id() {
    let spec: Value = serde_json::from_str(&tessera_api::openapi::spec_json().unwrap()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for p in ["/v1/users", "/v1/me", "/v1/logout", "/oauth/token", "/oauth/revoke", "/health/live", "/health/ready"] {
        assert!(paths.contains_key(p), "{p} is documented");
    }
    // every dialect is a tag of its own, with its routes
    let tags: Vec<&str> = spec["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for (tag, path) in [
        ("medods", "/generate"),
        ("simplejwt", "/api/token/"),
        ("djoser", "/auth/jwt/create/"),
        ("flask-jwt-extended", "/api/v1/refresh/token"),
    ] {
        assert!(tags.contains(&tag), "tag {tag}");
        let op = paths[path].as_object().unwrap().values().next().unwrap();
        assert_eq!(op["tags"][0], tag, "{path}");
    }
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            assert!(op["operationId"].is_string(), "{method} {path} has an operation id");
            assert!(!op["responses"].as_object().unwrap().is_empty(), "{method} {path} documents responses");
        }
    }
}

async fn swagger_ui_and_the_spec_are_served() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("swagger"));
    let served: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let generated: Value = serde_json::from_str(&tessera_api::openapi::spec_json().unwrap()).unwrap();
    assert_eq!(served, generated);
}

crate::both_backends!(swagger_ui_and_the_spec_are_served,);
