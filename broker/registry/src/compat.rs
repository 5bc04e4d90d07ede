//! Compatibility levels, as Confluent's Schema Registry defines them: which existing versions
//! a new schema is checked against, and in which direction.
//!
//! - BACKWARD: consumers using the new schema can read data written with the latest version.
//! - FORWARD: consumers using the latest version can read data written with the new schema.
//! - FULL: both. The `_TRANSITIVE` forms check against every version, not only the latest.
//! - NONE: no check.

use serde::{Deserialize, Serialize};

/// A subject's (or the global) compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// No check.
    None,
    /// New readers read the latest version's data (the default).
    #[default]
    Backward,
    /// New readers read every version's data.
    BackwardTransitive,
    /// The latest version's readers read new data.
    Forward,
    /// Every version's readers read new data.
    ForwardTransitive,
    /// Backward and forward with the latest version.
    Full,
    /// Backward and forward with every version.
    FullTransitive,
}

impl Level {
    /// Parses Confluent's names (`BACKWARD_TRANSITIVE`, ...), any case.
    pub fn parse(s: &str) -> Option<Level> {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_uppercase())).ok()
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }
}

/// Why `new` may not follow `existing` (oldest first) at `level`; empty when it may. `reads`
/// answers, for a writer and a reader schema, why the reader cannot read the writer's data.
pub fn check<S>(
    level: Level,
    new: &S,
    existing: &[S],
    reads: impl Fn(&S, &S) -> Vec<String>,
) -> Vec<String> {
    let against: &[S] = match (level.transitive(), existing.split_last()) {
        (_, None) => &[],
        (true, _) => existing,
        (false, Some((latest, _))) => std::slice::from_ref(latest),
    };
    let mut out = Vec::new();
    for old in against.iter().rev() {
        if level.backward() {
            out.extend(reads(old, new));
        }
        if level.forward() {
            out.extend(reads(new, old));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro::{can_read, parse, AvroSchema};

    fn v(fields: &str) -> AvroSchema {
        parse(
            &format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#),
            &[],
        )
        .expect("schema")
    }

    fn avro(w: &AvroSchema, r: &AvroSchema) -> Vec<String> {
        can_read(w, r)
            .into_iter()
            .map(|i| format!("{} at {}", i.kind, i.path))
            .collect()
    }

    #[test]
    fn levels_parse_confluents_names() {
        assert_eq!(
            Level::parse("backward_transitive"),
            Some(Level::BackwardTransitive)
        );
        assert_eq!(Level::parse("FULL"), Some(Level::Full));
        assert_eq!(Level::parse("SIDEWAYS"), None);
        assert_eq!(Level::default(), Level::Backward);
    }

    #[test]
    fn each_level_checks_its_direction_and_versions() {
        let v1 = v(r#"{"name":"a","type":"int"}"#);
        // v2 adds a field without a default: old data lacks it (not backward), old readers
        // skip it (forward).
        let v2 = v(r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#);
        let ok =
            |level, new: &AvroSchema, old: &[AvroSchema]| check(level, new, old, avro).is_empty();
        let old_v1 = std::slice::from_ref(&v1);
        assert!(!ok(Level::Backward, &v2, old_v1));
        assert!(ok(Level::Forward, &v2, old_v1));
        assert!(!ok(Level::Full, &v2, old_v1));
        assert!(ok(Level::None, &v2, old_v1));
        assert!(
            ok(Level::Backward, &v1, &[]),
            "the first version always passes"
        );

        // Transitive levels look past the latest version: int, long, int.
        let wide = v(r#"{"name":"a","type":"long"}"#);
        let narrow = v(r#"{"name":"a","type":"int"}"#);
        let history = [narrow.clone(), wide.clone(), narrow.clone()];
        // Latest is int: a new long reader reads it (backward) ...
        assert!(ok(Level::Backward, &wide, &history));
        // ... and so every version: transitive also passes.
        assert!(ok(Level::BackwardTransitive, &wide, &history));
        // A new int reader reads the latest (int) but not the long in the middle.
        assert!(ok(Level::Backward, &narrow, &history));
        assert!(!ok(Level::BackwardTransitive, &narrow, &history));
        assert!(!ok(Level::FullTransitive, &narrow, &history));
        assert!(
            !ok(Level::ForwardTransitive, &wide, &history),
            "int readers cannot read long"
        );
    }
}
