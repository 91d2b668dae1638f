//! Configuration errors: what, where (key path and line), and their display.

use std::fmt;

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path: `service[0].server[2].port`, `dpdk.workers`, `port[1]`;
    /// empty for the file as a whole.
    pub path: String,
    /// 1-based line; 0 when there is none (a configuration built in code, a
    /// file that could not be read).
    pub line: usize,
    pub message: String,
}

impl ConfigError {
    /// Control characters in `message` are escaped (`\n`, `\u{1b}`): a
    /// message quotes values from the file, a TOML string can hold a newline
    /// (`"a\nb"`), and `rvs check` and the log print one error per line.
    pub fn new(path: impl Into<String>, line: usize, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.chars().any(char::is_control) {
            message = message
                .chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
        }
        ConfigError {
            path: path.into(),
            line,
            message,
        }
    }
}

/// `LINE: key.path: message`, leaving out what is unknown.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}: ", self.line)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one configuration file, in line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file as it was named to [`super::load`].
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// The first error at `path`, if any (for tests and tools).
    pub fn at(&self, path: &str) -> Option<&ConfigError> {
        self.errors.iter().find(|e| e.path == path)
    }
}

/// One error per line: `FILE:LINE: key.path: message`.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}:", self.file)?;
            if e.line > 0 {
                write!(f, "{}:", e.line)?;
            }
            f.write_str(" ")?;
            if !e.path.is_empty() {
                write!(f, "{}: ", e.path)?;
            }
            f.write_str(&e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}
