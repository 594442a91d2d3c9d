//! The JSON Schema of `supervision.toml` (`metasystem schema`), for editors with a TOML
//! language server (taplo, Even Better TOML).
//!
//! There is no serde model of the file: the reader is hand-written. So each part of the file
//! describes its keys next to its parser as an [`Obj`]: `[daemon]` and `[telemetry]` and the
//! keys every child has in `config/mod.rs`, a supervisor's in `kinds/supervisor.rs`, and each
//! kind's in its kind file ([`crate::kinds::ActorKind::schema`]), gathered through the one
//! list of kinds. [`document`] turns them into JSON Schema draft-07. The tests below keep
//! the descriptions and the reader in step both ways (see `tests`).

use serde_json::{json, Map, Value};

/// The draft the schema is written in: draft-07, the newest one taplo fully supports.
pub const DRAFT: &str = "http://json-schema.org/draft-07/schema#";

/// What a key holds.
#[derive(Debug, Clone)]
pub enum Ty {
    Str,
    Int,
    /// A float or an integer.
    Num,
    Bool,
    /// A duration string: "250ms", "10s", "5m", "1h 30m".
    Duration,
    /// A size: a number of bytes or a string with a unit ("10GB", "512MiB").
    Size,
    /// An array of strings, or one string (taken as a list of one).
    Strings,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A sub-table with these keys.
    Table(Obj),
    /// An array of these (`[[x]]` for tables).
    List(Box<Ty>),
    /// A table of entries named freely, each holding this.
    Map(Box<Ty>),
    /// `#/definitions/NAME`.
    Ref(&'static str),
    /// Any of these.
    AnyOf(Vec<Ty>),
    /// A schema written out (for a value of a shape of its own).
    Raw(Value),
}

/// One key of a table.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: &'static str,
    pub ty: Ty,
    pub doc: &'static str,
    pub default: Option<Value>,
    /// A value that is valid on its own: shown to people (`examples`) and used by the tests
    /// (which need values the reader accepts without stopping early).
    pub example: Option<Value>,
    pub required: bool,
}

impl Key {
    pub fn new(name: &'static str, ty: Ty, doc: &'static str) -> Key {
        Key {
            name,
            ty,
            doc,
            default: None,
            example: None,
            required: false,
        }
    }

    pub fn default(mut self, v: impl Into<Value>) -> Key {
        self.default = Some(v.into());
        self
    }

    pub fn example(mut self, v: impl Into<Value>) -> Key {
        self.example = Some(v.into());
        self
    }

    pub fn required(mut self) -> Key {
        self.required = true;
        self
    }
}

/// `Key::new`, shorter.
/// An array of tables with these keys (`[[x]]`).
pub fn tables(obj: Obj) -> Ty {
    Ty::List(Box::new(Ty::Table(obj)))
}

pub fn key(name: &'static str, ty: Ty, doc: &'static str) -> Key {
    Key::new(name, ty, doc)
}

/// A table's keys; all others are refused (`additionalProperties: false`), as the reader
/// refuses unknown keys.
#[derive(Debug, Clone, Default)]
pub struct Obj {
    pub keys: Vec<Key>,
    /// The table is also one of several shapes, chosen by a key's value.
    pub union: Option<Union>,
}

impl Obj {
    pub fn new(keys: Vec<Key>) -> Obj {
        Obj { keys, union: None }
    }

    pub fn with_union(mut self, union: Union) -> Obj {
        self.union = Some(union);
        self
    }
}

/// A tagged union: the value of `tag` says which variant's keys the table takes besides the
/// common ones.
#[derive(Debug, Clone)]
pub struct Union {
    pub tag: &'static str,
    pub doc: &'static str,
    pub variants: Vec<(&'static str, Obj)>,
}

impl Union {
    pub fn names(&self) -> Vec<&'static str> {
        self.variants.iter().map(|(n, _)| *n).collect()
    }
}

fn ty_schema(ty: &Ty) -> Value {
    match ty {
        Ty::Str => json!({"type": "string"}),
        Ty::Int => json!({"type": "integer"}),
        Ty::Num => json!({"type": "number"}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Duration => json!({"type": "string", "minLength": 1}),
        Ty::Size => json!({"type": ["integer", "string"]}),
        Ty::Strings => json!({
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
        }),
        Ty::Choice(options) => json!({"type": "string", "enum": options}),
        Ty::Table(obj) => obj_schema(obj, &[]),
        Ty::List(inner) => json!({"type": "array", "items": ty_schema(inner)}),
        Ty::Map(inner) => json!({"type": "object", "additionalProperties": ty_schema(inner)}),
        Ty::Ref(name) => json!({"$ref": format!("#/definitions/{name}")}),
        Ty::AnyOf(tys) => json!({"anyOf": tys.iter().map(ty_schema).collect::<Vec<_>>()}),
        Ty::Raw(v) => v.clone(),
    }
}

fn key_schema(k: &Key) -> Value {
    let mut s = ty_schema(&k.ty);
    if let Value::Object(m) = &mut s {
        m.insert("description".into(), Value::String(k.doc.to_string()));
        if let Some(d) = &k.default {
            m.insert("default".into(), d.clone());
        }
        if let Some(e) = &k.example {
            m.insert("examples".into(), json!([e]));
        }
    }
    s
}

/// Every key any shape of `obj` may have, by name, first description kept: what an editor
/// completes before the tag is written.
fn all_keys<'a>(obj: &'a Obj, into: &mut Vec<&'a Key>) {
    for k in &obj.keys {
        if !into.iter().any(|seen| seen.name == k.name) {
            into.push(k);
        }
    }
    if let Some(u) = &obj.union {
        for (_, v) in &u.variants {
            all_keys(v, into);
        }
    }
}

/// `obj` as a schema; `outer` are keys it shares with an enclosing union (common keys and
/// the enclosing tag), so that each closed shape lists all of its keys.
fn obj_schema(obj: &Obj, outer: &[(String, Value)]) -> Value {
    let mut props = Map::new();
    for (name, s) in outer {
        props.insert(name.clone(), s.clone());
    }
    let mut required: Vec<Value> = Vec::new();
    for k in &obj.keys {
        props.insert(k.name.to_string(), key_schema(k));
        if k.required {
            required.push(Value::String(k.name.to_string()));
        }
    }
    let Some(u) = &obj.union else {
        let mut s = json!({
            "type": "object",
            "properties": props,
            "additionalProperties": false,
        });
        if !required.is_empty() {
            s["required"] = Value::Array(required);
        }
        return s;
    };
    // A union: each variant is a closed shape of its own (`if` the tag is its name `then`
    // its keys and no other); the open part lists every key for completion.
    let mut shared: Vec<(String, Value)> =
        props.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut open = props;
    open.insert(
        u.tag.to_string(),
        json!({"type": "string", "enum": u.names(), "description": u.doc}),
    );
    let mut every = Vec::new();
    all_keys(obj, &mut every);
    for k in every {
        open.entry(k.name.to_string())
            .or_insert_with(|| json!({"description": k.doc}));
    }
    required.push(Value::String(u.tag.to_string()));
    let mut branches = Vec::new();
    for (name, variant) in &u.variants {
        shared.retain(|(k, _)| k != u.tag);
        shared.push((
            u.tag.to_string(),
            json!({"const": name, "description": u.doc}),
        ));
        branches.push(json!({
            "if": {"properties": {u.tag: {"const": name}}, "required": [u.tag]},
            "then": obj_schema(variant, &shared),
        }));
    }
    json!({
        "type": "object",
        "properties": open,
        "required": required,
        "allOf": branches,
    })
}

/// The file's description: `[daemon]`, `[telemetry]`, `[root]`.
pub fn file() -> Obj {
    Obj::new(vec![
        key(
            "daemon",
            Ty::Table(super::daemon_schema()),
            "The daemon itself: state dir, control socket, HTTP listener, logs.",
        ),
        key(
            "telemetry",
            Ty::Table(super::telemetry_schema()),
            "OpenTelemetry metrics over OTLP/HTTP.",
        ),
        key(
            "root",
            Ty::Table(crate::kinds::supervisor::SupervisorConfig::schema_keys()),
            "The root supervisor: its settings and [[root.children]].",
        )
        .required(),
    ])
}

/// A child of a supervisor: the keys every child has and its kind's, chosen by `kind`.
pub fn child() -> Obj {
    let mut variants = Vec::new();
    for (name, obj, has_start_timeout) in crate::kinds::Kind::schemas() {
        let mut keys = Vec::new();
        if has_start_timeout {
            keys.push(super::start_timeout_key());
        }
        keys.extend(obj.keys);
        variants.push((
            name,
            Obj {
                keys,
                union: obj.union,
            },
        ));
    }
    Obj::new(super::child_keys()).with_union(Union {
        tag: "kind",
        doc: "What the child is: a nested supervisor or one of the actor kinds.",
        variants,
    })
}

/// The whole schema, as `metasystem schema` prints it.
pub fn document() -> Value {
    let mut s = obj_schema(&file(), &[]);
    if let Value::Object(m) = &mut s {
        let mut head = Map::new();
        head.insert("$schema".into(), Value::String(DRAFT.into()));
        head.insert(
            "$id".into(),
            Value::String("https://metasystem.invalid/supervision.schema.json".into()),
        );
        head.insert("title".into(), Value::String("supervision.toml".into()));
        head.insert(
            "description".into(),
            Value::String(
                "metasystem's supervision tree and daemon settings (`metasystem schema`)".into(),
            ),
        );
        head.extend(std::mem::take(m));
        head.insert(
            "definitions".into(),
            json!({ "child": obj_schema(&child(), &[]) }),
        );
        *m = head;
    }
    s
}

#[cfg(test)]
mod tests;
