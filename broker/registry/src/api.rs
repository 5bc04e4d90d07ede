//! Confluent's Schema Registry REST API over a [`State`], without I/O: a request (method,
//! path, query, body) becomes a status, a JSON body and the `_schemas` records a write must
//! append. The server appends those records and answers only once they are committed and
//! replayed, one write at a time, so ids and versions decided here are the ones stored.
//!
//! Served today: `GET /subjects`, `GET /subjects/{s}/versions`,
//! `GET /subjects/{s}/versions/{v|latest}[/schema]`, `POST /subjects/{s}/versions`,
//! `POST /subjects/{s}`, `GET /schemas/ids/{id}[/schema|/subjects|/versions]`,
//! `GET /schemas/types`, `POST /compatibility/subjects/{s}/versions[/{v|latest}]`,
//! `GET|PUT /config[/{s}]`, `DELETE /config/{s}`, `GET|PUT /mode[/{s}]`,
//! `DELETE /subjects/{s}[/versions/{v}][?permanent=true]` (soft first, then permanent, as
//! Confluent). Anything else is 404 with error code 404.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::compat::Level;
use crate::error::RegistryError;
use crate::records::{ConfigValue, DeleteSubjectValue, Key, ModeValue, Reference, SchemaValue};
use crate::state::State;

/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// One answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// Records to append before answering (key, value; None is a tombstone).
    pub records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Response {
    fn ok(body: Value) -> Self {
        Response {
            status: 200,
            body,
            records: Vec::new(),
        }
    }

    fn error(status: u16, code: u32, message: impl Into<String>) -> Self {
        Response {
            status,
            body: json!({"error_code": code, "message": message.into()}),
            records: Vec::new(),
        }
    }
}

impl From<RegistryError> for Response {
    fn from(e: RegistryError) -> Self {
        Response::error(e.status(), e.code(), e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
}

#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

fn flag(query: &str, name: &str) -> bool {
    query
        .split('&')
        .any(|kv| kv == name || kv == format!("{name}=true"))
}

fn unprocessable(message: impl Into<String>) -> Response {
    Response::error(422, 42200, message)
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Response> {
    if body.len() > MAX_BODY {
        return Err(Response::error(413, 413, "Request body too large"));
    }
    serde_json::from_slice(body).map_err(|e| unprocessable(format!("Unrecognized request: {e}")))
}

/// Answers one request.
pub fn handle(state: &State, method: &str, path: &str, query: &str, body: &[u8]) -> Response {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let result = match (method, segments.as_slice()) {
        ("GET", ["subjects"]) => Ok(subjects(state, flag(query, "deleted"))),
        ("GET", ["subjects", s, "versions"]) => versions(state, s, flag(query, "deleted")),
        ("GET", ["subjects", s, "versions", v]) => {
            version(state, s, v).map(|(body, _)| Response::ok(body))
        }
        ("GET", ["subjects", s, "versions", v, "schema"]) => {
            version(state, s, v).map(|(_, text)| {
                Response::ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
            })
        }
        ("POST", ["subjects", s, "versions"]) => register(state, s, body),
        ("POST", ["subjects", s]) => lookup(state, s, body),
        ("GET", ["schemas", "ids", id]) => by_id(state, id).map(Response::ok),
        ("GET", ["schemas", "ids", id, "schema"]) => by_id(state, id).map(|b| {
            let text = b["schema"].as_str().unwrap_or_default().to_string();
            Response::ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }),
        ("GET", ["schemas", "ids", id, "subjects"]) => uses_of(state, id).map(|u| {
            let mut subjects: Vec<&str> = u.iter().map(|(s, _)| s.as_str()).collect();
            subjects.dedup();
            Response::ok(json!(subjects))
        }),
        ("GET", ["schemas", "ids", id, "versions"]) => uses_of(state, id).map(|u| {
            Response::ok(Value::Array(
                u.iter()
                    .map(|(s, v)| json!({"subject": s, "version": v}))
                    .collect(),
            ))
        }),
        ("GET", ["schemas", "types"]) => Ok(Response::ok(json!(["AVRO"]))),
        ("POST", ["compatibility", "subjects", s, "versions", v]) => {
            compatibility(state, s, Some(v), body, flag(query, "verbose"))
        }
        ("POST", ["compatibility", "subjects", s, "versions"]) => {
            compatibility(state, s, None, body, flag(query, "verbose"))
        }
        ("GET", ["config"]) => Ok(Response::ok(
            json!({"compatibilityLevel": state.global_level.unwrap_or_default()}),
        )),
        ("GET", ["config", s]) => match state.subject_levels.get(*s) {
            Some(l) => Ok(Response::ok(json!({"compatibilityLevel": l}))),
            None if flag(query, "defaultToGlobal") => {
                Ok(Response::ok(json!({"compatibilityLevel": state.level(s)})))
            }
            None => Err(Response::error(
                404,
                40408,
                format!("Subject '{s}' does not have subject-level compatibility configured"),
            )),
        },
        ("PUT", ["config"]) => set_config(None, body),
        ("PUT", ["config", s]) => set_config(Some(s), body),
        ("DELETE", ["config", s]) => delete_config(state, s),
        ("GET", ["mode"]) => Ok(Response::ok(json!({"mode": state.global_mode}))),
        ("GET", ["mode", s]) => Ok(Response::ok(json!({"mode": state.mode(s)}))),
        ("PUT", ["mode"]) => set_mode(None, body),
        ("PUT", ["mode", s]) => set_mode(Some(s), body),
        ("DELETE", ["subjects", s]) => delete_subject(state, s, flag(query, "permanent")),
        ("DELETE", ["subjects", s, "versions", v]) => {
            delete_version(state, s, v, flag(query, "permanent"))
        }
        _ => Err(Response::error(404, 404, "HTTP 404 Not Found")),
    };
    result.unwrap_or_else(|r| r)
}

fn subjects(state: &State, deleted: bool) -> Response {
    let names: Vec<&String> = state
        .subjects
        .iter()
        .filter(|(_, vs)| deleted || vs.values().any(|v| !v.deleted))
        .map(|(s, _)| s)
        .collect();
    Response::ok(json!(names))
}

fn versions(state: &State, subject: &str, deleted: bool) -> Result<Response, Response> {
    let vs = state
        .subjects
        .get(subject)
        .filter(|vs| deleted || vs.values().any(|v| !v.deleted))
        .ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
    let numbers: Vec<i32> = vs
        .iter()
        .filter(|(_, v)| deleted || !v.deleted)
        .map(|(n, _)| *n)
        .collect();
    Ok(Response::ok(json!(numbers)))
}

/// A version's JSON and its schema text.
fn version(state: &State, subject: &str, v: &str) -> Result<(Value, String), Response> {
    let live = state.live_versions(subject);
    if live.is_empty() {
        return Err(RegistryError::SubjectNotFound(subject.into()).into());
    }
    let found = match v {
        "latest" | "-1" => live.last().copied(),
        n => {
            let n: i32 = n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Response::error(
                    422,
                    42202,
                    "The specified version is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"",
                )
            })?;
            live.iter().find(|(k, _)| *k == n).copied()
        }
    };
    let (number, entry) = found.ok_or_else(|| RegistryError::VersionNotFound(v.into()))?;
    let stored = state
        .schemas
        .get(&entry.id)
        .ok_or_else(|| RegistryError::SchemaNotFound(entry.id.to_string()))?;
    let mut body = json!({
        "subject": subject,
        "version": number,
        "id": entry.id,
        "schema": stored.schema,
    });
    decorate(&mut body, &stored.schema_type, &stored.references);
    Ok((body, stored.schema.clone()))
}

/// Adds `schemaType` (left out for AVRO, as Confluent does) and `references` when present.
fn decorate(body: &mut Value, schema_type: &str, references: &[Reference]) {
    if schema_type != "AVRO" {
        body["schemaType"] = json!(schema_type);
    }
    if !references.is_empty() {
        body["references"] = json!(references);
    }
}

fn schema_request(body: &[u8]) -> Result<(SchemaRequest, String), Response> {
    let req: SchemaRequest = parse_body(body)?;
    let schema_type = req
        .schema_type
        .clone()
        .unwrap_or_else(|| "AVRO".into())
        .to_ascii_uppercase();
    Ok((req, schema_type))
}

fn register(state: &State, subject: &str, body: &[u8]) -> Result<Response, Response> {
    let (req, schema_type) = schema_request(body)?;
    let r = state.register(subject, &schema_type, &req.schema, &req.references)?;
    Ok(Response {
        status: 200,
        body: json!({"id": r.id}),
        records: r.record.map(|(k, v)| (k, Some(v))).into_iter().collect(),
    })
}

fn lookup(state: &State, subject: &str, body: &[u8]) -> Result<Response, Response> {
    let (req, schema_type) = schema_request(body)?;
    if state.live_versions(subject).is_empty() {
        return Err(RegistryError::SubjectNotFound(subject.into()).into());
    }
    let (version, id) = state
        .lookup(subject, &schema_type, &req.schema, &req.references)?
        .ok_or_else(|| RegistryError::SchemaNotFound(String::new()))?;
    let mut body = json!({"subject": subject, "version": version, "id": id, "schema": req.schema});
    decorate(&mut body, &schema_type, &req.references);
    Ok(Response::ok(body))
}

fn parse_id(id: &str) -> Result<i32, Response> {
    id.parse()
        .map_err(|_| RegistryError::SchemaNotFound(id.into()).into())
}

/// Whether some version (soft-deleted ones too) still holds schema `id`: after a permanent
/// delete of every version that did, the id answers 40403, as in Confluent.
fn in_use(state: &State, id: i32) -> bool {
    state
        .subjects
        .values()
        .any(|vs| vs.values().any(|v| v.id == id))
}

fn by_id(state: &State, id: &str) -> Result<Value, Response> {
    let n = parse_id(id)?;
    let s = state
        .schemas
        .get(&n)
        .filter(|_| in_use(state, n))
        .ok_or_else(|| RegistryError::SchemaNotFound(id.into()))?;
    let mut body = json!({"schema": s.schema});
    decorate(&mut body, &s.schema_type, &s.references);
    Ok(body)
}

/// The (subject, version) pairs that hold schema `id`.
fn uses_of(state: &State, id: &str) -> Result<Vec<(String, i32)>, Response> {
    let n = parse_id(id)?;
    if !state.schemas.contains_key(&n) || !in_use(state, n) {
        return Err(RegistryError::SchemaNotFound(id.into()).into());
    }
    Ok(state
        .subjects
        .iter()
        .flat_map(|(s, vs)| {
            vs.iter()
                .filter(|(_, v)| v.id == n && !v.deleted)
                .map(move |(k, _)| (s.clone(), *k))
        })
        .collect())
}

/// POST /compatibility/subjects/{s}/versions[/{v}]: against the named version (or the
/// latest) in the level's direction, or, without a version, against what registration would
/// check.
fn compatibility(
    state: &State,
    subject: &str,
    version: Option<&str>,
    body: &[u8],
    verbose: bool,
) -> Result<Response, Response> {
    let (req, schema_type) = schema_request(body)?;
    let live = state.live_versions(subject);
    let against: Vec<i32> = match version {
        None => live.iter().map(|(n, _)| *n).collect(),
        Some(v) if v.eq_ignore_ascii_case("latest") || v == "-1" => {
            live.last().map(|(n, _)| *n).into_iter().collect()
        }
        Some(v) => {
            let n: i32 = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Response::error(
                    422,
                    42202,
                    format!("The specified version '{v}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
                )
            })?;
            if !live.iter().any(|(k, _)| *k == n) {
                return Err(RegistryError::VersionNotFound(v.into()).into());
            }
            vec![n]
        }
    };
    let messages = match state.incompatibilities_with(
        subject,
        &schema_type,
        &req.schema,
        &req.references,
        &against,
    ) {
        Ok(m) => m,
        // Verbose answers say why the schema does not parse instead of failing.
        Err(RegistryError::InvalidSchema(why)) if verbose => vec![why],
        Err(e) => return Err(e.into()),
    };
    let mut body = json!({"is_compatible": messages.is_empty()});
    if verbose {
        body["messages"] = json!(messages);
    }
    Ok(Response::ok(body))
}

fn set_config(subject: Option<&str>, body: &[u8]) -> Result<Response, Response> {
    let req: ConfigRequest = parse_body(body)?;
    let level = Level::parse(&req.compatibility).ok_or_else(|| {
        Response::error(
            422,
            42203,
            "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive",
        )
    })?;
    let value = ConfigValue {
        compatibility_level: Some(level),
        normalize: None,
    };
    Ok(Response {
        status: 200,
        body: json!({"compatibility": level}),
        records: vec![(
            Key::config(subject).encode(),
            Some(serde_json::to_vec(&value).unwrap_or_default()),
        )],
    })
}

fn delete_config(state: &State, subject: &str) -> Result<Response, Response> {
    if !state.subjects.contains_key(subject) {
        return Err(RegistryError::SubjectNotFound(subject.into()).into());
    }
    let previous = state
        .subject_levels
        .get(subject)
        .copied()
        .unwrap_or(state.level(subject));
    Ok(Response {
        status: 200,
        body: json!({"compatibilityLevel": previous}),
        records: vec![(Key::config(Some(subject)).encode(), None)],
    })
}

fn set_mode(subject: Option<&str>, body: &[u8]) -> Result<Response, Response> {
    let req: ModeValue = parse_body::<Value>(body).and_then(|v| {
        serde_json::from_value(v).map_err(|_| {
            Response::error(
                422,
                42204,
                "Invalid mode. Valid values are READWRITE, READONLY and IMPORT.",
            )
        })
    })?;
    Ok(Response {
        status: 200,
        body: json!({"mode": req.mode}),
        records: vec![(
            Key::mode(subject).encode(),
            Some(serde_json::to_vec(&req).unwrap_or_default()),
        )],
    })
}

/// DELETE /subjects/{s}: soft (every live version) or, after that, permanent (tombstones).
fn delete_subject(state: &State, subject: &str, permanent: bool) -> Result<Response, Response> {
    let all = state
        .subjects
        .get(subject)
        .ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
    let live: Vec<i32> = all
        .iter()
        .filter(|(_, v)| !v.deleted)
        .map(|(n, _)| *n)
        .collect();
    if permanent {
        if !live.is_empty() {
            return Err(Response::error(
                404,
                40405,
                format!(
                    "Subject '{subject}' was not deleted first before being permanently deleted"
                ),
            ));
        }
        let versions: Vec<i32> = all.keys().copied().collect();
        return Ok(Response {
            status: 200,
            body: json!(versions),
            records: versions
                .iter()
                .map(|v| (Key::schema(subject, *v).encode(), None))
                .collect(),
        });
    }
    let Some(latest) = live.last().copied() else {
        return Err(Response::error(
            404,
            40404,
            format!(
                "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
            ),
        ));
    };
    let value = DeleteSubjectValue {
        subject: subject.to_string(),
        version: latest,
    };
    Ok(Response {
        status: 200,
        body: json!(live),
        records: vec![(
            Key::DeleteSubject {
                subject: subject.to_string(),
                magic: 0,
            }
            .encode(),
            Some(serde_json::to_vec(&value).unwrap_or_default()),
        )],
    })
}

/// DELETE /subjects/{s}/versions/{v}: soft, or after that permanent.
fn delete_version(
    state: &State,
    subject: &str,
    v: &str,
    permanent: bool,
) -> Result<Response, Response> {
    let all = state
        .subjects
        .get(subject)
        .ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
    let number = match v {
        "latest" | "-1" => all.keys().next_back().copied(),
        n => n.parse::<i32>().ok().filter(|n| *n > 0),
    }
    .ok_or_else(|| {
        Response::error(
            422,
            42202,
            "The specified version is not a valid version id",
        )
    })?;
    let entry = all
        .get(&number)
        .ok_or_else(|| RegistryError::VersionNotFound(v.into()))?;
    match (permanent, entry.deleted) {
        (true, false) => Err(Response::error(
            404,
            40407,
            format!("Subject '{subject}' Version {number} was not deleted first before being permanently deleted"),
        )),
        (true, true) => Ok(Response {
            status: 200,
            body: json!(number),
            records: vec![(Key::schema(subject, number).encode(), None)],
        }),
        (false, true) => Err(Response::error(
            404,
            40406,
            format!("Subject '{subject}' Version {number} was soft deleted.Set permanent=true to delete permanently"),
        )),
        (false, false) => {
            let stored = state
                .schemas
                .get(&entry.id)
                .ok_or_else(|| RegistryError::SchemaNotFound(entry.id.to_string()))?;
            let value = SchemaValue {
                subject: subject.to_string(),
                version: number,
                id: entry.id,
                schema_type: (stored.schema_type != "AVRO").then(|| stored.schema_type.clone()),
                references: stored.references.clone(),
                schema: stored.schema.clone(),
                deleted: true,
            };
            Ok(Response {
                status: 200,
                body: json!(number),
                records: vec![(
                    Key::schema(subject, number).encode(),
                    Some(serde_json::to_vec(&value).unwrap_or_default()),
                )],
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a request and applies its records, as the server does.
    fn call(state: &mut State, method: &str, path: &str, body: &str) -> Response {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let r = handle(state, method, path, query, body.as_bytes());
        for (k, v) in &r.records {
            state.apply(k, v.as_deref());
        }
        r
    }

    fn schema_body(text: &str) -> String {
        json!({"schema": text}).to_string()
    }

    const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#;
    const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"note","type":"string","default":""}]}"#;
    const BAD: &str = r#"{"type":"record","name":"Order","fields":[{"name":"qty","type":"int"}]}"#;

    #[test]
    fn register_read_back_and_look_up_as_confluents_clients_do() {
        let mut s = State::default();
        let r = call(
            &mut s,
            "POST",
            "/subjects/orders-value/versions",
            &schema_body(V1),
        );
        assert_eq!((r.status, r.body.clone()), (200, json!({"id": 1})));
        assert_eq!(
            call(&mut s, "GET", "/subjects", "").body,
            json!(["orders-value"])
        );
        assert_eq!(
            call(&mut s, "GET", "/subjects/orders-value/versions", "").body,
            json!([1])
        );
        let latest = call(&mut s, "GET", "/subjects/orders-value/versions/latest", "");
        assert_eq!(latest.body["id"], 1);
        assert_eq!(latest.body["version"], 1);
        assert!(latest.body.get("schemaType").is_none(), "AVRO is left out");
        let raw = call(
            &mut s,
            "GET",
            "/subjects/orders-value/versions/1/schema",
            "",
        );
        assert_eq!(raw.body["name"], "Order");
        assert_eq!(call(&mut s, "GET", "/schemas/ids/1", "").body["schema"], V1);
        assert_eq!(
            call(&mut s, "GET", "/schemas/ids/1/versions", "").body,
            json!([{"subject": "orders-value", "version": 1}])
        );
        let found = call(&mut s, "POST", "/subjects/orders-value", &schema_body(V1));
        assert_eq!(found.body["version"], 1);
        let r2 = call(
            &mut s,
            "POST",
            "/subjects/orders-value/versions",
            &schema_body(V2),
        );
        assert_eq!(r2.body, json!({"id": 2}));
    }

    #[test]
    fn compatibility_is_checked_and_explained() {
        let mut s = State::default();
        call(&mut s, "POST", "/subjects/t/versions", &schema_body(V1));
        let check = call(
            &mut s,
            "POST",
            "/compatibility/subjects/t/versions/latest?verbose=true",
            &schema_body(BAD),
        );
        assert_eq!(check.body["is_compatible"], false);
        assert!(check.body["messages"][0]
            .as_str()
            .is_some_and(|m| m.contains("READER_FIELD_MISSING_DEFAULT_VALUE")));
        // A named version that does not exist is 40402; without a version, every live one.
        let missing = call(
            &mut s,
            "POST",
            "/compatibility/subjects/t/versions/9",
            &schema_body(BAD),
        );
        assert_eq!(missing.body["error_code"], 40402);
        let all = call(
            &mut s,
            "POST",
            "/compatibility/subjects/t/versions",
            &schema_body(BAD),
        );
        assert_eq!(all.body["is_compatible"], false);
        let unparsable = call(
            &mut s,
            "POST",
            "/compatibility/subjects/t/versions/latest?verbose=true",
            &schema_body("{"),
        );
        assert_eq!(unparsable.status, 200);
        assert_eq!(unparsable.body["is_compatible"], false);
        let refused = call(&mut s, "POST", "/subjects/t/versions", &schema_body(BAD));
        assert_eq!(refused.status, 409);
        assert_eq!(refused.body["error_code"], 409);
        assert!(refused.records.is_empty());
        let set = call(&mut s, "PUT", "/config/t", r#"{"compatibility":"NONE"}"#);
        assert_eq!(set.body, json!({"compatibility": "NONE"}));
        assert_eq!(
            call(&mut s, "GET", "/config/t", "").body["compatibilityLevel"],
            "NONE"
        );
        assert_eq!(
            call(&mut s, "GET", "/config", "").body["compatibilityLevel"],
            "BACKWARD"
        );
        assert_eq!(
            call(&mut s, "POST", "/subjects/t/versions", &schema_body(BAD)).status,
            200
        );
    }

    #[test]
    fn errors_carry_confluents_codes() {
        let mut s = State::default();
        let code = |r: Response| (r.status, r.body["error_code"].as_u64().unwrap_or(0));
        assert_eq!(
            code(call(&mut s, "GET", "/subjects/nope/versions", "")),
            (404, 40401)
        );
        assert_eq!(
            code(call(&mut s, "GET", "/schemas/ids/9", "")),
            (404, 40403)
        );
        assert_eq!(
            code(call(&mut s, "GET", "/schemas/ids/x", "")),
            (404, 40403)
        );
        assert_eq!(
            code(call(
                &mut s,
                "POST",
                "/subjects/t/versions",
                &schema_body("{")
            )),
            (422, 42201)
        );
        assert_eq!(
            code(call(&mut s, "POST", "/subjects/t/versions", "not json")),
            (422, 42200)
        );
        call(&mut s, "POST", "/subjects/t/versions", &schema_body(V1));
        assert_eq!(
            code(call(&mut s, "GET", "/subjects/t/versions/7", "")),
            (404, 40402)
        );
        assert_eq!(
            code(call(&mut s, "GET", "/subjects/t/versions/0", "")),
            (422, 42202)
        );
        assert_eq!(
            code(call(&mut s, "POST", "/subjects/t", &schema_body(V2))),
            (404, 40403)
        );
        assert_eq!(
            code(call(
                &mut s,
                "PUT",
                "/config",
                r#"{"compatibility":"SIDEWAYS"}"#
            )),
            (422, 42203)
        );
        assert_eq!(code(call(&mut s, "GET", "/config/t", "")), (404, 40408));
        assert_eq!(code(call(&mut s, "GET", "/nothing/here", "")), (404, 404));
    }

    #[test]
    fn deletes_are_soft_first_then_permanent() {
        let mut s = State::default();
        call(&mut s, "POST", "/subjects/t/versions", &schema_body(V1));
        call(&mut s, "POST", "/subjects/t/versions", &schema_body(V2));
        let code = |r: &Response| r.body["error_code"].as_u64().unwrap_or(0);
        let r = call(
            &mut s,
            "DELETE",
            "/subjects/t/versions/1?permanent=true",
            "",
        );
        assert_eq!(code(&r), 40407, "permanent needs a soft delete first");
        assert_eq!(
            call(&mut s, "DELETE", "/subjects/t/versions/1", "").body,
            json!(1)
        );
        assert_eq!(
            call(&mut s, "GET", "/subjects/t/versions", "").body,
            json!([2])
        );
        assert_eq!(
            call(&mut s, "GET", "/subjects/t/versions?deleted=true", "").body,
            json!([1, 2])
        );
        assert_eq!(
            code(&call(&mut s, "DELETE", "/subjects/t/versions/1", "")),
            40406
        );
        assert_eq!(
            call(
                &mut s,
                "DELETE",
                "/subjects/t/versions/1?permanent=true",
                ""
            )
            .body,
            json!(1)
        );
        assert_eq!(
            code(&call(&mut s, "DELETE", "/subjects/t?permanent=true", "")),
            40405
        );
        assert_eq!(call(&mut s, "DELETE", "/subjects/t", "").body, json!([2]));
        assert_eq!(call(&mut s, "GET", "/subjects", "").body, json!([]));
        assert_eq!(code(&call(&mut s, "DELETE", "/subjects/t", "")), 40404);
        assert_eq!(
            call(&mut s, "DELETE", "/subjects/t?permanent=true", "").body,
            json!([2])
        );
        assert_eq!(
            call(&mut s, "GET", "/subjects?deleted=true", "").body,
            json!([])
        );
        // No version holds the ids any more: they answer 40403, as in Confluent.
        assert_eq!(code(&call(&mut s, "GET", "/schemas/ids/2", "")), 40403);
    }

    #[test]
    fn modes_and_subject_configs_are_set_and_cleared() {
        let mut s = State::default();
        call(&mut s, "POST", "/subjects/t/versions", &schema_body(V1));
        assert_eq!(
            call(&mut s, "PUT", "/mode", r#"{"mode":"READONLY"}"#).body,
            json!({"mode": "READONLY"})
        );
        assert_eq!(
            call(&mut s, "POST", "/subjects/t/versions", &schema_body(V2)).body["error_code"],
            42205
        );
        assert_eq!(
            call(&mut s, "PUT", "/mode", r#"{"mode":"SIDEWAYS"}"#).body["error_code"],
            42204
        );
        call(&mut s, "PUT", "/mode", r#"{"mode":"READWRITE"}"#);
        call(&mut s, "PUT", "/config/t", r#"{"compatibility":"FULL"}"#);
        assert_eq!(
            call(&mut s, "DELETE", "/config/t", "").body,
            json!({"compatibilityLevel": "FULL"})
        );
        assert_eq!(
            call(&mut s, "GET", "/config/t", "").body["error_code"],
            40408
        );
    }
}
