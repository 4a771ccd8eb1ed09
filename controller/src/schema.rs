//! A small checker for the OpenAPI v3 subset Kubernetes CRDs use, applied to what we render against
//! Istio's published EnvoyFilter CRD schema (`testdata/istio-envoyfilter-v1alpha3.schema.json`,
//! extracted from istio/api). Checked: `type`, `properties`, `required`, `additionalProperties`,
//! `items`, `enum`, `oneOf`/`anyOf`/`allOf`/`not`, numeric and length bounds, `pattern`,
//! `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-int-or-string`. Not evaluated: CEL
//! (`x-kubernetes-validations`) and `format`. Stricter than the API server in one way: an unknown
//! field is an error here (the API server would silently prune it, which hides typos).
//!
//! Hand-written rather than the `jsonschema` crate: it is about 150 lines, knows the Kubernetes
//! extensions, and keeps the controller's dependency tree small.

use serde_json::Value;

/// Istio's EnvoyFilter v1alpha3 schema.
pub fn envoy_filter_schema() -> Value {
    let doc: Value = serde_json::from_str(include_str!(
        "../testdata/istio-envoyfilter-v1alpha3.schema.json"
    ))
    .unwrap_or(Value::Null);
    doc.get("schema").cloned().unwrap_or(Value::Null)
}

/// Checks a whole object (apiVersion/kind/metadata are implicit in CRD schemas and skipped).
pub fn check_object(obj: &Value, schema: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    if let (Some(o), Some(props)) = (
        obj.as_object(),
        schema.get("properties").and_then(|p| p.as_object()),
    ) {
        for (k, v) in o {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.get(k) {
                Some(s) => check(v, s, k, &mut errs),
                None => errs.push(format!("{k}: unknown field")),
            }
        }
    }
    errs
}

fn type_ok(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

/// Appends every violation of `schema` by `v` at `path`.
pub fn check(v: &Value, schema: &Value, path: &str, errs: &mut Vec<String>) {
    let Some(s) = schema.as_object() else { return };
    if v.is_null() && s.get("nullable").and_then(|n| n.as_bool()) == Some(true) {
        return;
    }
    let int_or_string = s
        .get("x-kubernetes-int-or-string")
        .and_then(|b| b.as_bool())
        == Some(true);
    if let Some(t) = s.get("type").and_then(|t| t.as_str()) {
        let ok = type_ok(v, t) || (int_or_string && (v.is_string() || v.is_i64() || v.is_u64()));
        if !ok {
            errs.push(format!("{path}: expected {t}, got {}", kind(v)));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(|e| e.as_array()) {
        if !e.contains(v) {
            errs.push(format!(
                "{path}: {v} is not one of {}",
                Value::Array(e.clone())
            ));
        }
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = s.get("minimum").and_then(|m| m.as_f64()) {
            if n < min {
                errs.push(format!("{path}: {n} < minimum {min}"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(|m| m.as_f64()) {
            if n > max {
                errs.push(format!("{path}: {n} > maximum {max}"));
            }
        }
    }
    if let Some(st) = v.as_str() {
        let len = st.chars().count() as u64;
        if s.get("maxLength")
            .and_then(|m| m.as_u64())
            .is_some_and(|m| len > m)
        {
            errs.push(format!("{path}: longer than maxLength"));
        }
        if s.get("minLength")
            .and_then(|m| m.as_u64())
            .is_some_and(|m| len < m)
        {
            errs.push(format!("{path}: shorter than minLength"));
        }
        if let Some(p) = s.get("pattern").and_then(|p| p.as_str()) {
            if regex::Regex::new(p).is_ok_and(|re| !re.is_match(st)) {
                errs.push(format!("{path}: does not match pattern {p}"));
            }
        }
    }
    if let Some(items) = v.as_array() {
        if s.get("maxItems")
            .and_then(|m| m.as_u64())
            .is_some_and(|m| items.len() as u64 > m)
        {
            errs.push(format!("{path}: more than maxItems"));
        }
        if s.get("minItems")
            .and_then(|m| m.as_u64())
            .is_some_and(|m| (items.len() as u64) < m)
        {
            errs.push(format!("{path}: fewer than minItems"));
        }
        if let Some(is) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(item, is, &format!("{path}[{i}]"), errs);
            }
        }
    }
    if let Some(o) = v.as_object() {
        for r in s
            .get("required")
            .and_then(|r| r.as_array())
            .into_iter()
            .flatten()
        {
            if let Some(r) = r.as_str() {
                if !o.contains_key(r) {
                    errs.push(format!("{path}: missing required field {r}"));
                }
            }
        }
        let preserve = s
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(|b| b.as_bool())
            == Some(true);
        let props = s.get("properties").and_then(|p| p.as_object());
        let additional = s.get("additionalProperties");
        for (k, child) in o {
            let cp = format!("{path}.{k}");
            if let Some(ps) = props.and_then(|p| p.get(k)) {
                check(child, ps, &cp, errs);
            } else if let Some(a) = additional.filter(|a| a.is_object()) {
                check(child, a, &cp, errs);
            } else if !preserve && (props.is_some() || additional == Some(&Value::Bool(false))) {
                errs.push(format!("{cp}: unknown field"));
            }
        }
    }
    let matches = |sub: &Value| {
        let mut e = Vec::new();
        check(v, sub, path, &mut e);
        e.is_empty()
    };
    if let Some(one) = s.get("oneOf").and_then(|x| x.as_array()) {
        let n = one.iter().filter(|sub| matches(sub)).count();
        if n != 1 {
            errs.push(format!(
                "{path}: matches {n} of the oneOf alternatives, want exactly 1"
            ));
        }
    }
    if let Some(any) = s.get("anyOf").and_then(|x| x.as_array()) {
        if !any.iter().any(matches) {
            errs.push(format!("{path}: matches none of the anyOf alternatives"));
        }
    }
    for sub in s
        .get("allOf")
        .and_then(|x| x.as_array())
        .into_iter()
        .flatten()
    {
        check(v, sub, path, errs);
    }
    if let Some(not) = s.get("not") {
        if matches(not) {
            errs.push(format!("{path}: matches a schema it must not"));
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn catches_wrong_types_unknown_fields_enums_and_oneof() {
        let schema = envoy_filter_schema();
        assert!(schema.is_object(), "schema loads");
        let bad = json!({"spec": {"configPatches": [{
            "applyTo": "NOPE",
            "match": {"context": "SIDECAR_OUTBOUND", "listener": {"portNumber": "x"}, "cluster": {}},
            "patch": {"operation": "ADD", "valu": {}},
        }]}});
        let errs = check_object(&bad, &schema);
        let joined = errs.join("\n");
        assert!(joined.contains("spec.configPatches[0].applyTo"), "{joined}");
        assert!(
            joined.contains("listener.portNumber: expected integer"),
            "{joined}"
        );
        assert!(joined.contains("patch.valu: unknown field"), "{joined}");
        assert!(joined.contains("oneOf"), "{joined}");
        let good = json!({"spec": {"configPatches": [{
            "applyTo": "CLUSTER",
            "match": {"context": "SIDECAR_OUTBOUND"},
            "patch": {"operation": "ADD", "value": {"name": "x"}},
        }]}});
        assert_eq!(check_object(&good, &schema), Vec::<String>::new());
    }
}
