//! The error collector of validation: every section's builder pushes its
//! errors into one [`Errors`] and carries on, so `check-config` lists every
//! error of a file in one run, while [`super::Config::from_toml`] (the
//! daemon) still gets one `Result` with the first error.

use super::ConfigError;

/// The errors found so far, in the order of the sections that found them.
#[derive(Debug, Default)]
pub struct Errors {
    list: Vec<ConfigError>,
}

impl Errors {
    pub fn push(&mut self, e: ConfigError) {
        self.list.push(e);
    }

    /// The value of a section builder that stops at its own first error;
    /// the error is kept and `None` returned.
    pub fn take<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(e);
                None
            }
        }
    }

    /// How many errors were pushed (a builder compares before and after).
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every error, in order.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.list
    }

    /// The value when nothing was wrong, else the first error.
    pub fn finish<T>(self, value: Option<T>, file: &str) -> Result<T, ConfigError> {
        match (self.list.into_iter().next(), value) {
            (Some(e), _) => Err(e),
            (None, Some(v)) => Ok(v),
            (None, None) => Err(ConfigError::General {
                file: file.to_string(),
                message: "invalid configuration".into(),
            }),
        }
    }
}
