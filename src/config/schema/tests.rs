//! The schema and the reader kept in step, both ways.
//!
//! From the schema, a config is made that gives every key of every shape (one child per kind
//! and per probe check, one channel per type, one heal action per action), with values the
//! reader takes. It is read by the real reader, which records, for every table it finishes,
//! the keys it asked for ([`super::super::reader::FINISHED`]: asked for whether given or not,
//! so they are exactly the keys it accepts there). Then:
//! - no key the schema lists is refused as unknown, and every table the config holds was
//!   finished (so its keys were really checked);
//! - every key the reader asked for in a table is one the schema lists for it: a key added
//!   to a parser and not to its kind's `schema()` fails here;
//! - every word the reader accepts for a choice (and for each tag) is in the schema's enum,
//!   and the other way round: each choice is given a wrong word and the reader's list of the
//!   valid ones compared with the schema's.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use serde_json::{json, Map, Value};
use toml::de::{DeTable, DeValue};

use super::{child, file, Key, Obj, Ty};

/// The keys of `obj` for a table holding `t` (the variants its tags choose), the tags included.
fn flatten(obj: &Obj, t: &DeTable<'_>) -> Vec<Key> {
    let mut keys = obj.keys.clone();
    if let Some(u) = &obj.union {
        keys.push(Key::new(u.tag, Ty::Choice(&[]), u.doc));
        let chosen = t.get(u.tag).and_then(|v| v.get_ref().as_str());
        if let Some((_, v)) = u.variants.iter().find(|(n, _)| Some(*n) == chosen) {
            keys.extend(flatten(v, t));
        }
    }
    keys
}

/// For every table of the document the schema describes as one (not free-form maps): its
/// span and the names the schema gives it.
fn expected(ty: &Ty, v: &toml::Spanned<DeValue<'_>>, out: &mut HashMap<Range<usize>, Vec<String>>) {
    match (ty, v.get_ref()) {
        (Ty::Table(obj), DeValue::Table(t)) => table(obj, t, v.span(), out),
        (Ty::Ref(_), DeValue::Table(t)) => table(&child(), t, v.span(), out),
        (Ty::List(inner), DeValue::Array(items)) => {
            for item in items.iter() {
                expected(inner, item, out);
            }
        }
        (Ty::Map(inner), DeValue::Table(t)) => {
            // Free-form names: whatever is written is what it takes.
            let names = t.iter().map(|(k, _)| k.get_ref().to_string()).collect();
            out.insert(v.span(), names);
            for (_, item) in t.iter() {
                expected(inner, item, out);
            }
        }
        (Ty::AnyOf(tys), DeValue::Table(_)) => {
            if let Some(ty) = tys.iter().find(|t| matches!(t, Ty::Table(_))) {
                expected(ty, v, out);
            }
        }
        _ => {}
    }
}

fn table(
    obj: &Obj,
    t: &DeTable<'_>,
    span: Range<usize>,
    out: &mut HashMap<Range<usize>, Vec<String>>,
) {
    let keys = flatten(obj, t);
    for (k, v) in t.iter() {
        if let Some(key) = keys.iter().find(|key| key.name == k.get_ref().as_ref()) {
            expected(&key.ty, v, out);
        }
    }
    out.insert(span, keys.iter().map(|k| k.name.to_string()).collect());
}

/// A value the reader takes for `key`.
fn sample(key: &Key) -> Vec<Value> {
    if let Some(e) = &key.example {
        return vec![e.clone()];
    }
    match &key.ty {
        Ty::Table(obj) => samples(obj)
            .into_iter()
            .take(1)
            .map(Value::Object)
            .collect(),
        Ty::List(inner) => match &**inner {
            Ty::Table(obj) => vec![Value::Array(
                samples(obj)
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut m)| {
                        // Names of items (channels) are unique.
                        if m.contains_key("name") {
                            m.insert("name".into(), json!(format!("x{i}")));
                        }
                        Value::Object(m)
                    })
                    .collect(),
            )],
            // Children of a nested supervisor: one will do.
            _ => vec![json!([{"name": "inner", "kind": "heartbeat"}])],
        },
        _ => vec![key.default.clone().unwrap_or_else(|| scalar(&key.ty))],
    }
}

fn scalar(ty: &Ty) -> Value {
    match ty {
        Ty::Str => json!("x"),
        Ty::Int => json!(1),
        Ty::Num => json!(0.5),
        Ty::Bool => json!(true),
        Ty::Duration => json!("1h"),
        Ty::Size => json!("1GB"),
        Ty::Strings => json!(["x"]),
        Ty::Choice(options) => json!(options.first().copied().unwrap_or("x")),
        Ty::Map(inner) => match &**inner {
            Ty::Table(obj) => json!({"x": Value::Object(samples(obj).swap_remove(0))}),
            other => json!({"X": scalar(other)}),
        },
        Ty::AnyOf(tys) => tys.iter().find(|t| matches!(t, Ty::Table(_))).map_or_else(
            || scalar(&tys[0]),
            |t| match t {
                Ty::Table(obj) => Value::Object(samples(obj).swap_remove(0)),
                _ => Value::Null,
            },
        ),
        _ => json!("x"),
    }
}

/// A table giving every key of `obj`, once per shape its unions allow.
fn samples(obj: &Obj) -> Vec<Map<String, Value>> {
    let mut base = Map::new();
    for k in &obj.keys {
        base.insert(k.name.to_string(), sample(k).swap_remove(0));
    }
    let Some(u) = &obj.union else {
        return vec![base];
    };
    let mut out = Vec::new();
    for (name, variant) in &u.variants {
        for extra in samples(variant) {
            let mut m = base.clone();
            m.insert(u.tag.to_string(), json!(name));
            m.extend(extra);
            out.push(m);
        }
    }
    out
}

/// The document: every key of the file, and one child per shape of a child.
fn everything(state: &str) -> Value {
    let mut doc = samples(&file()).swap_remove(0);
    doc["daemon"]["state_dir"] = json!(state);
    doc["daemon"]["socket"] = json!(format!("{state}/c.sock"));
    doc["daemon"]["log_stderr"] = json!(true);
    let mut children = Vec::new();
    for (i, mut c) in samples(&child()).into_iter().enumerate() {
        c.insert("name".into(), json!(format!("c{i}")));
        if c.contains_key("user") {
            // Names that resolve here: this process's own ids.
            c.insert(
                "user".into(),
                json!(rustix::process::getuid().as_raw().to_string()),
            );
            c.insert(
                "group".into(),
                json!(rustix::process::getgid().as_raw().to_string()),
            );
        }
        children.push(Value::Object(c));
    }
    doc["root"]["children"] = Value::Array(children);
    doc["root"]["backoff"] = json!({"initial": "100ms", "max": "30s"});
    Value::Object(doc)
}

/// Reads `src` with the real reader: the errors and the tables finished.
/// A finished table: its span and the keys the reader asked for.
type Finished = (Range<usize>, Vec<String>);

fn read(src: &str) -> (Vec<String>, Vec<Finished>) {
    super::super::reader::FINISHED.with(|f| f.borrow_mut().clear());
    let errors = match super::super::parse(src, "t.toml", std::path::Path::new("/")) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| e.to_string()).collect(),
    };
    let finished = super::super::reader::FINISHED.with(|f| std::mem::take(&mut *f.borrow_mut()));
    (errors, finished)
}

#[test]
fn the_schema_and_the_reader_agree_on_every_key() {
    let state = tempfile::tempdir().unwrap();
    let doc = everything(&state.path().display().to_string());
    let src = toml::to_string(&doc).unwrap();
    let (errors, finished) = read(&src);
    for e in &errors {
        assert!(
            !e.contains("unknown key") && !e.contains("secrets are never"),
            "the reader refuses a key the schema lists: {e}\n{src}"
        );
    }
    let parsed = DeTable::parse(&src).unwrap();
    let mut want = HashMap::new();
    table(&file(), parsed.get_ref(), 0..0, &mut want);
    let finished: HashMap<Range<usize>, Vec<String>> = finished.into_iter().collect();
    for (span, keys) in &want {
        let Some(asked) = finished.get(span) else {
            panic!(
                "the table at {span:?} ({}) was never finished (src: {}): its keys were not checked; errors: {errors:#?}",
                src.get(span.clone()).unwrap_or("?").lines().next().unwrap_or(""),
                src.get(span.start..(span.start + 400).min(src.len())).unwrap_or("?")
            );
        };
        let listed: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        // `start_timeout` is read from a supervisor child only to refuse it with a reason.
        let unlisted: Vec<&String> = asked
            .iter()
            .filter(|k| !listed.contains(k.as_str()))
            .filter(|k| !(k.as_str() == "start_timeout" && listed.contains("children")))
            .collect();
        assert!(
            unlisted.is_empty(),
            "the reader accepts {unlisted:?} in the table at {span:?} ({}), which the schema does not list",
            src.get(span.clone()).unwrap_or("?").lines().next().unwrap_or("")
        );
    }
    // Every table the reader finished is one the schema describes.
    for span in finished.keys() {
        assert!(
            want.contains_key(span),
            "the reader finished a table at {span:?} that the schema does not describe"
        );
    }
}
