//! Who may use the runs API: bearer tokens from `API_TOKEN` (read-write) and `API_TOKENS_FILE`
//! (`ro TOKEN` or `rw TOKEN` per line), compared in constant time and never logged. Reads need
//! any token, changes a read-write one; without tokens the API is open (and bound to loopback).

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Read,
    Write,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("API_TOKENS_FILE {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("API_TOKENS_FILE {path}, line {line}: {why}")]
    Line {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{0}: a token must be at least 16 characters, without spaces")]
    Weak(&'static str),
}

/// The tokens the API accepts.
#[derive(Clone, Default)]
pub struct ApiTokens {
    tokens: Vec<(Access, Box<[u8]>)>,
}

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiTokens({} tokens)", self.tokens.len())
    }
}

/// Shorter tokens are refused: they can be guessed.
const MIN_TOKEN_LEN: usize = 16;

fn acceptable(token: &str) -> bool {
    token.len() >= MIN_TOKEN_LEN && !token.chars().any(char::is_whitespace)
}

impl ApiTokens {
    /// `token` (read-write) and the tokens of `file`.
    pub fn load(token: Option<&str>, file: Option<&Path>) -> Result<ApiTokens, TokenError> {
        let mut tokens = Vec::new();
        if let Some(t) = token.map(str::trim).filter(|t| !t.is_empty()) {
            if !acceptable(t) {
                return Err(TokenError::Weak("API_TOKEN"));
            }
            tokens.push((Access::Write, Box::from(t.as_bytes())));
        }
        if let Some(path) = file.filter(|p| !p.as_os_str().is_empty()) {
            let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let bad = |why: &str| TokenError::Line {
                    path: path.to_path_buf(),
                    line: n + 1,
                    why: why.to_string(),
                };
                let (kind, secret) = line
                    .split_once(char::is_whitespace)
                    .ok_or_else(|| bad("expected `ro TOKEN` or `rw TOKEN`"))?;
                let access = match kind {
                    "ro" => Access::Read,
                    "rw" => Access::Write,
                    _ => return Err(bad("expected `ro TOKEN` or `rw TOKEN`")),
                };
                let secret = secret.trim();
                if !acceptable(secret) {
                    return Err(bad(
                        "a token must be at least 16 characters, without spaces",
                    ));
                }
                tokens.push((access, Box::from(secret.as_bytes())));
            }
        }
        Ok(ApiTokens { tokens })
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// What `presented` allows: every token is compared, each in constant time.
    pub fn access(&self, presented: &[u8]) -> Option<Access> {
        let mut best = None;
        for (access, token) in &self.tokens {
            if bool::from(token.as_ref().ct_eq(presented)) {
                best = best.max(Some(*access));
            }
        }
        best
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// Middleware: reads (GET, HEAD) need a token, anything else a read-write one.
pub async fn require_token(
    State(tokens): State<Arc<ApiTokens>>,
    request: Request,
    next: Next,
) -> Response {
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let needed = if matches!(*request.method(), Method::GET | Method::HEAD) {
        Access::Read
    } else {
        Access::Write
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match presented.and_then(|t| tokens.access(t)) {
        None => refuse(
            StatusCode::UNAUTHORIZED,
            "a valid token is required: Authorization: Bearer TOKEN",
        ),
        Some(access) if access < needed => refuse(StatusCode::FORBIDDEN, "this token is read-only"),
        Some(_) => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_the_variable_and_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            "# operators\nro reader-0123456789abcdef\n\nrw writer-0123456789abcdef\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let tokens = ApiTokens::load(Some("main-0123456789abcdef"), Some(&path))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tokens.access(b"main-0123456789abcdef"), Some(Access::Write));
        assert_eq!(
            tokens.access(b"reader-0123456789abcdef"),
            Some(Access::Read)
        );
        assert_eq!(
            tokens.access(b"writer-0123456789abcdef"),
            Some(Access::Write)
        );
        assert_eq!(tokens.access(b"reader-0123456789abcde"), None);
        assert_eq!(tokens.access(b""), None);
        assert!(!format!("{tokens:?}").contains("0123"));
    }

    #[test]
    fn bad_lines_and_weak_tokens_are_refused() {
        assert!(matches!(
            ApiTokens::load(Some("short"), None),
            Err(TokenError::Weak(_))
        ));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("tokens");
        std::fs::write(&path, "admin 0123456789abcdef0123\n").unwrap_or_else(|e| panic!("{e}"));
        let e = ApiTokens::load(None, Some(&path))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("line 1")));
        assert!(ApiTokens::load(None, None).is_ok_and(|t| t.is_empty()));
    }
}
