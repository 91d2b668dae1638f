//! A small reader over a span-preserving TOML document: typed getters that
//! report wrong types, out-of-range numbers, bad syntax and unknown keys, each
//! with its key path and line, and keep going.

use std::collections::HashMap;
use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use super::ConfigError;

/// The state of one validation: line numbers, the errors so far, and the
/// line of every key path seen (for errors found later, on typed values).
pub(super) struct Ctx {
    line_starts: Vec<usize>,
    pub errors: Vec<ConfigError>,
    lines: HashMap<String, usize>,
}

impl Ctx {
    pub fn new(text: &str) -> Ctx {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Ctx {
            line_starts,
            errors: Vec::new(),
            lines: HashMap::new(),
        }
    }

    /// The 1-based line of a span's start; 0 without a span.
    pub fn line_of(&self, span: Option<Range<usize>>) -> usize {
        span.map_or(0, |s| self.line_starts.partition_point(|&st| st <= s.start))
    }

    pub fn error(&mut self, path: impl Into<String>, line: usize, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, line, message));
    }

    /// Records an error found on typed values: its line is that of its key
    /// path, or of the nearest enclosing path that was seen.
    pub fn error_at_path(&mut self, mut e: ConfigError) {
        e.line = self.line_for(&e.path);
        self.errors.push(e);
    }

    fn line_for(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(&line) = self.lines.get(p) {
                return line;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return 1,
            }
        }
    }

    fn seen(&mut self, path: &str, line: usize) {
        if line > 0 {
            self.lines.insert(path.to_string(), line);
        }
    }

    /// A mark to ask [`Ctx::clean_since`] later.
    pub fn mark(&self) -> usize {
        self.errors.len()
    }

    /// Whether no error was added since `mark`.
    pub fn clean_since(&self, mark: usize) -> bool {
        self.errors.len() == mark
    }
}

/// One table under validation.
pub(super) struct Tab<'d> {
    pub path: String,
    pub line: usize,
    table: &'d dyn TableLike,
}

/// A string value with where it was.
pub(super) struct Located<'d> {
    pub text: &'d str,
    pub path: String,
    pub line: usize,
}

impl<'d> Tab<'d> {
    /// Opens a table, reporting every key that is not in `allowed`.
    pub fn open(
        ctx: &mut Ctx,
        path: String,
        line: usize,
        table: &'d dyn TableLike,
        allowed: &[&str],
    ) -> Tab<'d> {
        ctx.seen(&path, line);
        let tab = Tab { path, line, table };
        for (key, _) in table.iter() {
            if !allowed.contains(&key) {
                let line = tab.key_line(ctx, key);
                ctx.error(
                    tab.child(key),
                    line,
                    format!(
                        "unknown key `{key}` (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
        tab
    }

    /// The key path of `key` in this table.
    pub fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The line of `key`'s value (or of the key, or of this table).
    pub fn key_line(&self, ctx: &Ctx, key: &str) -> usize {
        let Some((k, item)) = self.table.get_key_value(key) else {
            return self.line;
        };
        match ctx.line_of(item.span().or_else(|| k.span())) {
            0 => self.line,
            line => line,
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Reports each of `keys` that is missing.
    pub fn require(&self, ctx: &mut Ctx, keys: &[&str]) {
        for key in keys.iter().filter(|k| !self.has(k)) {
            ctx.error(self.child(key), self.line, "required key is missing");
        }
    }

    /// The item at `key`, its path and line; `None` if absent.
    fn item(&self, ctx: &mut Ctx, key: &str) -> Option<(&'d Item, String, usize)> {
        let item = self.table.get(key)?;
        let path = self.child(key);
        let line = self.key_line(ctx, key);
        ctx.seen(&path, line);
        Some((item, path, line))
    }

    /// The plain value at `key`; an error if it is a table.
    fn value(
        &self,
        ctx: &mut Ctx,
        key: &str,
        expected: &str,
    ) -> Option<(&'d Value, String, usize)> {
        let (item, path, line) = self.item(ctx, key)?;
        match item.as_value() {
            Some(v) => Some((v, path, line)),
            None => {
                ctx.error(path, line, type_error(expected, item.type_name()));
                None
            }
        }
    }

    pub fn str(&self, ctx: &mut Ctx, key: &str) -> Option<Located<'d>> {
        let (v, path, line) = self.value(ctx, key, "a string")?;
        match v.as_str() {
            Some(text) => Some(Located { text, path, line }),
            None => {
                ctx.error(path, line, type_error("a string", v.type_name()));
                None
            }
        }
    }

    /// A string that must not be empty.
    pub fn string(&self, ctx: &mut Ctx, key: &str) -> Option<String> {
        self.parsed(ctx, key, |s| match s.trim() {
            "" => Err("must not be empty".to_string()),
            _ => Ok(s.to_string()),
        })
    }

    /// A string turned into a `T` by `parse`, whose error is the message.
    pub fn parsed<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.str(ctx, key)?;
        parse(s.text).map_err(|m| ctx.error(s.path, s.line, m)).ok()
    }

    /// A name from a fixed set: "unknown WHAT `x` (valid: a, b, c)".
    pub fn choice<T>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        what: &str,
        from_name: impl Fn(&str) -> Option<T>,
        valid: impl Fn() -> String,
    ) -> Option<T> {
        self.parsed(ctx, key, |s| {
            from_name(s).ok_or_else(|| format!("unknown {what} `{s}` (valid: {})", valid()))
        })
    }

    pub fn bool(&self, ctx: &mut Ctx, key: &str) -> Option<bool> {
        let (v, path, line) = self.value(ctx, key, "true or false")?;
        match v.as_bool() {
            Some(b) => Some(b),
            None => {
                ctx.error(path, line, type_error("true or false", v.type_name()));
                None
            }
        }
    }

    /// An integer in `lo..=hi`, converted to `T` (which must hold the range).
    pub fn int<T: TryFrom<i64>>(&self, ctx: &mut Ctx, key: &str, lo: i64, hi: i64) -> Option<T> {
        let (v, path, line) = self.value(ctx, key, "an integer")?;
        let Some(n) = v.as_integer() else {
            ctx.error(path, line, type_error("an integer", v.type_name()));
            return None;
        };
        if !(lo..=hi).contains(&n) {
            let msg = if n < lo && hi >= i64::from(u32::MAX) {
                format!("{n} is too small (minimum {lo})")
            } else {
                format!("{n} is outside {lo}..{hi}")
            };
            ctx.error(path, line, msg);
            return None;
        }
        T::try_from(n).ok()
    }

    /// An array of strings, each with its path (`key[i]`) and line.
    /// One string or an array of strings (a port's `address = "..."` or
    /// `address = ["...", "..."]`); each with its own path and line.
    pub fn string_or_strings(&self, ctx: &mut Ctx, key: &str) -> Option<Vec<Located<'d>>> {
        let (v, path, line) = self.value(ctx, key, "a string or an array of strings")?;
        match v.as_str() {
            Some(text) => Some(vec![Located { text, path, line }]),
            None if v.is_array() => self.strings(ctx, key),
            None => {
                let msg = type_error("a string or an array of strings", v.type_name());
                ctx.error(path, line, msg);
                None
            }
        }
    }

    pub fn strings(&self, ctx: &mut Ctx, key: &str) -> Option<Vec<Located<'d>>> {
        let (v, path, line) = self.value(ctx, key, "an array of strings")?;
        let Some(array) = v.as_array() else {
            ctx.error(path, line, type_error("an array of strings", v.type_name()));
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, elem) in array.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let line = match ctx.line_of(elem.span()) {
                0 => line,
                l => l,
            };
            ctx.seen(&path, line);
            match elem.as_str() {
                Some(text) => out.push(Located { text, path, line }),
                None => {
                    ctx.error(path, line, type_error("a string", elem.type_name()));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// An array of integers each in `lo..=hi`, each with its path
    /// (`key[i]`) and line; `None` (errors reported) if any is not.
    pub fn ints<T: TryFrom<i64>>(
        &self,
        ctx: &mut Ctx,
        key: &str,
        lo: i64,
        hi: i64,
    ) -> Option<Vec<(T, String, usize)>> {
        let (v, path, line) = self.value(ctx, key, "an array of integers")?;
        let Some(array) = v.as_array() else {
            ctx.error(
                path,
                line,
                type_error("an array of integers", v.type_name()),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, elem) in array.iter().enumerate() {
            let path = format!("{path}[{i}]");
            let line = match ctx.line_of(elem.span()) {
                0 => line,
                l => l,
            };
            ctx.seen(&path, line);
            match elem.as_integer() {
                Some(n) if (lo..=hi).contains(&n) => match T::try_from(n) {
                    Ok(n) => out.push((n, path, line)),
                    Err(_) => ok = false,
                },
                Some(n) => {
                    ctx.error(path, line, format!("{n} is outside {lo}..{hi}"));
                    ok = false;
                }
                None => {
                    ctx.error(path, line, type_error("an integer", elem.type_name()));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// The sub-table at `key` (`[a.b]` or an inline table); `None` if absent.
    pub fn table(&self, ctx: &mut Ctx, key: &str, allowed: &[&str]) -> Option<Tab<'d>> {
        let (item, path, line) = self.item(ctx, key)?;
        match item.as_table_like() {
            Some(t) => Some(Tab::open(ctx, path, line, t, allowed)),
            None => {
                ctx.error(path, line, type_error("a table", item.type_name()));
                None
            }
        }
    }

    /// The tables at `key`: `[[a.b]]` or an array of inline tables; each
    /// is `key[i]`. Empty if absent.
    pub fn tables(&self, ctx: &mut Ctx, key: &str, allowed: &[&str]) -> Vec<Tab<'d>> {
        let Some((item, path, line)) = self.item(ctx, key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut open = |ctx: &mut Ctx, i: usize, span, table: &'d dyn TableLike| {
            let line = match ctx.line_of(span) {
                0 => line,
                l => l,
            };
            out.push(Tab::open(ctx, format!("{path}[{i}]"), line, table, allowed));
        };
        match item {
            Item::ArrayOfTables(array) => {
                for (i, t) in array.iter().enumerate() {
                    open(ctx, i, t.span(), t);
                }
            }
            Item::Value(Value::Array(array)) if array.iter().all(|v| v.is_inline_table()) => {
                for (i, v) in array.iter().enumerate() {
                    if let Some(t) = v.as_inline_table() {
                        open(ctx, i, v.span(), t);
                    }
                }
            }
            _ => {
                let msg = format!(
                    "expected an array of tables (`[[{}]]`), found {}",
                    without_indices(&path),
                    article(item.type_name())
                );
                ctx.error(path, line, msg);
            }
        }
        out
    }
}

fn type_error(expected: &str, found: &str) -> String {
    format!("expected {expected}, found {}", article(found))
}

/// "an integer", "a string", "an array of tables".
fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

/// "service[0].server" -> "service.server": a path as a table header.
fn without_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}
