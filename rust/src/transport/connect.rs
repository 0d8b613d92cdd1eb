//! Opening a connection: URL and header checks, TCP (optionally through an
//! HTTP CONNECT proxy), TLS and the WebSocket upgrade, all within `open_timeout`.
//!
//! [`prepare`] runs synchronously on the caller's thread so that mistakes in
//! the arguments (bad URL, `ws://` to a remote host, unreadable `ca_file`) raise
//! immediately as `ValueError`; [`open`] is the network part, run on the
//! runtime. Header values are marked sensitive and are never formatted into
//! an error: failures name the host, never the request.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{client_async_tls_with_config, Connector, MaybeTlsStream, WebSocketStream};

use super::tls;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How many bytes of a refused upgrade's body reach `ConnectError.body`.
const BODY_EXCERPT: usize = 512;

/// Everything needed to open one connection, checked up front.
pub struct Prepared {
    request: Request,
    host: String,
    port: u16,
    tls: Option<Arc<ClientConfig>>,
    proxy: Option<Proxy>,
    open_timeout: Duration,
    config: WebSocketConfig,
}

struct Proxy {
    host: String,
    port: u16,
    /// Pre-encoded `Proxy-Authorization` value when the proxy URL has userinfo.
    auth: Option<String>,
}

/// A failed connect, raised in Python as `ConnectError`.
#[derive(Debug)]
pub struct ConnectFailure {
    pub message: String,
    pub status: Option<u16>,
    pub body: Option<Vec<u8>>,
}

impl ConnectFailure {
    fn new(message: String) -> Self {
        ConnectFailure {
            message,
            status: None,
            body: None,
        }
    }
}

pub struct ConnectArgs<'a> {
    pub url: &'a str,
    pub headers: Vec<(String, String)>,
    pub open_timeout: Duration,
    pub ca_file: Option<&'a str>,
    pub allow_insecure_ws: bool,
    pub config: WebSocketConfig,
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Validate the arguments and build the upgrade request. `Err` is a message for `ValueError`.
pub fn prepare(args: ConnectArgs<'_>) -> Result<Prepared, String> {
    let uri: Uri = args
        .url
        .parse()
        .map_err(|e| format!("invalid WebSocket URL: {e}"))?;
    let secure = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err("WebSocket URL must start with ws:// or wss://".into()),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or("WebSocket URL has no host")?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    if !secure && !args.allow_insecure_ws && !is_loopback(&host) {
        return Err(format!(
            "refusing unencrypted ws:// to non-loopback host {host:?}; use wss:// or pass allow_insecure_ws=True"
        ));
    }
    let mut request = uri
        .into_client_request()
        .map_err(|e| format!("invalid WebSocket URL: {e}"))?;
    let mut seen: Vec<HeaderName> = Vec::new();
    for (name, value) in args.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        // Never echo the value: it may be a credential.
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            format!(
                "invalid characters in the value of header {:?}",
                name.as_str()
            )
        })?;
        value.set_sensitive(true);
        let headers = request.headers_mut();
        if seen.contains(&name) {
            headers.append(name, value);
        } else {
            headers.insert(name.clone(), value);
            seen.push(name);
        }
    }
    let tls = match (secure, args.ca_file) {
        (false, _) => None,
        (true, None) => Some(tls::default_config()?),
        (true, Some(ca)) => Some(tls::config_with_ca(ca)?),
    };
    let proxy = proxy_for(&host, secure)?;
    Ok(Prepared {
        request,
        host,
        port,
        tls,
        proxy,
        open_timeout: args.open_timeout,
        config: args.config,
    })
}

fn env_any(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .filter(|v| !v.trim().is_empty())
}

/// `NO_PROXY` semantics as curl has them: `*`, exact hosts and domain suffixes.
fn no_proxy_matches(host: &str) -> bool {
    let Some(list) = env_any(&["NO_PROXY", "no_proxy"]) else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            let entry = entry.trim_start_matches('.').to_ascii_lowercase();
            entry == "*" || host == entry || host.ends_with(&format!(".{entry}"))
        })
}

/// The proxy from `HTTPS_PROXY` (wss) or `HTTP_PROXY` (ws), if any applies.
fn proxy_for(host: &str, secure: bool) -> Result<Option<Proxy>, String> {
    let names: &[&str] = if secure {
        &["HTTPS_PROXY", "https_proxy"]
    } else {
        &["HTTP_PROXY", "http_proxy"]
    };
    let Some(raw) = env_any(names) else {
        return Ok(None);
    };
    if no_proxy_matches(host) {
        return Ok(None);
    }
    let raw = if raw.contains("://") {
        raw
    } else {
        format!("http://{raw}")
    };
    let uri: Uri = raw
        .parse()
        .map_err(|_| "the proxy URL in HTTPS_PROXY/HTTP_PROXY is invalid".to_string())?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// proxies are supported (HTTP CONNECT)".into());
    }
    let authority = uri.authority().ok_or("the proxy URL has no host")?;
    let auth = authority
        .as_str()
        .rsplit_once('@')
        .map(|(userinfo, _)| format!("Basic {}", base64_simd::STANDARD.encode_to_string(userinfo)));
    Ok(Some(Proxy {
        host: authority.host().to_owned(),
        port: authority.port_u16().unwrap_or(80),
        auth,
    }))
}

async fn tcp(host: &str, port: u16) -> Result<TcpStream, ConnectFailure> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| ConnectFailure::new(format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Realtime traffic is small frames where latency matters.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(ConnectFailure::new(match last {
        Some(e) => format!("cannot connect to {host}:{port}: {e}"),
        None => format!("cannot resolve {host}: no addresses"),
    }))
}

/// Ask the proxy for a tunnel to `host:port` and read its reply headers.
async fn tunnel(
    stream: &mut TcpStream,
    proxy: &Proxy,
    host: &str,
    port: u16,
) -> Result<(), ConnectFailure> {
    let mut req = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n");
    if let Some(auth) = &proxy.auth {
        req.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    req.push_str("\r\n");
    let fail =
        |what: String| ConnectFailure::new(format!("proxy {}:{}: {what}", proxy.host, proxy.port));
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| fail(format!("write failed: {e}")))?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    // Byte-wise so nothing past the header block is consumed: the TLS or
    // WebSocket handshake owns the stream from there.
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(fail("reply headers too long".into()));
        }
        let n = stream
            .read(&mut byte)
            .await
            .map_err(|e| fail(format!("read failed: {e}")))?;
        if n == 0 {
            return Err(fail("closed the connection during CONNECT".into()));
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok());
    if status == Some(200) {
        return Ok(());
    }
    let mut err = fail(format!(
        "refused CONNECT to {host}:{port}: {}",
        line.lines().next().unwrap_or_default()
    ));
    err.status = status;
    Err(err)
}

fn upgrade_failure(err: WsError, p: &Prepared) -> ConnectFailure {
    let (host, port) = (&p.host, p.port);
    match err {
        WsError::Http(resp) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_ref()
                .map(|b| b[..b.len().min(BODY_EXCERPT)].to_vec());
            ConnectFailure {
                message: format!(
                    "{host}:{port} refused the WebSocket upgrade: HTTP {} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                )
                .trim_end()
                .to_owned(),
                status: Some(status.as_u16()),
                body,
            }
        }
        WsError::Io(e) if p.tls.is_some() => {
            ConnectFailure::new(format!("TLS or upgrade with {host}:{port} failed: {e}"))
        }
        other => ConnectFailure::new(format!(
            "WebSocket upgrade with {host}:{port} failed: {other}"
        )),
    }
}

async fn open_inner(p: Prepared) -> Result<Ws, ConnectFailure> {
    let stream = match &p.proxy {
        Some(proxy) => {
            let mut s = tcp(&proxy.host, proxy.port).await?;
            tunnel(&mut s, proxy, &p.host, p.port).await?;
            s
        }
        None => tcp(&p.host, p.port).await?,
    };
    let connector = p.tls.clone().map(Connector::Rustls);
    match client_async_tls_with_config(p.request.clone(), stream, Some(p.config), connector).await {
        Ok((ws, _response)) => Ok(ws),
        Err(e) => Err(upgrade_failure(e, &p)),
    }
}

/// Connect, upgrade and return the stream, or fail within `open_timeout`.
pub async fn open(p: Prepared) -> Result<Ws, ConnectFailure> {
    let limit = p.open_timeout;
    let what = format!("{}:{}", p.host, p.port);
    match tokio::time::timeout(limit, open_inner(p)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectFailure::new(format!(
            "timed out after {:.3} s opening a WebSocket to {what}",
            limit.as_secs_f64()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("127.3.4.5"));
        assert!(is_loopback("[::1]"));
        assert!(is_loopback("LocalHost"));
        assert!(!is_loopback("example.com"));
        assert!(!is_loopback("10.0.0.1"));
        assert!(!is_loopback("localhost.example.com"));
    }
}
