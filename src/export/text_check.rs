//! A strict reader of the Prometheus text exposition format 0.0.4, for tests: every line must
//! be a `# HELP`, a `# TYPE` or a sample; a family's TYPE comes before its samples, its lines
//! are contiguous, label values and help texts use only the format's escapes, no series
//! appears twice. Shared by the unit tests (`src/export/prometheus.rs`) and the integration
//! tests (`tests/integration/export.rs`, through `#[path]`).

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

/// One sample line, its labels in file order and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Line {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a whole exposition holds.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → its TYPE.
    pub types: HashMap<String, String>,
    pub help: HashMap<String, String>,
    pub samples: Vec<Line>,
}

impl Exposition {
    pub fn find(&self, name: &str) -> Vec<&Line> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

fn metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// Unescapes a HELP text (`\\` and `\n` only).
fn help_text(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => return Err(format!("bad escape \\{other:?} in HELP")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => return Ok(f64::NAN),
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'))
    {
        return Err(format!("bad value {s:?}"));
    }
    s.parse::<f64>()
        .map_err(|e| format!("bad value {s:?}: {e}"))
}

/// `{a="x",b="y"}` from just after `{`; the labels and the rest after `}`.
#[allow(clippy::type_complexity)]
fn labels(mut s: &str) -> Result<(Vec<(String, String)>, &str), String> {
    let mut out: Vec<(String, String)> = Vec::new();
    loop {
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((out, rest));
        }
        let eq = s.find('=').ok_or("label without `=`")?;
        let name = &s[..eq];
        if !label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name:?} twice"));
        }
        s = s[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value must be quoted")?;
        let mut v = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => v.push('\\'),
                    Some((_, '"')) => v.push('"'),
                    Some((_, 'n')) => v.push('\n'),
                    other => return Err(format!("bad escape in label value: {other:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in label value".into()),
                Some((_, c)) => v.push(c),
            }
        };
        out.push((name.to_string(), v));
        s = &s[end + 1..];
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err("expected `,` or `}` after a label".into());
        }
    }
}

/// The family a sample belongs to, given the TYPEs seen.
fn family_of(name: &str, types: &HashMap<String, String>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_string());
    }
    for (suffix, kinds) in [
        ("_sum", &["summary", "histogram"][..]),
        ("_count", &["summary", "histogram"][..]),
        ("_bucket", &["histogram"][..]),
    ] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| kinds.contains(&t.as_str())) {
                return Some(base.to_string());
            }
        }
    }
    None
}

/// Reads `text` strictly; the first problem with its line number.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the text must end with a newline".into());
    }
    let mut seen_series: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut switch = |family: &str, n: usize| -> Result<(), String> {
        if current.as_deref() != Some(family) {
            if finished.contains(family) {
                return Err(format!("line {n}: family {family} is not contiguous"));
            }
            if let Some(prev) = current.replace(family.to_string()) {
                finished.insert(prev);
            }
        }
        Ok(())
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.is_empty() {
            return Err(format!("line {n}: empty line"));
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or(format!("line {n}: HELP without text"))?;
            if !metric_name(name) {
                return Err(format!("line {n}: bad metric name {name:?}"));
            }
            switch(name, n)?;
            let help = help_text(help).map_err(|m| format!("line {n}: {m}"))?;
            if e.help.insert(name.to_string(), help).is_some() {
                return Err(format!("line {n}: second HELP for {name}"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or(format!("line {n}: TYPE without type"))?;
            if !metric_name(name) {
                return Err(format!("line {n}: bad metric name {name:?}"));
            }
            if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind) {
                return Err(format!("line {n}: bad type {kind:?}"));
            }
            switch(name, n)?;
            if e.types.insert(name.to_string(), kind.to_string()).is_some() {
                return Err(format!("line {n}: second TYPE for {name}"));
            }
            if e.samples
                .iter()
                .any(|s| family_of(&s.name, &e.types).as_deref() == Some(name))
            {
                return Err(format!("line {n}: TYPE for {name} after its samples"));
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(format!("line {n}: unexpected comment {line:?}"));
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or(format!("line {n}: a sample needs a value"))?;
        let name = &line[..name_end];
        if !metric_name(name) {
            return Err(format!("line {n}: bad metric name {name:?}"));
        }
        let (labels, rest) = if let Some(after) = line[name_end..].strip_prefix('{') {
            labels(after).map_err(|m| format!("line {n}: {m}"))?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or(format!("line {n}: expected a space before the value"))?;
        let mut parts = rest.split(' ');
        let v = value(parts.next().unwrap_or("")).map_err(|m| format!("line {n}: {m}"))?;
        if let Some(ts) = parts.next() {
            ts.parse::<i64>()
                .map_err(|_| format!("line {n}: bad timestamp {ts:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("line {n}: trailing text"));
        }
        let family = family_of(name, &e.types)
            .ok_or(format!("line {n}: sample {name} has no TYPE before it"))?;
        switch(&family, n)?;
        let kind = e.types.get(&family).map(String::as_str).unwrap_or("");
        if (kind == "counter" || name.ends_with("_count") || name.ends_with("_total"))
            && (v.is_nan() || v < 0.0)
        {
            return Err(format!("line {n}: counter {name} is {v}"));
        }
        let mut sorted = labels.clone();
        sorted.sort();
        let key = format!("{name}{sorted:?}");
        if !seen_series.insert(key) {
            return Err(format!("line {n}: series {name}{sorted:?} twice"));
        }
        e.samples.push(Line {
            name: name.to_string(),
            labels,
            value: v,
        });
    }
    Ok(e)
}
