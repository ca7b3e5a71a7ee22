//! docs/openapi.yaml is the contract client teams generate from: it must be valid OpenAPI
//! 3.1, every route the router serves must be in it, and every route in it must be served.

use std::collections::BTreeSet;

use serde_json::Value;

fn document() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every `$ref` in `value`, with where it was found.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(r) = v.as_str() {
                        out.push((at.to_owned(), r.to_owned()));
                    }
                } else {
                    refs(v, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn pointer<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    root.pointer(reference.strip_prefix('#')?)
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let spec = oas3::from_yaml(document()).expect("parses as OpenAPI 3.1");
    assert!(spec.openapi.starts_with("3.1."), "{}", spec.openapi);
    let root = serde_json::to_value(&spec).expect("serialises");
    // Every reference resolves, inside the document.
    let mut found = Vec::new();
    refs(&root, "", &mut found);
    assert!(!found.is_empty());
    for (at, r) in &found {
        assert!(
            r.starts_with("#/components/"),
            "{at}: external or odd $ref {r}"
        );
        assert!(
            pointer(&root, r).is_some(),
            "{at}: $ref {r} resolves to nothing"
        );
    }
    // Every operation has a unique operationId and at least one answer; every path
    // parameter is declared.
    let mut ids = BTreeSet::new();
    let paths = root["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}: no responses"
            );
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            assert_eq!(declared, in_path, "{method} {path}: path parameters");
        }
    }
}

#[test]
fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let spec = oas3::from_yaml(document()).expect("parses");
    let root = serde_json::to_value(&spec).expect("serialises");
    let documented: BTreeSet<(String, String)> = root["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = tessera_http::routes::served()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "served but not in docs/openapi.yaml: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in docs/openapi.yaml but not served: {extra:?}"
    );
}

#[test]
fn every_route_template_is_classified_as_its_route() {
    // The templates the document is compared with are the router's own: a path built from
    // each template (parameters filled in) must reach the route it names.
    for (method, template) in tessera_http::routes::served() {
        let path = template
            .split('/')
            .map(|s| if s.starts_with('{') { "x1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let method: hyper::Method = method.parse().expect("a method");
        let route = tessera_http::routes::classify(&method, &path);
        assert_eq!(
            tessera_http::routes::template(route),
            Some(template),
            "{path}"
        );
    }
}
