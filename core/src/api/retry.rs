//! The retry decisions of one API call, shared by every adapter: refresh the token and retry
//! once on a token error; retry rate-limited and busy answers after DingTalk's documented pause,
//! a bounded number of times.
//!
//! ```
//! use std::time::Duration;
//! use dingtalk_core::api::retry::{Attempts, Next, RetryPolicy};
//! use dingtalk_core::{ApiError, ErrorKind};
//! let mut attempts = Attempts::new(RetryPolicy::default());
//! let token_error = ApiError::new(ErrorKind::TokenInvalid, "expired");
//! assert!(matches!(attempts.judge::<()>(Err(token_error.clone())), Next::RefreshToken));
//! // Only once:
//! assert!(matches!(attempts.judge::<()>(Err(token_error)), Next::Fail(_)));
//! let limited = ApiError { code: Some("90018".into()), ..ApiError::new(ErrorKind::RateLimited, "qps") };
//! assert!(matches!(attempts.judge::<()>(Err(limited)), Next::Retry { after } if after == Duration::from_secs(1)));
//! ```

use std::time::Duration;

use crate::error::ApiError;

/// How rate-limited and busy answers are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (default 2).
    pub max_retries: u32,
    /// Longest pause before a retry (default 60 s); the pause is DingTalk's documented one.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            max_delay: Duration::from_secs(60),
        }
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next<T> {
    /// The call succeeded.
    Done(T),
    /// Invalidate the token that was used, get a fresh one and send again.
    RefreshToken,
    /// Wait, then send again.
    Retry {
        /// The pause.
        after: Duration,
    },
    /// Give up with this error.
    Fail(ApiError),
}

/// The attempts of one call.
#[derive(Debug, Clone)]
pub struct Attempts {
    policy: RetryPolicy,
    token_refreshed: bool,
    retries: u32,
}

impl Attempts {
    /// A fresh call.
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            token_refreshed: false,
            retries: 0,
        }
    }

    /// Judges the result of one attempt.
    pub fn judge<T>(&mut self, result: Result<T, ApiError>) -> Next<T> {
        match result {
            Ok(v) => Next::Done(v),
            Err(e) if e.is_token_error() && !self.token_refreshed => {
                self.token_refreshed = true;
                Next::RefreshToken
            }
            Err(e) if e.is_retryable() && self.retries < self.policy.max_retries => {
                self.retries += 1;
                let after = e
                    .retry_after()
                    .unwrap_or(Duration::from_secs(1))
                    .min(self.policy.max_delay);
                Next::Retry { after }
            }
            Err(e) => Next::Fail(e),
        }
    }
}
