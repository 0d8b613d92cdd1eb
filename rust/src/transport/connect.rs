//! Opening a connection: URL and header checks, TCP (optionally through an
//! HTTP CONNECT proxy), TLS and the WebSocket upgrade, all within `open_timeout`.
//!
//! [`prepare`] runs synchronously on the caller's thread so that mistakes in
//! the arguments (bad URL, `ws://` to a remote host, unreadable `ca_file`) raise
//! immediately as `ValueError`; [`open`] is the network part, run on the
//! runtime. Header values are marked sensitive and are never formatted into
//! an error: failures name the host, never the request. Whatever the peer
//! sends back (a refused upgrade's body, a proxy's status line) is scrubbed of
//! credentials ([`super::secrets`]) before it can reach Python.
//!
//! Proxies: `HTTPS_PROXY` (wss) / `HTTP_PROXY` (ws) with `NO_PROXY`, as curl
//! and requests read them; loopback targets are never proxied, and a plain
//! `ws://` hop to a non-loopback proxy is refused like a plain `ws://` to a
//! non-loopback host (the proxy would read the key).

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

use super::{secrets, tls};

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
    /// Credentials this connection sends, masked in anything the peer echoes.
    secrets: Vec<String>,
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
    pub(crate) fn new(message: String) -> Self {
        ConnectFailure {
            message,
            status: None,
            body: None,
        }
    }

    /// Mask credentials in the message and the whole body, then cut the body
    /// to its excerpt (cutting first could leave half a key unrecognised).
    fn scrubbed(self, secrets: &[String]) -> Self {
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        ConnectFailure {
            message: secrets::scrub(&self.message, &refs),
            status: self.status,
            body: self.body.map(|b| {
                let mut b = secrets::scrub_bytes(&b, &refs);
                b.truncate(BODY_EXCERPT);
                b
            }),
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
    let mut secrets = secrets::header_secrets(&args.headers);
    // Before the host check, so that a refusal names the proxy hop when there is one.
    let proxy = proxy_for(&host, port, secure, args.allow_insecure_ws, &mut secrets)?;
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
    Ok(Prepared {
        request,
        host,
        port,
        tls,
        proxy,
        open_timeout: args.open_timeout,
        config: args.config,
        secrets,
    })
}

fn env_any(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .filter(|v| !v.trim().is_empty())
}

/// Whether one `NO_PROXY` entry covers `host:port`, as curl and requests read
/// it: `*`; a host name matching itself and its subdomains (a leading `.` or
/// `*.` is ignored); an IP address or CIDR block (`10.0.0.0/8`, `[::1]`); an
/// optional `:port` restricting the entry to that port.
fn no_proxy_entry_matches(entry: &str, host: &str, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    let entry = entry.trim_start_matches("*.").trim_start_matches('.');
    let (name, entry_port) = split_entry_port(entry);
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    let name = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if name.is_empty() {
        return false;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match name.split_once('/') {
            Some((net, bits)) => in_cidr(ip, net, bits),
            None => name.parse::<IpAddr>().is_ok_and(|n| n == ip),
        };
    }
    host == name || host.ends_with(&format!(".{name}"))
}

/// `host:port`, `[v6]:port` or a bare name/address (an IPv6 address has colons of its own).
fn split_entry_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((addr, tail)) = rest.split_once(']') {
            return (addr, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match entry.rsplit_once(':') {
        Some((name, p)) if !name.contains(':') => match p.parse() {
            Ok(p) => (name, Some(p)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_cidr(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn no_proxy_matches(host: &str, port: u16) -> bool {
    let Some(list) = env_any(&["no_proxy", "NO_PROXY"]) else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .any(|entry| no_proxy_entry_matches(entry, &host, port))
}

/// The proxy from `HTTPS_PROXY` (wss) or `HTTP_PROXY` (ws), if any applies.
/// The lowercase names win, as in curl and requests. Proxy credentials are
/// added to `secrets`.
fn proxy_for(
    host: &str,
    port: u16,
    secure: bool,
    allow_insecure_ws: bool,
    secrets: &mut Vec<String>,
) -> Result<Option<Proxy>, String> {
    // A proxy has no business seeing loopback traffic (nor the key in it).
    if is_loopback(host) {
        return Ok(None);
    }
    let (names, var): (&[&str], &str) = if secure {
        (&["https_proxy", "HTTPS_PROXY"], "HTTPS_PROXY")
    } else {
        (&["http_proxy", "HTTP_PROXY"], "HTTP_PROXY")
    };
    let Some(raw) = env_any(names) else {
        return Ok(None);
    };
    if no_proxy_matches(host, port) {
        return Ok(None);
    }
    let raw = if raw.contains("://") {
        raw
    } else {
        format!("http://{raw}")
    };
    let uri: Uri = raw
        .parse()
        .map_err(|_| format!("the proxy URL in {var} is invalid"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// proxies are supported (HTTP CONNECT)".into());
    }
    let authority = uri.authority().ok_or("the proxy URL has no host")?;
    let proxy_host = authority.host().to_owned();
    let proxy_port = authority.port_u16().unwrap_or(80);
    if !secure && !allow_insecure_ws && !is_loopback(&proxy_host) {
        return Err(format!(
            "refusing unencrypted ws:// to {host:?} through the non-loopback proxy \
             {proxy_host}:{proxy_port} (from {var}): the proxy would read the request, API key \
             included; use wss://, add the host to NO_PROXY or pass allow_insecure_ws=True"
        ));
    }
    let auth = authority.as_str().rsplit_once('@').map(|(userinfo, _)| {
        let encoded = base64_simd::STANDARD.encode_to_string(userinfo);
        secrets.push(userinfo.to_owned());
        if let Some((_, password)) = userinfo.split_once(':').filter(|(_, p)| !p.is_empty()) {
            secrets.push(password.to_owned());
        }
        secrets.push(encoded.clone());
        format!("Basic {encoded}")
    });
    Ok(Some(Proxy {
        host: proxy_host,
        port: proxy_port,
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
            // Whole: `ConnectFailure::scrubbed` masks credentials, then cuts it.
            let body = resp.body().clone();
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
    let secrets = p.secrets.clone();
    let result = match tokio::time::timeout(limit, open_inner(p)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectFailure::new(format!(
            "timed out after {:.3} s opening a WebSocket to {what}",
            limit.as_secs_f64()
        ))),
    };
    result.map_err(|f| f.scrubbed(&secrets))
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

    #[test]
    fn no_proxy_entries() {
        let m = no_proxy_entry_matches;
        assert!(m("*", "example.com", 443));
        assert!(m("example.com", "example.com", 443));
        assert!(m(".example.com", "api.example.com", 443));
        assert!(m("*.example.com", "api.example.com", 443));
        assert!(!m("example.com", "notexample.com", 443));
        assert!(m("example.com:443", "example.com", 443));
        assert!(!m("example.com:8443", "example.com", 443));
        assert!(m("10.0.0.0/8", "10.1.2.3", 80));
        assert!(!m("10.0.0.0/8", "11.1.2.3", 80));
        assert!(m("192.168.1.7", "192.168.1.7", 80));
        assert!(m("[fd00::1]", "fd00::1", 80));
        assert!(m("fd00::/8", "fd12::1", 80));
        assert!(m("[fd00::1]:80", "fd00::1", 80));
        assert!(!m("0.0.0.0/0", "example.com", 80));
    }
}
