//! One keep-alive HTTPS/1.1 connection to the send API, and the judgement of each reply: a
//! request counts as accepted only on `202 Accepted` listing every recipient as `queued`.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where and how to send: resolved once, shared by every worker.
pub struct Target {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    authority: HeaderValue,
    endpoint: Uri,
    authorization: HeaderValue,
    tls: TlsConnector,
    connect_timeout: Duration,
}

impl Target {
    /// Checks the URL and loads the trusted certificate. Refuses anything but `https`.
    /// Opening a connection (TCP, TLS and HTTP handshakes) gives up after `connect_timeout`.
    pub fn new(url: &str, api_key: &str, cacert: &Path, connect_timeout: Duration) -> Result<Self> {
        let base: Uri = url
            .parse()
            .with_context(|| format!("`{url}` is not a URL"))?;
        ensure!(
            base.scheme_str() == Some("https"),
            "`{url}`: only https URLs are supported"
        );
        let host = base
            .host()
            .with_context(|| format!("`{url}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = base.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone())
            .with_context(|| format!("`{host}` is not a valid TLS server name"))?;
        let authority = base
            .authority()
            .with_context(|| format!("`{url}` has no authority"))?;
        let authority = HeaderValue::from_str(authority.as_str())?;
        let endpoint: Uri = format!("{}/v1/messages", base.path().trim_end_matches('/'))
            .parse()
            .context("building the request path")?;

        let mut authorization = HeaderValue::from_str(&format!("Bearer {api_key}"))
            .context("the API key contains characters not allowed in a header")?;
        authorization.set_sensitive(true);

        let mut roots = RootCertStore::empty();
        let certificates = CertificateDer::pem_file_iter(cacert)
            .with_context(|| format!("reading {}", cacert.display()))?;
        for certificate in certificates {
            let certificate =
                certificate.with_context(|| format!("parsing PEM in {}", cacert.display()))?;
            roots
                .add(certificate)
                .with_context(|| format!("adding a certificate from {}", cacert.display()))?;
        }
        ensure!(
            !roots.is_empty(),
            "no certificate found in {}",
            cacert.display()
        );
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];

        Ok(Self {
            host,
            port,
            server_name,
            authority,
            endpoint,
            authorization,
            tls: TlsConnector::from(Arc::new(config)),
            connect_timeout,
        })
    }

    /// Opens a TCP connection, completes the TLS handshake and the HTTP/1.1 handshake.
    pub async fn connect(&self) -> Result<Connection> {
        tokio::time::timeout(self.connect_timeout, self.handshake())
            .await
            .with_context(|| format!("no connection within {:?}", self.connect_timeout))?
    }

    async fn handshake(&self) -> Result<Connection> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to {}:{}", self.host, self.port))?;
        // Small requests on a keep-alive connection: don't let Nagle hold them back.
        tcp.set_nodelay(true)?;
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .context("TLS handshake")?;
        let (sender, connection) = http1::handshake(TokioIo::new(tls))
            .await
            .context("HTTP/1.1 handshake")?;
        // The driver ends when the connection closes; errors reach the sender on its next use.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection { sender })
    }

    fn request(&self, body: Bytes) -> Result<Request<Full<Bytes>>> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.clone())
            .header(HOST, self.authority.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body))?;
        Ok(request)
    }
}

/// One keep-alive connection, used by exactly one worker.
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
}

/// A complete reply: the status and the whole body.
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Connection {
    /// False once the server (or an error) has closed the connection.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// Sends one request and reads the whole response. An error means a transport failure;
    /// the connection should then be replaced.
    pub async fn send(&mut self, target: &Target, body: Bytes) -> Result<Reply> {
        self.sender.ready().await.context("connection not ready")?;
        let response = self.sender.send_request(target.request(body)?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }
}

/// How the bench judges one reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 202 with every recipient queued.
    Accepted,
    /// Anything else, labelled for the error table: the status code, or `202-bad-body`.
    Error(Cow<'static, str>),
}

#[derive(Deserialize)]
struct SendResponse<'a> {
    #[serde(borrow)]
    messages: Vec<QueuedMessage<'a>>,
}

#[derive(Deserialize)]
struct QueuedMessage<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
}

/// Accepted only on `202` whose body lists `recipients` messages, each with an id and `queued`.
pub fn judge(reply: &Reply, recipients: usize) -> Verdict {
    if reply.status != StatusCode::ACCEPTED {
        return Verdict::Error(Cow::Owned(reply.status.as_u16().to_string()));
    }
    match serde_json::from_slice::<SendResponse<'_>>(&reply.body) {
        Ok(parsed)
            if parsed.messages.len() == recipients
                && parsed
                    .messages
                    .iter()
                    .all(|m| !m.id.is_empty() && m.status == "queued") =>
        {
            Verdict::Accepted
        }
        _ => Verdict::Error(Cow::Borrowed("202-bad-body")),
    }
}

/// Sends one request before the run so a wrong key, URL or certificate fails loudly at once.
pub async fn preflight(target: &Target, body: Bytes, recipients: usize) -> Result<()> {
    let mut connection = target.connect().await?;
    let reply = tokio::time::timeout(target.connect_timeout, connection.send(target, body))
        .await
        .context("no reply to the first request in time")?
        .context("first request")?;
    if judge(&reply, recipients) == Verdict::Accepted {
        return Ok(());
    }
    let shown = reply.body.len().min(400);
    bail!(
        "the first request was not accepted: HTTP {}: {}",
        reply.status,
        String::from_utf8_lossy(&reply.body[..shown])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn accepted_reply_lists_every_recipient_as_queued() {
        let body = r#"{"messages":[{"id":"msg_1","to":"+447900000001","status":"queued"},
                                    {"id":"msg_2","to":"+33612000001","status":"queued"}]}"#;
        assert_eq!(judge(&reply(202, body), 2), Verdict::Accepted);
    }

    #[test]
    fn non_202_statuses_are_errors_named_by_code() {
        let verdict = judge(&reply(429, r#"{"code":"rate_limited"}"#), 1);
        assert_eq!(verdict, Verdict::Error(Cow::Borrowed("429")));
        let verdict = judge(&reply(200, r#"{"messages":[]}"#), 1);
        assert_eq!(verdict, Verdict::Error(Cow::Borrowed("200")));
    }

    #[test]
    fn a_202_missing_recipients_or_not_queued_is_not_accepted() {
        let short = r#"{"messages":[{"id":"msg_1","to":"+447900000001","status":"queued"}]}"#;
        assert_eq!(
            judge(&reply(202, short), 2),
            Verdict::Error(Cow::Borrowed("202-bad-body"))
        );
        let rejected = r#"{"messages":[{"id":"msg_1","to":"+1","status":"rejected"}]}"#;
        assert_eq!(
            judge(&reply(202, rejected), 1),
            Verdict::Error(Cow::Borrowed("202-bad-body"))
        );
        assert_eq!(
            judge(&reply(202, "not json"), 1),
            Verdict::Error(Cow::Borrowed("202-bad-body"))
        );
    }

    #[test]
    fn only_https_urls_are_accepted() {
        let error = Target::new(
            "http://localhost:8443",
            "rk_x",
            Path::new("/nonexistent"),
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert!(error.to_string().contains("only https"), "{error}");
    }
}
