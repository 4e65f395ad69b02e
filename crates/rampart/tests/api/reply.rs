//! An HTTP answer read whole, and the checks every problem document must pass.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "{} answered with a body that is not JSON ({e}): {}",
                self.status, self.text
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem's `code`, asserting first that this is a well-formed problem document.
    pub fn problem_code(&self) -> String {
        assert_problem(self);
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    /// Asserts the status and the problem `code`.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {status} `{code}`, got: {}",
            self.text
        );
        assert_eq!(self.problem_code(), code, "problem: {}", self.text);
    }
}

/// An RFC 9457 problem: 4xx, `application/problem+json`, and every member we promise.
pub fn assert_problem(reply: &Reply) {
    assert!(
        reply.status.is_client_error(),
        "expected a 4xx problem, got {}: {}",
        reply.status,
        reply.text
    );
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "content type of a {} problem",
        reply.status
    );
    let problem = reply.json();
    for member in ["type", "title", "detail", "code"] {
        assert!(
            problem[member].as_str().is_some_and(|s| !s.is_empty()),
            "problem without a `{member}`: {problem}"
        );
    }
    assert_eq!(
        problem["status"].as_u64(),
        Some(u64::from(reply.status.as_u16())),
        "problem `status` differs from the HTTP status: {problem}"
    );
}
