//! Problems found in an object file, each naming the object, its index, the field and the reason;
//! collected together so that a user sees every problem at once.

use orchestrator_protocol::ObjectId;
use serde::Serialize;
use std::fmt;

/// Past this many, problems are counted but not listed.
pub const MAX_LISTED_PROBLEMS: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem with the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    /// Position of the object in the file's array.
    pub index: Option<usize>,
    pub id: Option<ObjectId>,
    pub field: Option<&'static str>,
    pub message: String,
}

impl Problem {
    pub fn error(
        index: Option<usize>,
        id: Option<ObjectId>,
        field: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            severity: Severity::Error,
            index,
            id,
            field,
            message: message.into(),
        }
    }
    pub fn warning(
        index: Option<usize>,
        id: Option<ObjectId>,
        field: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            severity: Severity::Warning,
            index,
            id,
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: ")?;
        match (self.id, self.index) {
            (Some(id), Some(i)) => write!(f, "object {id} (index {i})")?,
            (None, Some(i)) => write!(f, "object at index {i}")?,
            (Some(id), None) => write!(f, "object {id}")?,
            (None, None) => write!(f, "input")?,
        }
        if let Some(field) = self.field {
            write!(f, ", {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found, in file order, errors and warnings together.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn push(&mut self, p: Problem) {
        self.problems.push(p);
    }
    pub fn error_count(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }
    pub fn warning_count(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
            .count()
    }
    /// True when the input cannot run: an error, or (strict) any warning.
    pub fn fails(&self, strict: bool) -> bool {
        self.error_count() > 0 || (strict && !self.problems.is_empty())
    }
    /// Turns every warning into an error (`--strict`).
    pub fn make_strict(&mut self) {
        for p in &mut self.problems {
            p.severity = Severity::Error;
        }
    }
    /// The problems in display order: errors first, then warnings, each in file order.
    pub fn sorted(&self) -> Vec<&Problem> {
        let mut v: Vec<&Problem> = self.problems.iter().collect();
        v.sort_by_key(|p| (std::cmp::Reverse(p.severity), p.index.unwrap_or(usize::MAX)));
        v
    }
    /// Text for a terminal: the first hundred problems, then how many more there are.
    pub fn render(&self, only: Option<Severity>) -> String {
        let selected: Vec<&Problem> = self
            .sorted()
            .into_iter()
            .filter(|p| only.is_none_or(|s| p.severity == s))
            .collect();
        let mut out = String::new();
        for p in selected.iter().take(MAX_LISTED_PROBLEMS) {
            out.push_str(&p.to_string());
            out.push('\n');
        }
        if selected.len() > MAX_LISTED_PROBLEMS {
            out.push_str(&format!(
                "... and {} more problems ({} in all)\n",
                selected.len() - MAX_LISTED_PROBLEMS,
                selected.len()
            ));
        }
        out
    }
}
