//! Typed errors for the model boundary: parsing and validating user files.

use std::fmt;
use std::path::PathBuf;

use super::limits::MAX_ISSUES;

/// One problem found in a user file, located by a JSON path such as
/// `$.ising.weights[3]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issue {
    /// JSON path of the offending value, `$` for the document root.
    pub path: String,
    /// Why the value is rejected, in words a user can act on.
    pub reason: String,
}

impl Issue {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Errors raised while loading or checking an EProgram or a workload graph.
///
/// Every variant is fatal for the file it names: nothing is run from a file
/// that fails here.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not well-formed JSON, or a value has the wrong type or an
    /// unknown field.
    #[error("{file}: {path}: {reason}")]
    Parse {
        file: PathBuf,
        path: String,
        reason: String,
    },
    /// The file parsed but breaks one or more rules; every broken rule is listed.
    /// At most [`MAX_ISSUES`] are listed, then one that counts the rest.
    #[error("{file}: {}:\n{}", count_problems(issues), render_issues(issues))]
    Invalid { file: PathBuf, issues: Vec<Issue> },
}

impl ModelError {
    /// The problems this error reports, each with its JSON path.
    pub fn issues(&self) -> Vec<Issue> {
        match self {
            ModelError::Io { source, .. } => vec![Issue::new("$", source.to_string())],
            ModelError::Parse { path, reason, .. } => vec![Issue::new(path, reason)],
            ModelError::Invalid { issues, .. } => issues.clone(),
        }
    }

    /// Whether the error makes the file unusable (all model errors do).
    pub fn is_fatal(&self) -> bool {
        true
    }
}

/// How an [`omitted_issue`] starts.
const OMITTED: &str = "… and ";

/// The last issue of a capped list: how many more problems there are.
pub fn omitted_issue(omitted: usize) -> Issue {
    Issue::new(
        "$",
        format!("{OMITTED}{omitted} more problem(s), not listed (the first {MAX_ISSUES} are)"),
    )
}

/// Keeps the first [`MAX_ISSUES`] issues and counts the rest in one more.
pub fn cap_issues(mut issues: Vec<Issue>) -> Vec<Issue> {
    if issues.len() > MAX_ISSUES {
        let omitted = issues.len() - MAX_ISSUES;
        issues.truncate(MAX_ISSUES);
        issues.push(omitted_issue(omitted));
    }
    issues
}

fn count_problems(issues: &[Issue]) -> String {
    match issues.last() {
        Some(last) if issues.len() > MAX_ISSUES && last.reason.starts_with(OMITTED) => {
            format!("more than {MAX_ISSUES} problems")
        }
        _ => format!("{} problem(s)", issues.len()),
    }
}

fn render_issues(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| format!("  {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses JSON text into `T`, reporting the JSON path of the first problem.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    file: &std::path::Path,
    text: &str,
) -> Result<T, ModelError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = result.map_err(|err| {
        let path = json_path(&err.path().to_string());
        let inner = err.into_inner();
        let mut reason = inner.to_string();
        if inner.is_syntax() && points_at_non_finite(text, inner.line(), inner.column()) {
            reason = format!(
                "NaN and Infinity are not valid JSON numbers, and every number must be finite ({reason})"
            );
        }
        ModelError::Parse {
            file: file.to_path_buf(),
            path,
            reason,
        }
    })?;
    de.end().map_err(|err| ModelError::Parse {
        file: file.to_path_buf(),
        path: "$".into(),
        reason: err.to_string(),
    })?;
    Ok(value)
}

/// serde_path_to_error prints `a.b[3]` (or `.` for the root); we print `$.a.b[3]`.
fn json_path(raw: &str) -> String {
    if raw.is_empty() || raw == "." {
        "$".into()
    } else {
        format!("$.{raw}")
    }
}

fn points_at_non_finite(text: &str, line: usize, column: usize) -> bool {
    let Some(l) = text.lines().nth(line.saturating_sub(1)) else {
        return false;
    };
    let start = column.saturating_sub(1).min(l.len());
    // serde_json reports the column of the offending character; look a few
    // characters either side for the tokens Python's json module writes.
    let bytes = l.as_bytes();
    let window = &bytes[start.saturating_sub(9)..(start + 9).min(bytes.len())];
    let window = String::from_utf8_lossy(window);
    window.contains("NaN") || window.contains("Infinity")
}

/// Reads a file, mapping I/O failures to [`ModelError::Io`].
pub fn read_file(file: &std::path::Path) -> Result<String, ModelError> {
    std::fs::read_to_string(file).map_err(|source| ModelError::Io {
        file: file.to_path_buf(),
        source,
    })
}
