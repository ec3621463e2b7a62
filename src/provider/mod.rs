//! TEMPORARY stub, replaced by the real wire-format module.
use crate::time::Nanos;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    BadRequest,
    Authentication,
    Billing,
    Permission,
    NotFound,
    RequestTooLarge,
    RateLimit,
    InsufficientQuota,
    Server,
    BadGateway,
    Unavailable,
    Timeout,
    Overloaded,
}
impl ErrorKind {
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            400 => ErrorKind::BadRequest,
            401 => ErrorKind::Authentication,
            402 => ErrorKind::Billing,
            403 => ErrorKind::Permission,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimit,
            502 => ErrorKind::BadGateway,
            503 => ErrorKind::Unavailable,
            408 | 504 => ErrorKind::Timeout,
            529 => ErrorKind::Overloaded,
            s if s < 500 => ErrorKind::BadRequest,
            _ => ErrorKind::Server,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitSnapshot {
    pub limit_requests: u64,
    pub remaining_requests: u64,
    pub reset_requests: Nanos,
    pub limit_tokens: u64,
    pub remaining_tokens: u64,
    pub reset_tokens: Nanos,
}
