//! A checked walk over a spanned TOML document: every problem becomes a diagnostic with its
//! position, and the walk goes on, so one run reports every error in the file (Vector's model).

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One problem, at a byte range of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Range<usize>,
    pub message: String,
}

/// A problem with its position resolved: `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// One error that is about the file as a whole (unreadable, say).
    pub fn whole_file(file: &str, message: impl Into<String>) -> Self {
        ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            line: 1,
            column: 1,
            message: message.into(),
        }])
    }
}

/// Resolves diagnostics against the source text.
pub fn resolve(file: &str, source: &str, mut diagnostics: Vec<Diagnostic>) -> ConfigErrors {
    diagnostics.sort_by_key(|d| (d.span.start, d.span.end));
    diagnostics.dedup();
    let errors = diagnostics
        .into_iter()
        .map(|d| {
            let start = d.span.start.min(source.len());
            let before = source.get(..start).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
            ConfigError {
                file: file.to_string(),
                line,
                column,
                message: d.message,
            }
        })
        .collect();
    ConfigErrors(errors)
}

/// Collected diagnostics.
#[derive(Default)]
pub struct Diags(pub Vec<Diagnostic>);

impl Diags {
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.0.push(Diagnostic {
            span,
            message: message.into(),
        });
    }
}

/// Closest candidate to `word`, if close enough to be a plausible typo.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "one of `a`, `b`, `c`".
pub fn one_of(options: &[&str]) -> String {
    let quoted: Vec<String> = options.iter().map(|o| format!("`{o}`")).collect();
    format!("one of {}", quoted.join(", "))
}

/// Keys that look like secrets; they must never be written inline.
const SECRET_KEYS: [&str; 6] = ["password", "token", "secret", "api_key", "apikey", "passwd"];

pub type Value<'i> = Spanned<DeValue<'i>>;

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

#[cfg(test)]
thread_local! {
    /// Every table finished on this thread: its span and the keys the reader asked for
    /// (whether given or not), which are the keys it accepts there (`config::schema`'s tests
    /// compare them with the schema).
    pub static FINISHED: std::cell::RefCell<Vec<(Range<usize>, Vec<String>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A table being read: keys taken are remembered so the rest can be reported as unknown.
pub struct Table<'a, 'i> {
    table: &'a DeTable<'i>,
    /// The table's own span (its header, or the inline table).
    pub span: Range<usize>,
    /// For messages: `[daemon]`, `[root]`, `child "icloud"`, ...
    pub context: String,
    taken: HashSet<&'a str>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn new(table: &'a DeTable<'i>, span: Range<usize>, context: impl Into<String>) -> Self {
        Table {
            table,
            span,
            context: context.into(),
            taken: HashSet::new(),
        }
    }

    /// The value at `key`, marking it as known.
    pub fn take(&mut self, key: &'a str) -> Option<&'a Value<'i>> {
        self.taken.insert(key);
        self.table.get(key)
    }

    /// Marks `key` as known without reading it (read elsewhere, or only its presence matters).
    pub fn allow(&mut self, key: &'a str) {
        self.taken.insert(key);
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some()
    }

    /// Whether `key` holds a string (for keys that take a table or a word).
    pub fn is_string(&self, key: &str) -> bool {
        self.table
            .get(key)
            .is_some_and(|v| matches!(v.get_ref(), DeValue::String(_)))
    }

    fn wrong_type(&self, d: &mut Diags, key: &str, v: &Value<'_>, expected: &str) {
        d.error(
            v.span(),
            format!(
                "`{key}` in {} must be {expected}, not {}",
                self.context,
                type_name(v.get_ref())
            ),
        );
    }

    pub fn string(&mut self, d: &mut Diags, key: &'a str) -> Option<Spanned<String>> {
        let v = self.take(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Spanned::new(v.span(), s.to_string())),
            _ => {
                self.wrong_type(d, key, v, "a string");
                None
            }
        }
    }

    pub fn required_string(&mut self, d: &mut Diags, key: &'a str) -> Option<Spanned<String>> {
        if !self.has(key) {
            d.error(
                self.span.clone(),
                format!("{} is missing the required key `{key}`", self.context),
            );
            self.allow(key);
            return None;
        }
        self.string(d, key)
    }

    pub fn integer(&mut self, d: &mut Diags, key: &'a str) -> Option<Spanned<i64>> {
        let v = self.take(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(Spanned::new(v.span(), n)),
                Err(_) => {
                    d.error(
                        v.span(),
                        format!("`{key}` in {} is out of range", self.context),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(d, key, v, "an integer");
                None
            }
        }
    }

    pub fn boolean(&mut self, d: &mut Diags, key: &'a str) -> Option<Spanned<bool>> {
        let v = self.take(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(Spanned::new(v.span(), *b)),
            _ => {
                self.wrong_type(d, key, v, "true or false");
                None
            }
        }
    }

    /// A float; integers are accepted too (`factor = 2`).
    pub fn number(&mut self, d: &mut Diags, key: &'a str) -> Option<Spanned<f64>> {
        let v = self.take(key)?;
        let parsed = match v.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => {
                self.wrong_type(d, key, v, "a number");
                return None;
            }
        };
        match parsed {
            Some(f) if f.is_finite() => Some(Spanned::new(v.span(), f)),
            _ => {
                d.error(
                    v.span(),
                    format!("`{key}` in {} must be a finite number", self.context),
                );
                None
            }
        }
    }

    /// A duration written as a string: "250ms", "10m", "1h 30m".
    pub fn duration(&mut self, d: &mut Diags, key: &'a str) -> Option<Spanned<Duration>> {
        let s = self.string(d, key)?;
        match humantime::parse_duration(s.get_ref()) {
            Ok(duration) => Some(Spanned::new(s.span(), duration)),
            Err(e) => {
                d.error(
                    s.span(),
                    format!(
                        "`{key}` in {}: {:?} is not a duration ({e}); write e.g. \"250ms\", \"10s\", \"5m\", \"1h\"",
                        self.context,
                        s.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// A string that must be one of `options`.
    pub fn choice(
        &mut self,
        d: &mut Diags,
        key: &'a str,
        options: &[&'static str],
    ) -> Option<Spanned<&'static str>> {
        let s = self.string(d, key)?;
        if let Some(found) = options.iter().find(|o| **o == s.get_ref().as_str()) {
            return Some(Spanned::new(s.span(), *found));
        }
        let hint = match suggest(s.get_ref(), options) {
            Some(close) => format!("; did you mean `{close}`?"),
            None => String::new(),
        };
        d.error(
            s.span(),
            format!(
                "`{key}` in {} is {:?}, which is not {}{hint}",
                self.context,
                s.get_ref(),
                one_of(options)
            ),
        );
        None
    }

    /// An array of strings (`to = ["a@x", "b@x"]`); a single string is taken as a list of one.
    pub fn strings(&mut self, d: &mut Diags, key: &'a str) -> Option<Vec<Spanned<String>>> {
        let v = self.take(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(vec![Spanned::new(v.span(), s.to_string())]),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
                        other => d.error(
                            item.span(),
                            format!(
                                "every item of `{key}` in {} must be a string, not {}",
                                self.context,
                                type_name(other)
                            ),
                        ),
                    }
                }
                Some(out)
            }
            _ => {
                self.wrong_type(d, key, v, "an array of strings");
                None
            }
        }
    }

    /// A sub-table (`[a.b]` or an inline table).
    pub fn table(&mut self, d: &mut Diags, key: &'a str) -> Option<Table<'a, 'i>> {
        let v = self.take(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(t, v.span(), format!("`{key}`"))),
            _ => {
                self.wrong_type(d, key, v, "a table");
                None
            }
        }
    }

    /// Every entry of this table as a named sub-table (`breakers.NAME = { ... }`), in file
    /// order; an entry that is not a table is reported.
    pub fn named_tables(&mut self, d: &mut Diags) -> Vec<(String, Table<'a, 'i>)> {
        let mut out = Vec::new();
        for (key, v) in self.table.iter() {
            let name: &'a str = key.get_ref().as_ref();
            self.taken.insert(name);
            match v.get_ref() {
                DeValue::Table(t) => out.push((
                    name.to_string(),
                    Table::new(t, v.span(), format!("`{name}` of {}", self.context)),
                )),
                other => d.error(
                    v.span(),
                    format!(
                        "`{name}` in {} must be a table, not {}",
                        self.context,
                        type_name(other)
                    ),
                ),
            }
        }
        out
    }

    /// Every entry of this table as a string (`env = { LANG = "C" }`), in file order; an entry
    /// that is not a string is reported.
    pub fn string_entries(&mut self, d: &mut Diags) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (key, v) in self.table.iter() {
            let name: &'a str = key.get_ref().as_ref();
            self.taken.insert(name);
            match v.get_ref() {
                DeValue::String(s) => out.push((name.to_string(), s.to_string())),
                other => d.error(
                    v.span(),
                    format!(
                        "`{name}` in {} must be a string, not {}",
                        self.context,
                        type_name(other)
                    ),
                ),
            }
        }
        out
    }

    /// An array of tables (`[[a.b]]`), with each item's span.
    pub fn tables(&mut self, d: &mut Diags, key: &'a str) -> Vec<(&'a DeTable<'i>, Range<usize>)> {
        let Some(v) = self.take(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(d, key, v, "an array of tables ([[...]])");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => out.push((t, item.span())),
                other => d.error(
                    item.span(),
                    format!(
                        "every item of `{key}` in {} must be a table, not {}",
                        self.context,
                        type_name(other)
                    ),
                ),
            }
        }
        out
    }

    /// Reports every key not taken: an unknown key, with the nearest valid one; an inline
    /// secret, with how to pass it instead.
    pub fn finish(self, d: &mut Diags) {
        let known: Vec<&str> = self.taken.iter().copied().collect();
        #[cfg(test)]
        FINISHED.with(|f| {
            f.borrow_mut().push((
                self.span.clone(),
                known.iter().map(|k| k.to_string()).collect(),
            ))
        });
        for (key, _) in self.table.iter() {
            let name = key.get_ref().as_ref();
            if self.taken.contains(name) {
                continue;
            }
            let message = if SECRET_KEYS.contains(&name.to_ascii_lowercase().as_str()) {
                format!(
                    "secrets are never written in the file: instead of `{name}`, name an \
                     environment variable that holds it, as `{name}_env = \"VAR\"`"
                )
            } else {
                let mut sorted = known.clone();
                sorted.sort_unstable();
                match suggest(name, &sorted) {
                    Some(close) => format!(
                        "unknown key `{name}` in {}; did you mean `{close}`?",
                        self.context
                    ),
                    None => format!(
                        "unknown key `{name}` in {} (valid keys: {})",
                        self.context,
                        sorted.join(", ")
                    ),
                }
            };
            d.error(key.span(), message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_lines_and_character_columns() {
        let src = "a = 1\nbé = \"x\"\n  c = 3\n";
        let diags = vec![
            // "  c" on line 3 starts at byte 16.
            Diagnostic {
                span: 18..19,
                message: "c".into(),
            },
            // The opening quote on line 2, after a two-byte é.
            Diagnostic {
                span: 12..15,
                message: "x".into(),
            },
        ];
        let errors = resolve("f.toml", src, diags);
        let shown: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown, ["f.toml:2:6: x", "f.toml:3:3: c"]);
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["intensity", "period", "strategy", "backoff"];
        assert_eq!(suggest("intensty", &keys), Some("intensity"));
        assert_eq!(suggest("stratgey", &keys), Some("strategy"));
        assert_eq!(suggest("colour", &keys), None);
    }
}
