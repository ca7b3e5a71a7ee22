//! Errors as RFC 9457 problem details (`application/problem+json`), and the mapping from
//! core rejections and engine errors. Nothing internal reaches a client: storage failures
//! become a plain 503.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;
use tessera_core::Rejection;
use tessera_storage::EngineError;

use crate::hashing::Busy;
use crate::security_log::{SecurityEvent, SecurityNote};

/// One validation problem, listed in `errors`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// A JSON pointer into the request body.
    pub pointer: String,
    pub code: String,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub code: Option<u16>,
    pub errors: Vec<FieldProblem>,
    /// Seconds for `Retry-After`; a u32 (over a century) keeps the answer small.
    pub retry_after_secs: Option<u32>,
    /// The header the status calls for: a 401's `WWW-Authenticate` challenge (a default one
    /// when `None`), a 405's `Allow` list (RFC 9110 section 15.5.6). One field for both keeps
    /// every `Result<_, Problem>` small.
    pub status_header: Option<&'static str>,
    /// A security event this answer reports (and a fixed reason), written by the request
    /// handler, which knows the client address: see [`crate::security_log`].
    pub security: Option<&'static SecurityNote>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
    #[serde(skip_serializing_if = "<[FieldProblem]>::is_empty")]
    errors: &'a [FieldProblem],
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            code: None,
            errors: Vec::new(),
            retry_after_secs: None,
            status_header: None,
            security: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    pub fn unprocessable(detail: impl Into<String>, errors: Vec<FieldProblem>) -> Self {
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "The request is not valid",
                detail,
            )
        }
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "no such resource",
        )
    }

    /// 405, with the methods the resource accepts in `Allow`.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            status_header: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                format!("this resource accepts {allow}"),
            )
        }
    }

    pub fn unauthenticated() -> Self {
        Self::from(Rejection::Unauthenticated)
    }

    /// A bearer token that is missing its scheme, malformed, expired, revoked or forged.
    /// RFC 6750 §3.1: `WWW-Authenticate: Bearer error="invalid_token"`. The reason stays in
    /// the server's metrics, not in the answer.
    pub fn invalid_token() -> Self {
        Self {
            status_header: Some("Bearer realm=\"tessera\", error=\"invalid_token\""),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid-token",
                "Unauthorized",
                "the access token is not valid",
            )
        }
    }

    /// The policy requires a second factor and the account has none: only enrolment, the
    /// account's own view and logout are open to it.
    pub fn mfa_enrolment_required() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "mfa-enrolment-required",
            "MFA enrolment required",
            "enrol TOTP first: POST /v1/mfa/totp, then POST /v1/mfa/totp/confirm",
        )
    }

    pub fn cross_site() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "cross-site-request",
            "Cross-site request refused",
            "a cookie-authenticated change must come from this site (Origin / Sec-Fetch-Site)",
        )
        .reporting(&SecurityNote {
            event: SecurityEvent::CrossSiteRefused,
            reason: "cross_site",
        })
    }

    /// The same answer, reporting a security event.
    pub fn reporting(self, note: &'static SecurityNote) -> Self {
        Self {
            security: Some(note),
            ..self
        }
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            retry_after_secs: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                detail,
            )
        }
    }

    pub fn timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "Request timeout",
            "the request took too long",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "something went wrong; it has been logged",
        )
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let body = Body {
            kind: format!("urn:tessera:problem:{}", self.slug),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            errors: &self.errors,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = Response::new(Full::new(Bytes::from(bytes)));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = self.status_header.unwrap_or("Bearer realm=\"tessera\"");
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(secs) = self.retry_after_secs {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let (StatusCode::METHOD_NOT_ALLOWED, Some(allow)) = (self.status, self.status_header) {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}

impl From<Rejection> for Problem {
    fn from(r: Rejection) -> Self {
        let detail = r.to_string();
        let (status, title, errors) = match &r {
            Rejection::UsernameTaken => (StatusCode::CONFLICT, "Username taken", vec![]),
            Rejection::InvalidUsername(p) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "The request is not valid",
                vec![FieldProblem {
                    pointer: "/username".into(),
                    code: "invalid_username".into(),
                    detail: p.to_string(),
                }],
            ),
            Rejection::InvalidEmail => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "The request is not valid",
                vec![FieldProblem {
                    pointer: "/email".into(),
                    code: "invalid_email".into(),
                    detail,
                }],
            ),
            Rejection::WeakPassword(problems) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "The password does not meet the policy",
                problems
                    .iter()
                    .map(|p| FieldProblem {
                        pointer: "/password".into(),
                        code: p.code().into(),
                        detail: p.to_string(),
                    })
                    .collect(),
            ),
            Rejection::InvalidCredentials | Rejection::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, "Unauthorized", vec![])
            }
            // Only the OAuth endpoints meet these, and they answer RFC 6749 errors instead.
            Rejection::RefreshTokenInvalid | Rejection::RefreshTokenReused => {
                (StatusCode::BAD_REQUEST, "Invalid grant", vec![])
            }
            Rejection::SigningKeyInvalid => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid signing key",
                vec![],
            ),
            Rejection::SessionNotFound | Rejection::AccountNotFound => {
                (StatusCode::NOT_FOUND, "Not found", vec![])
            }
            Rejection::MfaCodeMalformed => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "The request is not valid",
                vec![FieldProblem {
                    pointer: "/code".into(),
                    code: "mfa_code_malformed".into(),
                    detail,
                }],
            ),
            Rejection::MfaCodeInvalid { .. }
            | Rejection::MfaCodeReplayed { .. }
            | Rejection::MfaChallengeInvalid
            | Rejection::MfaChallengeExhausted => {
                (StatusCode::UNAUTHORIZED, "Unauthorized", vec![])
            }
            Rejection::MfaNotEnrolled
            | Rejection::MfaAlreadyEnabled
            | Rejection::MfaEnrolmentPending { .. } => (StatusCode::CONFLICT, "Conflict", vec![]),
            Rejection::MfaKeysUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                vec![],
            ),
            Rejection::Throttled { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "Too many requests", vec![])
            }
            Rejection::ReauthenticationRequired => {
                (StatusCode::FORBIDDEN, "Reauthentication required", vec![])
            }
            Rejection::WebauthnAssertionInvalid { .. }
            | Rejection::WebauthnCounterRegressed
            | Rejection::WebauthnUserVerificationRequired => {
                (StatusCode::UNAUTHORIZED, "Unauthorized", vec![])
            }
            Rejection::WebauthnCeremonyInvalid => (
                StatusCode::BAD_REQUEST,
                "The WebAuthn ceremony is not valid",
                vec![],
            ),
            Rejection::WebauthnCredentialUnknown => (StatusCode::NOT_FOUND, "Not found", vec![]),
            Rejection::WebauthnLastLoginMethod
            | Rejection::WebauthnCredentialExists
            | Rejection::WebauthnCredentialLimit => (StatusCode::CONFLICT, "Conflict", vec![]),
            Rejection::WebauthnNameInvalid => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "The request is not valid",
                vec![FieldProblem {
                    pointer: "/name".into(),
                    code: "webauthn_name_invalid".into(),
                    detail,
                }],
            ),
            Rejection::WebauthnRegistrationInvalid => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "The registration did not verify",
                vec![],
            ),
            Rejection::WebauthnBusy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service unavailable",
                vec![],
            ),
            Rejection::ClientNotFound | Rejection::GrantNotFound => {
                (StatusCode::NOT_FOUND, "Not found", vec![])
            }
            Rejection::ClientExists => (StatusCode::CONFLICT, "Conflict", vec![]),
            Rejection::ClientInvalid(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "The client registration is not valid",
                vec![],
            ),
            Rejection::ClientAuthenticationFailed => {
                (StatusCode::UNAUTHORIZED, "Unauthorized", vec![])
            }
            Rejection::UserCodeInvalid { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "The code is not valid",
                vec![],
            ),
            Rejection::ConsentRequired => (StatusCode::FORBIDDEN, "Consent required", vec![]),
            // Only the OAuth endpoints meet these, and they answer RFC 6749 errors instead.
            Rejection::UnauthorizedClient
            | Rejection::InvalidScope
            | Rejection::AuthorizationRequestInvalid
            | Rejection::AuthorizationCodeInvalid
            | Rejection::AuthorizationCodeReused
            | Rejection::AuthorizationPending
            | Rejection::SlowDown { .. }
            | Rejection::AccessDenied
            | Rejection::ExpiredToken
            | Rejection::DeviceCodeInvalid => (StatusCode::BAD_REQUEST, "Bad request", vec![]),
            Rejection::ApiKeyRequestInvalid { field, why } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "The request is not valid",
                vec![FieldProblem {
                    pointer: (*field).into(),
                    code: "invalid_api_key_request".into(),
                    detail: why.clone(),
                }],
            ),
            Rejection::ApiKeyNotFound => (StatusCode::NOT_FOUND, "Not found", vec![]),
            Rejection::ApiKeyNotActive
            | Rejection::ApiKeyLimitReached
            | Rejection::ApiKeyPrefixAmbiguous => (StatusCode::CONFLICT, "Conflict", vec![]),
            Rejection::ResetTokenInvalid => (
                StatusCode::BAD_REQUEST,
                "Invalid reset token",
                vec![FieldProblem {
                    pointer: "/reset_token".into(),
                    code: "reset_token_invalid".into(),
                    detail,
                }],
            ),
            Rejection::ExternalSignInNotStarted
            | Rejection::ExternalStateMismatch
            | Rejection::ExternalStateSpent
            | Rejection::IdTokenRejected(_) => {
                (StatusCode::BAD_REQUEST, "Sign-in not completed", vec![])
            }
            Rejection::ProviderUnknown | Rejection::IdentityNotLinked => {
                (StatusCode::NOT_FOUND, "Not found", vec![])
            }
            Rejection::ExternalSignInNotLinked { .. } | Rejection::ExternalAccountDisabled => {
                (StatusCode::FORBIDDEN, "Sign-in refused", vec![])
            }
            Rejection::ExternalEmailInUse { .. }
            | Rejection::IdentityLinkedElsewhere { .. }
            | Rejection::ProviderAlreadyLinked { .. }
            | Rejection::LastWayToSignIn => (StatusCode::CONFLICT, "Conflict", vec![]),
        };
        Self {
            status,
            slug: r.slug(),
            title,
            detail: r.to_string(),
            code: Some(r.code()),
            errors,
            retry_after_secs: r
                .retry_after_secs()
                .map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
            status_header: None,
            security: None,
        }
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Overloaded => Self::unavailable("the server is busy; retry shortly"),
            EngineError::NotLeader { .. } => {
                Self::unavailable("this node follows the log and no writer answered; retry shortly")
            }
            EngineError::Unavailable => {
                Self::unavailable("the log's database cannot be reached right now; retry shortly")
            }
            EngineError::Stopped | EngineError::Storage(_) | EngineError::Invariant(_) => {
                tracing::error!(error = %e, "engine unavailable");
                Self::unavailable("the server cannot accept changes right now")
            }
        }
    }
}

impl From<Busy> for Problem {
    fn from(_: Busy) -> Self {
        Self::unavailable("too many password checks in progress; retry shortly")
    }
}
