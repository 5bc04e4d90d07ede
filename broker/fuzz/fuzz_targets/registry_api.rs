//! Confluent REST API requests with arbitrary bodies (schemas, references, configs) against a
//! registry holding one schema: every answer is a status and JSON, never a panic, and the
//! records a write returns replay cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spate_registry::api::handle;
use spate_registry::state::State;

const V1: &str = r#"{"schema":"{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]}"}"#;
const ROUTES: [(&str, &str, &str); 6] = [
    ("POST", "/subjects/t/versions", ""),
    ("POST", "/subjects/t", ""),
    ("POST", "/compatibility/subjects/t/versions/latest", "verbose=true"),
    ("PUT", "/config/t", ""),
    ("PUT", "/config", ""),
    ("GET", "/subjects/t/versions/latest", ""),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let mut state = State::default();
    for (k, v) in handle(&state, "POST", "/subjects/t/versions", "", V1.as_bytes()).records {
        state.apply(&k, v.as_deref());
    }
    let (method, path, query) = ROUTES[usize::from(pick) % ROUTES.len()];
    let r = handle(&state, method, path, query, body);
    assert!((200..600).contains(&r.status));
    for (k, v) in r.records {
        state.apply(&k, v.as_deref());
    }
});
