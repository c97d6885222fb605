//! The committed OpenAPI document is the one the code generates, and the server serves it.

use serde_json::Value;

use crate::helpers::spawn_app;

#[test]
fn the_committed_openapi_document_is_fresh() {
    let generated = tessera_server::openapi::spec_json().unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json")).unwrap();
    assert!(generated == committed, "openapi/openapi.json is stale: run `make openapi` and commit it");
}

#[test]
fn every_operation_documents_its_responses_and_has_an_operation_id() {
    let spec: Value = serde_json::from_str(&tessera_server::openapi::spec_json().unwrap()).unwrap();
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
    // the UI is pointed at one document per API, the native one first, with the default public
    // client filled in (issue 24: it was pointed at the whole document, whose Authorize dialog
    // offered nine schemes, the first a dialect's)
    let init = app.http.get(app.url("/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    let native = init.find("/openapi/native.json").unwrap_or_else(|| panic!("{init}"));
    assert!(init.find("/openapi/simplejwt.json").is_some_and(|at| at > native), "{init}");
    assert!(init.contains(r#""clientId":"#), "{init}");
    let res = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "application/json");
    let served: Value = res.json().await.unwrap();
    let generated: Value = serde_json::from_str(&tessera_server::openapi::spec_json().unwrap()).unwrap();
    assert_eq!(served, generated);
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Issue 24 item 1: Swagger UI's native document offers one way to log in (the OAuth 2 password
/// flow), and no dialect's scheme; every operation of the whole document is in exactly one of the
/// UI's documents, each with the schemes its operations use.
async fn swagger_ui_offers_one_document_per_api_each_with_its_own_authorize_forms() {
    let app = spawn_app().await;
    let whole: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (_, name, path) in tessera_server::openapi::UI_DOCUMENTS {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let doc: Value = res.json().await.unwrap();
        let schemes: Vec<&String> = doc["components"]["securitySchemes"].as_object().map(|s| s.keys().collect()).unwrap_or_default();
        if path == "/openapi/native.json" {
            assert_eq!(schemes, ["oauth2"], "the native document's Authorize dialog: one form");
            assert_eq!(doc["paths"]["/v1/me"]["get"]["security"], serde_json::json!([{"oauth2": []}]));
        } else {
            assert!(!schemes.iter().any(|s| *s == "oauth2" || *s == "bearer"), "{name} offers the native schemes: {schemes:?}");
        }
        for (p, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys().filter(|m| METHODS.contains(&m.as_str())) {
                assert!(seen.insert(format!("{method} {p}"), name).is_none(), "{method} {p} is in two documents");
            }
        }
    }
    let mut all = vec![];
    for (p, item) in whole["paths"].as_object().unwrap() {
        all.extend(item.as_object().unwrap().keys().filter(|m| METHODS.contains(&m.as_str())).map(|m| format!("{m} {p}")));
    }
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        {
            all.sort();
            all
        },
        "every operation, in one document each"
    );
}

#[test]
fn every_dialect_route_is_documented_by_its_handler() {
    use tessera_dialects::{docs, drf_social, flask, medods, simplejwt};
    use utoipa::OpenApi;
    let sj = simplejwt::Handlers::openapi();
    for (face, missing) in [
        ("medods", docs::undocumented(&medods::Handlers::openapi(), &medods::ROUTES)),
        ("drf-social-oauth2", docs::undocumented(&drf_social::Handlers::openapi(), &drf_social::ROUTES)),
        ("simplejwt", docs::undocumented(&sj, &simplejwt::SIMPLEJWT_ROUTES)),
        ("djoser", docs::undocumented(&sj, &simplejwt::DJOSER_ROUTES)),
        ("flask", docs::undocumented(&flask::Handlers::openapi(), &flask::ROUTES)),
    ] {
        assert!(missing.is_empty(), "{face}: routes whose handler documents no operation: {missing:?}");
    }
}

async fn the_served_document_follows_the_configuration() {
    let app = crate::helpers::spawn_with(|s| {
        s.dialects.medods.enabled = false;
        s.dialects.djoser.prefix = "/v1/zonesmart".into();
        s.dialects.djoser.prefixes = vec![String::new()];
        s.dialects.simplejwt.username_field = "username".into();
    })
    .await;
    let spec: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(!paths.contains_key("/generate"), "a disabled dialect is not documented");
    let tags: Vec<&str> = spec["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(!tags.contains(&"medods"));
    for p in ["/v1/zonesmart/auth/jwt/create/", "/auth/jwt/create/", "/v1/zonesmart/users/me/", "/users/me/"] {
        assert!(paths.contains_key(p), "{p}: djoser is documented at every prefix it is mounted under");
        // and it is served there
        let method = if p.ends_with("me/") { reqwest::Method::GET } else { reqwest::Method::POST };
        assert_ne!(app.http.request(method, app.url(p)).send().await.unwrap().status(), 404, "{p}");
    }
    assert_eq!(paths["/auth/jwt/refresh/"].as_object().unwrap().keys().collect::<Vec<_>>(), ["get", "post"]);
    // the login body names the configured field
    let body = &paths["/api/token/"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(body, "#/components/schemas/SjObtainUsername");
}

/// A method a path does not serve gets 405 with `Allow`, in the face's own shape.
async fn other_methods_get_405_with_allow() {
    let app = spawn_app().await;
    for (method, path, allow, content_type) in [
        (reqwest::Method::GET, "/oauth/token", "POST", "application/problem+json"),
        (reqwest::Method::DELETE, "/v1/me", "GET", "application/problem+json"),
        (reqwest::Method::GET, "/generate", "POST", "application/json"),
        (reqwest::Method::PUT, "/api/token/", "POST, OPTIONS", "application/json"),
        (reqwest::Method::DELETE, "/auth/jwt/refresh/", "POST, GET, OPTIONS", "application/json"),
        (reqwest::Method::GET, "/auth/token/", "POST, OPTIONS", "application/json"),
        (reqwest::Method::GET, "/api/v1/login", "POST, OPTIONS", "text/html; charset=utf-8"),
    ] {
        let res = app.http.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 405, "{method} {path}");
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        assert_eq!(res.headers()["content-type"], content_type, "{method} {path}");
    }
}

crate::both_backends!(
    swagger_ui_and_the_spec_are_served,
    swagger_ui_offers_one_document_per_api_each_with_its_own_authorize_forms,
    the_served_document_follows_the_configuration,
    other_methods_get_405_with_allow,
);
