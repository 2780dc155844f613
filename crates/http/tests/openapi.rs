//! The OpenAPI document: every route of the runs API in it with its method, parameters and
//! errors, every operation under the API tokens' bearer scheme.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use orchestrator_http::api::openapi_document;
use serde_json::Value;

const ROUTES: [(&str, &str); 18] = [
    ("post", "/api/runs"),
    ("get", "/api/runs"),
    ("get", "/api/runs/{id}"),
    ("post", "/api/runs/{id}/cancel"),
    ("post", "/api/runs/{id}/rerun"),
    ("get", "/api/runs/{id}/graph"),
    ("get", "/api/runs/{id}/objects/{oid}"),
    ("post", "/api/runs/{id}/objects/{oid}/retry"),
    ("get", "/api/runs/{id}/objects/{oid}/attempts/{n}/output"),
    ("get", "/api/events"),
    ("get", "/api/objects"),
    ("put", "/api/objects"),
    ("post", "/api/objects/{id}/trigger"),
    ("post", "/api/objects/{id}/pause"),
    ("post", "/api/objects/{id}/resume"),
    ("post", "/api/schedule/pause"),
    ("post", "/api/schedule/resume"),
    // Listed apart: the document itself is served open.
    ("get", "/api/openapi.json"),
];

#[test]
fn every_route_is_documented_with_its_errors_and_the_token_scheme() {
    let doc: Value = serde_json::to_value(openapi_document()).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = ROUTES[..ROUTES.len() - 1]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    for (method, path) in &expected {
        let op = &paths[path][method];
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses["401"]["content"]["application/json"]["schema"].is_object(),
            "{method} {path}: no 401 with its body: {}",
            op["responses"]
        );
        if *method != "get" {
            assert!(responses.contains_key("403"), "{method} {path}: no 403");
        }
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success"
        );
        for param in path.split('{').skip(1).map(|p| &p[..p.find('}').unwrap()]) {
            let named = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == param && p["in"] == "path");
            assert!(
                named,
                "{method} {path}: path parameter {param} undocumented"
            );
        }
    }
    assert_eq!(doc["security"][0]["api_token"], serde_json::json!([]));
    let scheme = &doc["components"]["securitySchemes"]["api_token"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer"))
    );
    // The answers' shapes are there too.
    for schema in [
        "ObjectDetail",
        "AttemptView",
        "RunView",
        "GraphView",
        "ObjectPage",
        "ObjectStatus",
        "ErrorBody",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
}
