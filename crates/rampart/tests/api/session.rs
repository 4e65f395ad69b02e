//! Signed-in people for tests: make a person with the CLI, sign in over the API, and send
//! requests with their session cookie and CSRF token like a browser would.

use std::io::Write as _;
use std::process::Stdio;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::reply::Reply;

/// A passphrase every test person gets unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery staple lantern";

/// A signed-in person's cookie and CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// The `name=value` part of a `Set-Cookie` header named `name` in the reply.
pub fn set_cookie<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

impl TestApp {
    /// Makes a person with `rampart user create` and the test passphrase; returns the user id.
    /// `role` is an operator role, or a member role in `account` (the default account if none).
    pub fn create_person(&self, email: &str, role: &str, account: Option<&str>) -> String {
        let mut args = vec!["user", "create", "--email", email, "--role", role];
        if let Some(account) = account {
            args.extend(["--account", account]);
        }
        args.push("--password-stdin");
        let mut child = self
            .command()
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rampart runs");
        writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "user create failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Signs in with email and password; asserts it worked without a second factor.
    pub async fn sign_in(&self, email: &str, password: &str) -> Session {
        let reply = self.login(email, password).await;
        assert_eq!(reply.status, 200, "sign-in failed: {}", reply.text);
        let body = reply.json();
        assert_eq!(body["status"], "signed_in", "{body}");
        let cookie = set_cookie(&reply, "__Host-rampart_session")
            .expect("a session cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        Session {
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// `POST /v1/auth/login`.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post_json(
            "/v1/auth/login",
            "",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// A request with a session cookie (and its CSRF token when `csrf`), and a JSON body.
    pub async fn as_person(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Option<&Value>,
        csrf: bool,
    ) -> Reply {
        let mut headers = vec![("cookie", session.cookie.as_str())];
        if csrf {
            headers.push(("x-csrf-token", session.csrf.as_str()));
        }
        let body = body.map(|b| (Some("application/json"), serde_json::to_vec(b).unwrap()));
        self.request(method, path, "", body, &headers).await
    }

    /// GET with a session.
    pub async fn get_as(&self, session: &Session, path: &str) -> Reply {
        self.as_person(session, Method::GET, path, None, false)
            .await
    }

    /// POST JSON with a session and its CSRF token.
    pub async fn post_as(&self, session: &Session, path: &str, body: &Value) -> Reply {
        self.as_person(session, Method::POST, path, Some(body), true)
            .await
    }
}
