//! Write-route protection shared by every route that changes state (silences; later the other
//! write routes): a bearer token from `http.token` / `http.token_file`, compared in constant
//! time; `application/json` only (a cross-site form or `text/plain` post is refused); a body
//! size limit; one audit log line per accepted or refused request (target `envmon::audit`).
//!
//! Without a configured token the write routes answer 403: closed, never open.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use subtle::ConstantTimeEq as _;

use crate::config::Secret;

/// Largest request body a write route accepts (a silence is well under 1 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The one error shape of every route (`{"error":{"zh":…,"en":…}}`).
pub use super::error_response as error;

/// The configured write token and its name (who, in audit lines).
#[derive(Clone, Debug)]
pub struct WriteAuth {
    token: Option<Secret>,
    name: String,
}

impl WriteAuth {
    pub fn new(token: Option<Secret>, name: impl Into<String>) -> WriteAuth {
        WriteAuth {
            token: token.filter(|t| !t.is_empty()),
            name: name.into(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Check a write request. `Ok(who)` names the token; `Err` is the response to send.
    /// `action` goes into the audit line.
    // The error is the HTTP response itself, returned straight from the handler.
    #[allow(clippy::result_large_err)]
    pub fn check(
        &self,
        headers: &HeaderMap,
        action: &str,
        with_body: bool,
    ) -> Result<String, Response> {
        let Some(token) = &self.token else {
            tracing::warn!(target: "envmon::audit", action, result = "refused", reason = "no http.token configured");
            return Err(error(
                StatusCode::FORBIDDEN,
                "写操作未启用：未配置 http.token",
                "write routes are disabled: no http.token configured",
            ));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.expose().as_bytes())));
        if !ok {
            tracing::warn!(target: "envmon::audit", action, result = "refused",
                reason = if given.is_some() { "wrong token" } else { "no token" });
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "需要有效的访问令牌（Authorization: Bearer …）",
                "a valid bearer token is required (Authorization: Bearer …)",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return Err(r);
        }
        if with_body {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let mime = ct.split(';').next().unwrap_or("").trim();
            if !mime.eq_ignore_ascii_case("application/json") {
                tracing::warn!(target: "envmon::audit", action, who = %self.name, result = "refused", reason = "content type", content_type = %ct);
                return Err(error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "只接受 application/json",
                    "only application/json is accepted",
                ));
            }
        }
        Ok(self.name.clone())
    }
}
