//! The registry as a replay of the `_schemas` topic, and the decisions a write makes against
//! it: what id and version a registration gets (or which existing one it is), whether it is
//! compatible. Writes return the records to append; the state changes only when those records
//! come back through the replay, so every broker (and a restart) sees the same registry.

use std::collections::BTreeMap;

use crate::avro;
use crate::compat::{self, Level};
use crate::error::RegistryError;
use crate::records::{
    ConfigValue, DeleteSubjectValue, Key, Mode, ModeValue, Reference, SchemaValue,
};

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Global id of its schema.
    pub id: i32,
    /// Soft-deleted.
    pub deleted: bool,
}

/// A schema by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// `AVRO`, `PROTOBUF` or `JSON`.
    pub schema_type: String,
    /// The text as registered.
    pub schema: String,
    /// Referenced schemas.
    pub references: Vec<Reference>,
    /// What decides "the same schema".
    pub canonical: String,
}

impl Stored {
    /// The same schema: type, text (canonically) and references (a schema naming another
    /// subject's v1 is not the one naming its v2), as Confluent's identity.
    fn same(&self, schema_type: &str, canonical: &str, references: &[Reference]) -> bool {
        self.schema_type == schema_type
            && self.canonical == canonical
            && self.references == references
    }
}

/// The registry.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// Schemas by id.
    pub schemas: BTreeMap<i32, Stored>,
    /// Versions by subject.
    pub subjects: BTreeMap<String, BTreeMap<i32, Version>>,
    /// Global and per-subject compatibility levels.
    pub global_level: Option<Level>,
    /// Per subject.
    pub subject_levels: BTreeMap<String, Level>,
    /// Global mode.
    pub global_mode: Mode,
    /// Per subject.
    pub subject_modes: BTreeMap<String, Mode>,
}

/// What a registration decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The schema's id.
    pub id: i32,
    /// The record to append (key, value); `None` when the subject already has this schema.
    pub record: Option<(Vec<u8>, Vec<u8>)>,
}

const AVRO: &str = "AVRO";

/// Parses `text` as `schema_type` and returns its canonical form.
pub fn canonical(
    schema_type: &str,
    text: &str,
    references: &[&str],
) -> Result<String, RegistryError> {
    match schema_type {
        AVRO => avro::parse(text, references)
            .and_then(|_| avro::canonical(text))
            .map_err(|e| RegistryError::InvalidSchema(format!("Invalid schema: {e}"))),
        other => Err(RegistryError::InvalidSchema(format!(
            "Schema type {other} is not supported yet"
        ))),
    }
}

impl State {
    /// Applies one record of the topic (`value` None: a tombstone). Unknown or malformed
    /// records are skipped, as Confluent skips them.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Some(key) = Key::decode(key) else { return };
        match key {
            Key::Schema {
                subject, version, ..
            } => match value.and_then(|v| serde_json::from_slice::<SchemaValue>(v).ok()) {
                Some(v) => {
                    let schema_type = v.schema_type.clone().unwrap_or_else(|| AVRO.into());
                    let texts: Vec<String> = v
                        .references
                        .iter()
                        .filter_map(|r| self.reference_text(r))
                        .collect();
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    let canonical = canonical(&schema_type, &v.schema, &refs)
                        .unwrap_or_else(|_| v.schema.clone());
                    self.schemas.entry(v.id).or_insert(Stored {
                        schema_type,
                        schema: v.schema,
                        references: v.references,
                        canonical,
                    });
                    self.subjects.entry(subject).or_default().insert(
                        version,
                        Version {
                            id: v.id,
                            deleted: v.deleted,
                        },
                    );
                }
                None => {
                    if let Some(versions) = self.subjects.get_mut(&subject) {
                        versions.remove(&version);
                        if versions.is_empty() {
                            self.subjects.remove(&subject);
                        }
                    }
                }
            },
            Key::Config { subject, .. } => {
                let level = value
                    .and_then(|v| serde_json::from_slice::<ConfigValue>(v).ok())
                    .and_then(|c| c.compatibility_level);
                match (subject, level) {
                    (None, l) => self.global_level = l,
                    (Some(s), Some(l)) => {
                        self.subject_levels.insert(s, l);
                    }
                    (Some(s), None) => {
                        self.subject_levels.remove(&s);
                    }
                }
            }
            Key::Mode { subject, .. } => {
                let mode = value
                    .and_then(|v| serde_json::from_slice::<ModeValue>(v).ok())
                    .map(|m| m.mode);
                match (subject, mode) {
                    (None, m) => self.global_mode = m.unwrap_or_default(),
                    (Some(s), Some(m)) => {
                        self.subject_modes.insert(s, m);
                    }
                    (Some(s), None) => {
                        self.subject_modes.remove(&s);
                    }
                }
            }
            Key::DeleteSubject { subject, .. } => {
                // Confluent ignores tombstones of anything but SCHEMA keys.
                let Some(upto) = value
                    .and_then(|v| serde_json::from_slice::<DeleteSubjectValue>(v).ok())
                    .map(|d| d.version)
                else {
                    return;
                };
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    for (_, v) in versions.range_mut(..=upto) {
                        v.deleted = true;
                    }
                }
            }
            Key::ClearSubject { .. } | Key::Noop { .. } => {}
        }
    }

    fn reference_text(&self, r: &Reference) -> Option<String> {
        let v = self.subjects.get(&r.subject)?.get(&r.version)?;
        self.schemas.get(&v.id).map(|s| s.schema.clone())
    }

    /// The level that applies to `subject`.
    pub fn level(&self, subject: &str) -> Level {
        self.subject_levels
            .get(subject)
            .copied()
            .or(self.global_level)
            .unwrap_or_default()
    }

    /// The mode that applies to `subject`.
    pub fn mode(&self, subject: &str) -> Mode {
        self.subject_modes
            .get(subject)
            .copied()
            .unwrap_or(self.global_mode)
    }

    /// `subject`'s live (not soft-deleted) versions, oldest first.
    pub fn live_versions(&self, subject: &str) -> Vec<(i32, &Version)> {
        self.subjects
            .get(subject)
            .map(|vs| {
                vs.iter()
                    .filter(|(_, v)| !v.deleted)
                    .map(|(n, v)| (*n, v))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The live version of `subject` holding this schema, if any.
    pub fn lookup(
        &self,
        subject: &str,
        schema_type: &str,
        text: &str,
        references: &[Reference],
    ) -> Result<Option<(i32, i32)>, RegistryError> {
        let canonical = self.canonical_of(schema_type, text, references)?;
        Ok(self.live_versions(subject).into_iter().find_map(|(n, v)| {
            self.schemas
                .get(&v.id)
                .filter(|s| s.same(schema_type, &canonical, references))
                .map(|_| (n, v.id))
        }))
    }

    fn canonical_of(
        &self,
        schema_type: &str,
        text: &str,
        references: &[Reference],
    ) -> Result<String, RegistryError> {
        let mut texts = Vec::new();
        for r in references {
            texts.push(self.reference_text(r).ok_or_else(|| {
                RegistryError::InvalidSchema(format!(
                    "Invalid schema: reference {} to subject {} version {} does not exist",
                    r.name, r.subject, r.version
                ))
            })?);
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        canonical(schema_type, text, &refs)
    }

    /// Decides a registration of `text` under `subject`: the existing version's id when the
    /// subject has this schema, else a compatibility check and the record of a new version
    /// (the same id as an identical schema under another subject, else the next id).
    pub fn register(
        &self,
        subject: &str,
        schema_type: &str,
        text: &str,
        references: &[Reference],
    ) -> Result<Registration, RegistryError> {
        if self.mode(subject) == Mode::Readonly {
            return Err(RegistryError::ReadOnly(subject.to_string()));
        }
        if let Some((_, id)) = self.lookup(subject, schema_type, text, references)? {
            return Ok(Registration { id, record: None });
        }
        let canonical = self.canonical_of(schema_type, text, references)?;
        let problems = self.incompatibilities(subject, schema_type, text, references)?;
        if !problems.is_empty() {
            return Err(RegistryError::Incompatible(subject.to_string(), problems));
        }
        let id = self
            .schemas
            .iter()
            .find(|(_, s)| s.same(schema_type, &canonical, references))
            .map(|(id, _)| *id)
            .unwrap_or_else(|| self.schemas.keys().next_back().map_or(1, |m| m + 1));
        // Versions keep counting past soft-deleted ones.
        let version = self
            .subjects
            .get(subject)
            .and_then(|vs| vs.keys().next_back())
            .map_or(1, |v| v + 1);
        let value = SchemaValue {
            subject: subject.to_string(),
            version,
            id,
            schema_type: (schema_type != AVRO).then(|| schema_type.to_string()),
            references: references.to_vec(),
            schema: text.to_string(),
            deleted: false,
        };
        Ok(Registration {
            id,
            record: Some((
                Key::schema(subject, version).encode(),
                serde_json::to_vec(&value).unwrap_or_default(),
            )),
        })
    }

    /// Why `text` may not become `subject`'s next version at its level (empty: it may).
    pub fn incompatibilities(
        &self,
        subject: &str,
        schema_type: &str,
        text: &str,
        references: &[Reference],
    ) -> Result<Vec<String>, RegistryError> {
        let versions: Vec<i32> = self
            .live_versions(subject)
            .iter()
            .map(|(n, _)| *n)
            .collect();
        self.incompatibilities_with(subject, schema_type, text, references, &versions)
    }

    /// Why `text` is incompatible with `subject`'s `versions` (oldest first) at the subject's
    /// level: the compatibility endpoint names one version, registration all live ones.
    pub fn incompatibilities_with(
        &self,
        subject: &str,
        schema_type: &str,
        text: &str,
        references: &[Reference],
        versions: &[i32],
    ) -> Result<Vec<String>, RegistryError> {
        if schema_type != AVRO {
            return Err(RegistryError::InvalidSchema(format!(
                "Schema type {schema_type} is not supported yet"
            )));
        }
        let parse = |text: &str, refs: &[Reference]| -> Result<avro::AvroSchema, RegistryError> {
            let texts: Vec<String> = refs.iter().filter_map(|r| self.reference_text(r)).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            avro::parse(text, &refs)
                .map_err(|e| RegistryError::InvalidSchema(format!("Invalid schema: {e}")))
        };
        let new = parse(text, references)?;
        let level = self.level(subject);
        if level == Level::None {
            return Ok(Vec::new());
        }
        let mut existing = Vec::new();
        for n in versions {
            let id = self
                .subjects
                .get(subject)
                .and_then(|vs| vs.get(n))
                .map(|v| v.id);
            if let Some(s) = id
                .and_then(|id| self.schemas.get(&id))
                .filter(|s| s.schema_type == AVRO)
            {
                existing.push(parse(&s.schema, &s.references)?);
            }
        }
        Ok(compat::check(level, &new, &existing, |w, r| {
            avro::can_read(w, r)
                .into_iter()
                .map(|i| {
                    format!(
                        "{{errorType:'{}', description:'{}', additionalInfo:'{}'}}",
                        i.kind, i.message, i.path
                    )
                })
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(state: &mut State, r: &Registration) {
        if let Some((k, v)) = &r.record {
            state.apply(k, Some(v));
        }
    }

    const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#;
    const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"note","type":"string","default":""}]}"#;
    const BAD: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"qty","type":"int"}]}"#;

    #[test]
    fn registering_twice_gives_the_same_id_and_one_version() {
        let mut s = State::default();
        let r = s
            .register("orders-value", AVRO, V1, &[])
            .expect("registers");
        assert_eq!(r.id, 1);
        replay(&mut s, &r);
        // The same schema, written differently, is the same schema.
        let spaced = V1.replace(',', " , ");
        let again = s
            .register("orders-value", AVRO, &spaced, &[])
            .expect("registers");
        assert_eq!(
            again,
            Registration {
                id: 1,
                record: None
            }
        );
        // Under another subject: a new version 1 with the same id.
        let other = s
            .register("payments-value", AVRO, V1, &[])
            .expect("registers");
        assert_eq!(other.id, 1);
        assert!(other.record.is_some());
        replay(&mut s, &other);
        let v2 = s
            .register("orders-value", AVRO, V2, &[])
            .expect("backward compatible");
        assert_eq!(v2.id, 2);
        replay(&mut s, &v2);
        assert_eq!(s.live_versions("orders-value").len(), 2);
        assert_eq!(
            s.lookup("orders-value", AVRO, V2, &[]).expect("ok"),
            Some((2, 2))
        );
    }

    #[test]
    fn an_incompatible_schema_is_refused_unless_the_level_is_none() {
        let mut s = State::default();
        let r = s.register("t-value", AVRO, V1, &[]).expect("v1");
        replay(&mut s, &r);
        match s.register("t-value", AVRO, BAD, &[]) {
            Err(RegistryError::Incompatible(_, why)) => {
                assert!(
                    why[0].contains("READER_FIELD_MISSING_DEFAULT_VALUE"),
                    "{why:?}"
                );
            }
            other => panic!("expected incompatible, got {other:?}"),
        }
        s.apply(
            &Key::config(Some("t-value")).encode(),
            Some(br#"{"compatibilityLevel":"NONE"}"#),
        );
        assert!(s.register("t-value", AVRO, BAD, &[]).is_ok());
    }

    #[test]
    fn soft_deleted_versions_leave_the_check_and_keep_their_numbers() {
        let mut s = State::default();
        let r = s.register("t", AVRO, V1, &[]).expect("v1");
        replay(&mut s, &r);
        s.apply(
            &Key::DeleteSubject {
                subject: "t".into(),
                magic: 0,
            }
            .encode(),
            Some(br#"{"subject":"t","version":1}"#),
        );
        assert!(s.live_versions("t").is_empty());
        let r = s
            .register("t", AVRO, BAD, &[])
            .expect("nothing live to check against");
        replay(&mut s, &r);
        assert_eq!(
            s.live_versions("t")[0].0,
            2,
            "versions continue after deleted ones"
        );
        // A tombstone removes a version for good.
        s.apply(&Key::schema("t", 1).encode(), None);
        assert_eq!(s.subjects["t"].len(), 1);
    }

    #[test]
    fn bad_input_gets_registry_errors_not_panics() {
        let s = State::default();
        assert!(matches!(
            s.register("t", AVRO, "{", &[]),
            Err(RegistryError::InvalidSchema(_))
        ));
        assert!(matches!(
            s.register("t", "PROTOBUF", "syntax = \"proto3\";", &[]),
            Err(RegistryError::InvalidSchema(_))
        ));
        let missing = Reference {
            name: "Other".into(),
            subject: "nope".into(),
            version: 1,
        };
        assert!(matches!(
            s.register("t", AVRO, V1, &[missing]),
            Err(RegistryError::InvalidSchema(_))
        ));
        let mut replayed = State::default();
        replayed.apply(b"garbage", Some(b"more garbage"));
        replayed.apply(&Key::schema("t", 1).encode(), Some(b"{not json"));
        assert!(replayed.subjects.is_empty());
    }

    #[test]
    fn references_resolve_through_their_subjects() {
        let mut s = State::default();
        let customer = r#"{"type":"record","name":"Customer","namespace":"shop","fields":[{"name":"name","type":"string"}]}"#;
        let r = s
            .register("customer", AVRO, customer, &[])
            .expect("customer");
        replay(&mut s, &r);
        let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"customer","type":"shop.Customer"}]}"#;
        let refs = [Reference {
            name: "shop.Customer".into(),
            subject: "customer".into(),
            version: 1,
        }];
        let r = s
            .register("order", AVRO, order, &refs)
            .expect("order with a reference");
        assert_eq!(r.id, 2);
        replay(&mut s, &r);
        assert_eq!(s.schemas[&2].references, refs.to_vec());
    }

    #[test]
    fn read_only_subjects_refuse_writes() {
        let mut s = State::default();
        s.apply(&Key::mode(None).encode(), Some(br#"{"mode":"READONLY"}"#));
        assert!(matches!(
            s.register("t", AVRO, V1, &[]),
            Err(RegistryError::ReadOnly(_))
        ));
    }
}
