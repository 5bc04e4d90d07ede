//! The `_schemas` topic's record format, Confluent's, so that a Confluent Schema Registry
//! pointed at the cluster reads the same data: JSON keys
//! `{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}` (also CONFIG, MODE,
//! DELETE_SUBJECT, CLEAR_SUBJECT, NOOP) and JSON values; a null value (tombstone) is a
//! permanent delete.

use serde::{Deserialize, Serialize};

use crate::compat::Level;

/// A record key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Key {
    /// One version of a subject.
    Schema {
        subject: String,
        version: i32,
        magic: i32,
    },
    /// The compatibility level of a subject, or the global one (`subject: null`).
    Config { subject: Option<String>, magic: i32 },
    /// The mode of a subject, or the global one.
    Mode { subject: Option<String>, magic: i32 },
    /// A subject soft-deleted up to a version.
    DeleteSubject { subject: String, magic: i32 },
    /// A subject's soft-deleted versions removed for good.
    ClearSubject { subject: String, magic: i32 },
    /// Written to find the end of the topic; carries nothing.
    Noop { magic: i32 },
}

impl Key {
    /// The key of `subject`'s `version`.
    pub fn schema(subject: &str, version: i32) -> Key {
        Key::Schema {
            subject: subject.to_string(),
            version,
            magic: 1,
        }
    }

    /// The key of `subject`'s config (None: global).
    pub fn config(subject: Option<&str>) -> Key {
        Key::Config {
            subject: subject.map(str::to_string),
            magic: 0,
        }
    }

    /// The key of `subject`'s mode (None: global).
    pub fn mode(subject: Option<&str>) -> Key {
        Key::Mode {
            subject: subject.map(str::to_string),
            magic: 0,
        }
    }

    /// The key's JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a key; `None` for one this version does not know (skipped on replay, as
    /// Confluent skips unknown key types).
    pub fn decode(bytes: &[u8]) -> Option<Key> {
        serde_json::from_slice(bytes).ok()
    }
}

/// A schema reference: another subject's version this schema names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The name the schema uses (an Avro full name, a Protobuf import, a JSON `$ref`).
    pub name: String,
    /// The subject holding it.
    pub subject: String,
    /// Its version.
    pub version: i32,
}

/// The value of a SCHEMA record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaValue {
    /// Subject.
    pub subject: String,
    /// Version within the subject.
    pub version: i32,
    /// Global schema id.
    pub id: i32,
    /// `AVRO` (left out, as Confluent leaves it out), `PROTOBUF` or `JSON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    /// Referenced schemas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// The schema text.
    pub schema: String,
    /// Soft-deleted.
    #[serde(default)]
    pub deleted: bool,
}

/// The value of a CONFIG record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigValue {
    /// The level; absent means "inherit".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility_level: Option<Level>,
    /// Normalize schemas before comparing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
}

/// A registry mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    /// Reads and writes.
    #[default]
    Readwrite,
    /// Reads only.
    Readonly,
    /// Writes keep the ids they are given (migrations).
    Import,
}

/// The value of a MODE record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeValue {
    /// The mode.
    pub mode: Mode,
}

/// The value of a DELETE_SUBJECT record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSubjectValue {
    /// Subject.
    pub subject: String,
    /// Every version up to this one is soft-deleted.
    pub version: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_confluents_json() {
        let k = Key::schema("orders-value", 3);
        assert_eq!(
            String::from_utf8(k.encode()).expect("utf8"),
            r#"{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}"#
        );
        assert_eq!(Key::decode(&k.encode()), Some(k));
        assert_eq!(
            Key::decode(br#"{"keytype":"CONFIG","subject":null,"magic":0}"#),
            Some(Key::config(None))
        );
        assert_eq!(
            Key::decode(br#"{"keytype":"SOMETHING_NEW","magic":0}"#),
            None
        );
        assert_eq!(Key::decode(b"not json"), None);
    }

    #[test]
    fn values_read_what_confluent_writes() {
        let v: SchemaValue = serde_json::from_str(
            r#"{"subject":"s","version":1,"id":7,"schema":"\"string\"","deleted":false}"#,
        )
        .expect("avro value without schemaType");
        assert_eq!(v.schema_type, None);
        assert_eq!(v.id, 7);
        let c: ConfigValue =
            serde_json::from_str(r#"{"compatibilityLevel":"FULL_TRANSITIVE"}"#).expect("config");
        assert_eq!(c.compatibility_level, Some(Level::FullTransitive));
        let m: ModeValue = serde_json::from_str(r#"{"mode":"IMPORT"}"#).expect("mode");
        assert_eq!(m.mode, Mode::Import);
        assert_eq!(
            serde_json::to_string(&v).expect("json"),
            r#"{"subject":"s","version":1,"id":7,"schema":"\"string\"","deleted":false}"#
        );
    }
}
