//! Avro schemas: parsing (apache-avro), the canonical form that decides "the same schema",
//! and whether data written with one schema can be read with another — the Avro
//! specification's schema resolution rules, as Java's `SchemaCompatibility` (which Confluent's
//! registry uses) applies them: type promotions, record fields matched by name or alias with
//! defaults for missing ones, enum symbols (or the reader's enum default), unions branch by
//! branch, named types matched by name or alias. apache-avro's own checker ignores aliases and
//! enum defaults, so the rules are here.

use std::collections::{HashMap, HashSet};

use apache_avro::schema::{Name, RecordSchema};
use apache_avro::Schema;

/// A parsed Avro schema with the named types it (and its references) define.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    /// The schema.
    pub schema: Schema,
    /// Named types by full name and by short name, for `Ref`s.
    names: HashMap<String, Schema>,
}

/// Why data written with one schema cannot be read with another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// Java's `SchemaIncompatibilityType` name (Confluent shows it in verbose messages).
    pub kind: &'static str,
    /// Where, as a JSON-pointer-like path into the reader schema (`/fields/1/type`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Parses `text`, with `references` (schema texts it may name) parsed first.
pub fn parse(text: &str, references: &[&str]) -> Result<AvroSchema, String> {
    let schema = if references.is_empty() {
        Schema::parse_str(text).map_err(|e| e.to_string())?
    } else {
        let (schema, _) =
            Schema::parse_str_with_list(text, references).map_err(|e| e.to_string())?;
        schema
    };
    let mut names = HashMap::new();
    collect_names(&schema, &mut names);
    for r in references {
        if let Ok(s) = Schema::parse_str(r) {
            collect_names(&s, &mut names);
        }
    }
    Ok(AvroSchema { schema, names })
}

/// What decides "the same schema": the schema's JSON with every attribute kept (defaults,
/// docs, aliases, logical types, custom properties — as Confluent's identity keeps them) in a
/// fixed key order without whitespace. Avro's Parsing Canonical Form drops defaults, aliases
/// and logical types, so a schema that only adds a default would look already registered.
pub fn canonical(text: &str) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = String::new();
    write_sorted(&value, &mut out);
    Ok(out)
}

fn write_sorted(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                write_sorted(&map[k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn full_name(n: &Name) -> String {
    match &n.namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}.{}", n.name),
        _ => n.name.clone(),
    }
}

fn collect_names(s: &Schema, out: &mut HashMap<String, Schema>) {
    let mut add = |n: &Name, s: &Schema| {
        out.insert(full_name(n), s.clone());
        out.entry(n.name.clone()).or_insert_with(|| s.clone());
    };
    match s {
        Schema::Record(r) => {
            add(&r.name, s);
            for f in &r.fields {
                collect_names(&f.schema, out);
            }
        }
        Schema::Enum(e) => add(&e.name, s),
        Schema::Fixed(f) => add(&f.name, s),
        Schema::Array(a) => collect_names(&a.items, out),
        Schema::Map(m) => collect_names(&m.types, out),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, out)),
        Schema::Decimal(d) => collect_names(&d.inner, out),
        _ => {}
    }
}

static INT: Schema = Schema::Int;
static LONG: Schema = Schema::Long;
static STRING: Schema = Schema::String;
static BYTES: Schema = Schema::Bytes;

/// The schema as resolution sees it: references followed, logical types as their underlying
/// type (the specification resolves on those).
fn base<'a>(s: &'a Schema, names: &'a HashMap<String, Schema>) -> &'a Schema {
    match s {
        Schema::Ref { name } => names
            .get(&full_name(name))
            .or_else(|| names.get(&name.name))
            .map_or(s, |t| base(t, names)),
        Schema::Date | Schema::TimeMillis => &INT,
        Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => &LONG,
        Schema::Uuid => &STRING,
        Schema::BigDecimal => &BYTES,
        Schema::Decimal(d) => base(&d.inner, names),
        other => other,
    }
}

fn type_name(s: &Schema) -> String {
    match s {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int => "int".into(),
        Schema::Long => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes => "bytes".into(),
        Schema::String => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        Schema::Record(r) => format!("record {}", full_name(&r.name)),
        Schema::Enum(e) => format!("enum {}", full_name(&e.name)),
        Schema::Fixed(f) => format!("fixed {}", full_name(&f.name)),
        other => format!("{other:?}"),
    }
}

/// Whether the reader's named type accepts the writer's name: the same unqualified name, or
/// the writer's (full or short) name among the reader's aliases.
fn names_match(
    writer: &Name,
    reader: &Name,
    reader_aliases: Option<&Vec<apache_avro::schema::Alias>>,
) -> bool {
    if writer.name == reader.name {
        return true;
    }
    let w_full = full_name(writer);
    reader_aliases.is_some_and(|aliases| {
        aliases.iter().any(|a| {
            // Aliases are full names (relative to the reader's namespace), as Java reads them.
            a.fullname(reader.namespace.clone()) == w_full
        })
    })
}

struct Checker<'a> {
    writer_names: &'a HashMap<String, Schema>,
    reader_names: &'a HashMap<String, Schema>,
    /// (writer name, reader name) pairs being checked: recursive types end here.
    visiting: HashSet<(String, String)>,
    out: Vec<Incompatibility>,
}

impl Checker<'_> {
    fn fail(&mut self, kind: &'static str, path: &str, message: String) {
        self.out.push(Incompatibility {
            kind,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            message,
        });
    }

    fn check(&mut self, writer: &Schema, reader: &Schema, path: &str) {
        let w = base(writer, self.writer_names);
        let r = base(reader, self.reader_names);
        match (w, r) {
            // Every branch the writer may have written must be readable.
            (Schema::Union(wu), _) => {
                for (i, branch) in wu.variants().iter().enumerate() {
                    let before = self.out.len();
                    let mut probe = self.probe();
                    probe.check(branch, reader, path);
                    if !probe.out.is_empty() {
                        self.out.truncate(before);
                        let r_name = type_name(r);
                        self.fail(
                            "MISSING_UNION_BRANCH",
                            path,
                            format!(
                                "reader type {r_name} cannot read the writer's union branch {i} ({})",
                                type_name(base(branch, self.writer_names))
                            ),
                        );
                    }
                }
            }
            (_, Schema::Union(ru)) => {
                let readable = ru.variants().iter().any(|branch| {
                    let mut probe = self.probe();
                    probe.check(writer, branch, path);
                    probe.out.is_empty()
                });
                if !readable {
                    self.fail(
                        "MISSING_UNION_BRANCH",
                        path,
                        format!(
                            "reader union lacks a branch for the writer's {}",
                            type_name(w)
                        ),
                    );
                }
            }
            (Schema::Null, Schema::Null)
            | (Schema::Boolean, Schema::Boolean)
            | (Schema::Int, Schema::Int)
            | (Schema::Long, Schema::Long)
            | (Schema::Float, Schema::Float)
            | (Schema::Double, Schema::Double)
            | (Schema::Bytes, Schema::Bytes)
            | (Schema::String, Schema::String) => {}
            // Promotions the specification allows.
            (Schema::Int, Schema::Long | Schema::Float | Schema::Double)
            | (Schema::Long, Schema::Float | Schema::Double)
            | (Schema::Float, Schema::Double)
            | (Schema::String, Schema::Bytes)
            | (Schema::Bytes, Schema::String) => {}
            (Schema::Array(wa), Schema::Array(ra)) => {
                self.check(&wa.items, &ra.items, &format!("{path}/items"));
            }
            (Schema::Map(wm), Schema::Map(rm)) => {
                self.check(&wm.types, &rm.types, &format!("{path}/values"));
            }
            // A duration is a fixed(12) underneath.
            (Schema::Duration, Schema::Duration) => {}
            (Schema::Fixed(wf), Schema::Fixed(rf)) => {
                if !names_match(&wf.name, &rf.name, rf.aliases.as_ref()) {
                    self.name_mismatch(&wf.name, &rf.name, path);
                } else if wf.size != rf.size {
                    self.fail(
                        "FIXED_SIZE_MISMATCH",
                        &format!("{path}/size"),
                        format!("expected size {}, found {}", wf.size, rf.size),
                    );
                }
            }
            (Schema::Enum(we), Schema::Enum(re)) => {
                if !names_match(&we.name, &re.name, re.aliases.as_ref()) {
                    self.name_mismatch(&we.name, &re.name, path);
                    return;
                }
                if re.default.is_some() {
                    return;
                }
                let missing: Vec<&str> = we
                    .symbols
                    .iter()
                    .filter(|s| !re.symbols.contains(s))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    self.fail(
                        "MISSING_ENUM_SYMBOLS",
                        &format!("{path}/symbols"),
                        format!(
                            "the reader's enum {} lacks symbols [{}] and has no default",
                            full_name(&re.name),
                            missing.join(", ")
                        ),
                    );
                }
            }
            (Schema::Record(wr), Schema::Record(rr)) => self.records(wr, rr, path),
            _ => self.fail(
                "TYPE_MISMATCH",
                path,
                format!(
                    "reader type {} cannot read writer type {}",
                    type_name(r),
                    type_name(w)
                ),
            ),
        }
    }

    fn name_mismatch(&mut self, writer: &Name, reader: &Name, path: &str) {
        self.fail(
            "NAME_MISMATCH",
            &format!("{path}/name"),
            format!(
                "expected {} (or an alias of it), found {}",
                full_name(writer),
                full_name(reader)
            ),
        );
    }

    fn records(&mut self, wr: &RecordSchema, rr: &RecordSchema, path: &str) {
        if !names_match(&wr.name, &rr.name, rr.aliases.as_ref()) {
            self.name_mismatch(&wr.name, &rr.name, path);
            return;
        }
        let key = (full_name(&wr.name), full_name(&rr.name));
        if !self.visiting.insert(key.clone()) {
            return;
        }
        for (i, rf) in rr.fields.iter().enumerate() {
            let field_path = format!("{path}/fields/{i}");
            let wf = wr.fields.iter().find(|wf| {
                wf.name == rf.name || rf.aliases.as_ref().is_some_and(|a| a.contains(&wf.name))
            });
            match wf {
                Some(wf) => self.check(&wf.schema, &rf.schema, &format!("{field_path}/type")),
                None if rf.default.is_none() => self.fail(
                    "READER_FIELD_MISSING_DEFAULT_VALUE",
                    &field_path,
                    format!(
                        "the reader's field '{}' is missing in the writer's schema and has no default value",
                        rf.name
                    ),
                ),
                None => {}
            }
        }
        self.visiting.remove(&key);
    }

    fn probe(&self) -> Checker<'_> {
        Checker {
            writer_names: self.writer_names,
            reader_names: self.reader_names,
            visiting: self.visiting.clone(),
            out: Vec::new(),
        }
    }
}

/// Why data written with `writer` cannot be read with `reader` (empty: it can).
pub fn can_read(writer: &AvroSchema, reader: &AvroSchema) -> Vec<Incompatibility> {
    let mut c = Checker {
        writer_names: &writer.names,
        reader_names: &reader.names,
        visiting: HashSet::new(),
        out: Vec::new(),
    };
    c.check(&writer.schema, &reader.schema, "");
    c.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> AvroSchema {
        parse(text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn record(fields: &str) -> AvroSchema {
        s(&format!(
            r#"{{"type":"record","name":"Order","namespace":"shop","fields":[{fields}]}}"#
        ))
    }

    fn kinds(w: &AvroSchema, r: &AvroSchema) -> Vec<&'static str> {
        can_read(w, r).into_iter().map(|i| i.kind).collect()
    }

    #[test]
    fn the_same_schema_written_differently_has_one_canonical_form() {
        let a = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
        let b = r#"{ "fields": [ {"type": "int", "name": "a"} ], "name": "R", "type": "record" }"#;
        assert_eq!(canonical(a), canonical(b));
        // Defaults, docs and logical types make a different schema (as in Confluent).
        for other in [
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":0}]}"#,
            r#"{"type":"record","name":"R","doc":"x","fields":[{"name":"a","type":"int"}]}"#,
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"int","logicalType":"date"}}]}"#,
        ] {
            assert_ne!(canonical(a), canonical(other), "{other}");
        }
        assert!(canonical("{").is_err());
    }

    #[test]
    fn invalid_schemas_are_refused_with_a_reason() {
        for bad in [
            "{",
            r#"{"type":"nope"}"#,
            r#"{"type":"record","name":"R"}"#,
            r#""Unknown""#,
        ] {
            assert!(parse(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn promotions_follow_the_specification() {
        let ok = [
            ("int", "long"),
            ("int", "float"),
            ("int", "double"),
            ("long", "float"),
            ("long", "double"),
            ("float", "double"),
            ("string", "bytes"),
            ("bytes", "string"),
        ];
        for (w, r) in ok {
            assert!(
                can_read(&s(&format!("\"{w}\"")), &s(&format!("\"{r}\""))).is_empty(),
                "{w}->{r}"
            );
        }
        for (w, r) in [
            ("long", "int"),
            ("double", "float"),
            ("string", "int"),
            ("boolean", "int"),
        ] {
            assert_eq!(
                kinds(&s(&format!("\"{w}\"")), &s(&format!("\"{r}\""))),
                ["TYPE_MISMATCH"],
                "{w}->{r}"
            );
        }
    }

    #[test]
    fn record_fields_need_a_default_when_the_writer_lacks_them() {
        let v1 = record(r#"{"name":"id","type":"long"}"#);
        let with_default =
            record(r#"{"name":"id","type":"long"},{"name":"note","type":"string","default":""}"#);
        let without = record(r#"{"name":"id","type":"long"},{"name":"note","type":"string"}"#);
        assert!(
            can_read(&v1, &with_default).is_empty(),
            "added with a default"
        );
        let issues = can_read(&v1, &without);
        assert_eq!(issues[0].kind, "READER_FIELD_MISSING_DEFAULT_VALUE");
        assert_eq!(issues[0].path, "/fields/1");
        assert!(
            can_read(&with_default, &v1).is_empty(),
            "a removed field is skipped"
        );
    }

    #[test]
    fn renamed_fields_and_types_are_found_through_aliases() {
        let old = record(r#"{"name":"qty","type":"int"}"#);
        let renamed = record(r#"{"name":"quantity","type":"int","aliases":["qty"]}"#);
        assert!(can_read(&old, &renamed).is_empty());
        let no_alias = record(r#"{"name":"quantity","type":"int"}"#);
        assert_eq!(
            kinds(&old, &no_alias),
            ["READER_FIELD_MISSING_DEFAULT_VALUE"]
        );
        let other = s(
            r#"{"type":"record","name":"Purchase","namespace":"shop","aliases":["Order"],"fields":[{"name":"qty","type":"int"}]}"#,
        );
        assert!(
            can_read(&old, &other).is_empty(),
            "record renamed with an alias"
        );
        let stranger =
            s(r#"{"type":"record","name":"Purchase","fields":[{"name":"qty","type":"int"}]}"#);
        assert_eq!(kinds(&old, &stranger), ["NAME_MISMATCH"]);
    }

    #[test]
    fn enum_symbols_need_the_reader_to_know_them_or_have_a_default() {
        let e = |symbols: &str, default: &str| {
            s(&format!(
                r#"{{"type":"enum","name":"Color","symbols":[{symbols}]{default}}}"#
            ))
        };
        let rg = e(r#""RED","GREEN""#, "");
        let rgb = e(r#""RED","GREEN","BLUE""#, "");
        assert!(can_read(&rg, &rgb).is_empty(), "reader knows more symbols");
        assert_eq!(kinds(&rgb, &rg), ["MISSING_ENUM_SYMBOLS"]);
        let rg_default = e(r#""RED","GREEN""#, r#","default":"RED""#);
        assert!(
            can_read(&rgb, &rg_default).is_empty(),
            "the reader's default covers BLUE"
        );
    }

    #[test]
    fn unions_are_checked_branch_by_branch() {
        let nullable = s(r#"["null","string"]"#);
        assert!(
            can_read(&s(r#""string""#), &nullable).is_empty(),
            "widened to a union"
        );
        assert_eq!(
            kinds(&nullable, &s(r#""string""#)),
            ["MISSING_UNION_BRANCH"],
            "narrowed"
        );
        assert!(
            can_read(&s(r#"["null","int"]"#), &s(r#"["null","long"]"#)).is_empty(),
            "promoted branch"
        );
        assert_eq!(
            kinds(&s(r#"["null","int","string"]"#), &s(r#"["null","int"]"#)),
            ["MISSING_UNION_BRANCH"]
        );
    }

    #[test]
    fn fixed_arrays_maps_and_logical_types() {
        let f = |n: usize| s(&format!(r#"{{"type":"fixed","name":"Hash","size":{n}}}"#));
        assert!(can_read(&f(16), &f(16)).is_empty());
        assert_eq!(kinds(&f(16), &f(32)), ["FIXED_SIZE_MISMATCH"]);
        let arr = |t: &str| s(&format!(r#"{{"type":"array","items":"{t}"}}"#));
        assert!(can_read(&arr("int"), &arr("long")).is_empty());
        assert_eq!(can_read(&arr("long"), &arr("int"))[0].path, "/items");
        let map = |t: &str| s(&format!(r#"{{"type":"map","values":"{t}"}}"#));
        assert_eq!(kinds(&map("string"), &map("int")), ["TYPE_MISMATCH"]);
        let date = s(r#"{"type":"int","logicalType":"date"}"#);
        assert!(
            can_read(&date, &s(r#""long""#)).is_empty(),
            "a date is an int underneath"
        );
    }

    #[test]
    fn recursive_types_terminate() {
        let list = s(
            r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}"#,
        );
        assert!(can_read(&list, &list).is_empty());
        let longer = s(
            r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"]}]}"#,
        );
        assert!(can_read(&list, &longer).is_empty());
        assert!(!can_read(&longer, &list).is_empty());
    }
}
