//! Which proxy a connection goes through, and the HTTP `CONNECT` handshake that opens a tunnel
//! through it. Sans-IO: the adapter opens the TCP connection to the proxy, writes
//! [`ConnectHandshake::request`], feeds what it reads to [`ConnectHandshake::received`] and, once
//! the tunnel is up, speaks TLS (or the WebSocket handshake) inside it.
//!
//! The rules follow curl and reqwest:
//!
//! * `https://` and `wss://` targets use `https_proxy` / `HTTPS_PROXY`, then `all_proxy` /
//!   `ALL_PROXY`; `http://` and `ws://` targets use `http_proxy` / `HTTP_PROXY` (the upper-case
//!   form is ignored under CGI, where `REQUEST_METHOD` is set and `HTTP_PROXY` can come from a
//!   request header), then `all_proxy`. The lower-case name wins when both are set; an empty
//!   value counts as unset.
//! * `no_proxy` / `NO_PROXY`: a comma-separated list; `*` matches every host; a name matches
//!   itself and its subdomains (`example.com`, `.example.com` and `*.example.com` all match
//!   `example.com` and `a.example.com`); an IP address or a CIDR range (`10.0.0.0/8`,
//!   `::1/128`) matches addresses. Loopback hosts are not exempt unless listed: a proxy on
//!   the same machine may be the point.
//! * A proxy URL is `http://[user[:password]@]host[:port]` (the scheme may be left out; the port
//!   defaults to 80). The user name and password are percent-decoded and sent as
//!   `Proxy-Authorization: Basic`. Other schemes (`https://`, `socks5://`) are refused with a
//!   typed error rather than ignored, so traffic never goes around a proxy that was asked for.
//!
//! Nothing here prints a proxy's credentials: [`ProxyUrl`]'s `Debug` and `Display` leave them
//! out, and no error quotes a proxy URL.

use std::net::IpAddr;

use base64::Engine as _;

/// Why a proxy setting or a proxy's answer was refused. Never quotes a URL or a credential.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The proxy URL (named by where it came from, e.g. `HTTPS_PROXY`) could not be parsed.
    #[error("the proxy URL in {0} is not valid")]
    InvalidUrl(String),
    /// The proxy URL has a scheme other than `http`.
    #[error("the proxy in {source_name} uses {scheme}://, only http:// proxies are supported")]
    UnsupportedScheme {
        /// Where the URL came from.
        source_name: String,
        /// Its scheme.
        scheme: String,
    },
    /// The proxy asked for credentials (status 407): none were given, or they were refused.
    #[error("the proxy refused the tunnel: authentication required (407)")]
    AuthRequired,
    /// The proxy answered `CONNECT` with another non-2xx status.
    #[error("the proxy refused the tunnel with status {0}")]
    Refused(u16),
    /// The proxy's answer is not HTTP, is cut short, or is followed by data.
    #[error("the proxy's answer to CONNECT is malformed: {0}")]
    Malformed(&'static str),
    /// The proxy's answer headers exceed [`MAX_CONNECT_REPLY`] bytes.
    #[error("the proxy's answer to CONNECT is larger than {MAX_CONNECT_REPLY} bytes")]
    TooLarge,
}

/// Largest `CONNECT` answer head read from a proxy.
pub const MAX_CONNECT_REPLY: usize = 16 * 1024;

/// One `http://` proxy: host, port and optional Basic credentials. `Debug` and `Display` show
/// `http://host:port` only.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl std::fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", authority(&self.host, self.port))
    }
}

/// `host:port`, an IPv6 host in brackets.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl ProxyUrl {
    /// Parses `http://[user[:password]@]host[:port][/]` (scheme optional, port 80 by default).
    /// `source_name` names the setting in errors (`"HTTPS_PROXY"`, `"the builder"`).
    pub fn parse(url: &str, source_name: &str) -> Result<Self, ProxyError> {
        let invalid = || ProxyError::InvalidUrl(source_name.to_owned());
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                let scheme =
                    if scheme.len() <= 16 && scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        scheme.to_ascii_lowercase()
                    } else {
                        "an unknown scheme".to_owned()
                    };
                return Err(ProxyError::UnsupportedScheme {
                    source_name: source_name.to_owned(),
                    scheme,
                });
            }
            None => url,
        };
        let (authority_part, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !(path.is_empty() || path == "/") {
            return Err(invalid());
        }
        let (userinfo, hostport) = match authority_part.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority_part),
        };
        let parsed: http::uri::Authority = hostport.parse().map_err(|_| invalid())?;
        if parsed.as_str().contains('@') || parsed.host().is_empty() {
            return Err(invalid());
        }
        let host = parsed
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = match parsed.port_u16() {
            Some(port) => port,
            // Text after the host that is not a port number (`:99999`, `:`).
            None if parsed.as_str().len() > parsed.host().len() => return Err(invalid()),
            None => 80,
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|c| c.into_owned())
                        .map_err(|_| invalid())
                };
                Some((decode(user)?, decode(pass)?))
            }
        };
        Ok(Self {
            host,
            port,
            credentials,
        })
    }

    /// The proxy's host name or address (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Basic credentials (user name, password), percent-decoded. Hand them to an HTTP
    /// client's proxy setting; never print them.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The `Proxy-Authorization` header value (`Basic …`), when there are credentials.
    pub fn authorization(&self) -> Option<String> {
        self.credentials.as_ref().map(|(u, p)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Basic {token}")
        })
    }

    /// Starts a `CONNECT` tunnel to `host:port` through this proxy.
    pub fn connect(&self, host: &str, port: u16) -> ConnectHandshake {
        let target = authority(host.trim_start_matches('[').trim_end_matches(']'), port);
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = self.authorization() {
            request.push_str("Proxy-Authorization: ");
            request.push_str(&auth);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        ConnectHandshake {
            request: request.into_bytes(),
            reply: Vec::new(),
            chunk: vec![0; READ_CHUNK],
        }
    }
}

/// One `CONNECT` handshake: the request to write, then the proxy's answer read into
/// [`ConnectHandshake::spare`] and reported with [`ConnectHandshake::received`] until it is
/// complete.
#[derive(Clone)]
pub struct ConnectHandshake {
    request: Vec<u8>,
    reply: Vec<u8>,
    chunk: Vec<u8>,
}

impl std::fmt::Debug for ConnectHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectHandshake")
            .field("received", &self.reply.len())
            .finish_non_exhaustive()
    }
}

/// Bytes read from the proxy at a time.
const READ_CHUNK: usize = 1024;

impl ConnectHandshake {
    /// The request to write to the proxy (it may hold the proxy's credentials: never log it).
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// A buffer to read the proxy's answer into (at most 1 KiB at a time).
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.chunk
    }

    /// Reports that `n` bytes were read into [`ConnectHandshake::spare`] (`0`: the proxy
    /// closed). `Ok(true)`: the tunnel is open and the next byte on the connection is the
    /// target's; `Ok(false)`: read more.
    pub fn received(&mut self, n: usize) -> Result<bool, ProxyError> {
        let n = n.min(self.chunk.len());
        self.reply.extend_from_slice(&self.chunk[..n]);
        if n == 0 {
            return Err(ProxyError::Malformed("the proxy closed the connection"));
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&self.reply) {
            Ok(httparse::Status::Partial) if self.reply.len() > MAX_CONNECT_REPLY => {
                Err(ProxyError::TooLarge)
            }
            Ok(httparse::Status::Partial) => Ok(false),
            Ok(httparse::Status::Complete(len)) => match response.code {
                Some(200..=299) if len == self.reply.len() => Ok(true),
                // Client speaks first in a tunnel (TLS ClientHello, WebSocket upgrade).
                Some(200..=299) => Err(ProxyError::Malformed("data after the answer")),
                Some(407) => Err(ProxyError::AuthRequired),
                Some(code) => Err(ProxyError::Refused(code)),
                None => Err(ProxyError::Malformed("no status")),
            },
            Err(_) => Err(ProxyError::Malformed("not an HTTP answer")),
        }
    }
}

/// Hosts that bypass the proxy (`NO_PROXY`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    names: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    /// Parses a `NO_PROXY` list. Entries it cannot read are ignored (as curl does).
    pub fn parse(list: &str) -> Self {
        let mut out = Self::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                out.all = true;
            } else if let Some((ip, bits)) = entry.split_once('/') {
                if let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    out.nets.push((ip, bits.min(max)));
                }
            } else if let Ok(ip) = entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                out.nets.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else {
                let name = entry.trim_start_matches("*.").trim_start_matches('.');
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if !name.is_empty() {
                    out.names.push(name);
                }
            }
        }
        out
    }

    /// Whether `host` (a name, or an address with or without brackets) bypasses the proxy.
    pub fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.nets.iter().any(|&(net, bits)| in_net(ip, net, bits));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.iter().any(|name| {
            host == *name
                || (host.len() > name.len()
                    && host.ends_with(name.as_str())
                    && host.as_bytes()[host.len() - name.len() - 1] == b'.')
        })
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        !self.all && self.names.is_empty() && self.nets.is_empty()
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The proxies of a client: one for `http`/`ws` targets, one for `https`/`wss` targets, and the
/// hosts that bypass both. [`Proxies::default`] is none at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    http: Option<ProxyUrl>,
    https: Option<ProxyUrl>,
    no_proxy: NoProxy,
}

impl Proxies {
    /// No proxy: every connection goes direct (the environment is not read).
    pub fn none() -> Self {
        Self::default()
    }

    /// Every connection through `url`.
    pub fn all(url: &str) -> Result<Self, ProxyError> {
        let proxy = ProxyUrl::parse(url, "the proxy setting")?;
        Ok(Self {
            http: Some(proxy.clone()),
            https: Some(proxy),
            no_proxy: NoProxy::default(),
        })
    }

    /// Reads the standard variables (see the [module docs](self)) through `var` (e.g.
    /// `|k| std::env::var(k).ok()`). A variable that is set but not a usable proxy URL is an
    /// error, never skipped: traffic must not silently bypass a proxy that was asked for.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ProxyError> {
        let get = |names: &[&'static str]| -> Option<(&'static str, String)> {
            names.iter().find_map(|name| {
                var(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (*name, v))
            })
        };
        let parse = |found: Option<(&'static str, String)>| {
            found.map(|(name, v)| ProxyUrl::parse(&v, name)).transpose()
        };
        let cgi = var("REQUEST_METHOD").is_some();
        let all = get(&["all_proxy", "ALL_PROXY"]);
        let http_names: &[&str] = if cgi {
            &["http_proxy"]
        } else {
            &["http_proxy", "HTTP_PROXY"]
        };
        let http = parse(get(http_names).or_else(|| all.clone()))?;
        let https = parse(get(&["https_proxy", "HTTPS_PROXY"]).or(all))?;
        let no_proxy = get(&["no_proxy", "NO_PROXY"])
            .map(|(_, v)| NoProxy::parse(&v))
            .unwrap_or_default();
        Ok(Self {
            http,
            https,
            no_proxy,
        })
    }

    /// Sets the proxy for `http://` and `ws://` targets.
    #[must_use]
    pub fn with_http(mut self, proxy: Option<ProxyUrl>) -> Self {
        self.http = proxy;
        self
    }

    /// Sets the proxy for `https://` and `wss://` targets.
    #[must_use]
    pub fn with_https(mut self, proxy: Option<ProxyUrl>) -> Self {
        self.https = proxy;
        self
    }

    /// Replaces the bypass list with `list` (`NO_PROXY` syntax).
    #[must_use]
    pub fn with_no_proxy(mut self, list: &str) -> Self {
        self.no_proxy = NoProxy::parse(list);
        self
    }

    /// The proxy a connection to `scheme://host` goes through, or `None` for a direct one.
    pub fn for_target(&self, scheme: &str, host: &str) -> Option<&ProxyUrl> {
        let proxy = if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
            self.https.as_ref()
        } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
            self.http.as_ref()
        } else {
            None
        }?;
        (!self.no_proxy.matches(host)).then_some(proxy)
    }

    /// [`Proxies::for_target`] for a URI (`None` for a relative one).
    pub fn for_uri(&self, uri: &http::Uri) -> Option<&ProxyUrl> {
        self.for_target(uri.scheme_str()?, uri.host()?)
    }

    /// Whether no proxy is set.
    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy for `http`/`ws` targets.
    pub fn http(&self) -> Option<&ProxyUrl> {
        self.http.as_ref()
    }

    /// The proxy for `https`/`wss` targets.
    pub fn https(&self) -> Option<&ProxyUrl> {
        self.https.as_ref()
    }

    /// The bypass list.
    pub fn no_proxy(&self) -> &NoProxy {
        &self.no_proxy
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests abort on failure
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn proxy_urls_parse_and_never_print_credentials() {
        let p = ProxyUrl::parse("http://al%40ice:s3cr%3At@proxy.corp:3128/", "X").unwrap();
        assert_eq!(p.host(), "proxy.corp");
        assert_eq!(p.port(), 3128);
        assert_eq!(p.credentials(), Some(("al@ice", "s3cr:t")));
        assert_eq!(p.to_string(), "http://proxy.corp:3128");
        let debug = format!("{p:?}");
        assert!(
            !debug.contains("s3cr") && !debug.contains("al@ice"),
            "{debug}"
        );
        // Scheme optional, port 80 by default, IPv6 in brackets.
        let p = ProxyUrl::parse("10.1.2.3", "X").unwrap();
        assert_eq!(
            (p.host(), p.port(), p.credentials()),
            ("10.1.2.3", 80, None)
        );
        let p = ProxyUrl::parse("http://[::1]:8080", "X").unwrap();
        assert_eq!((p.host(), p.port()), ("::1", 8080));
        assert_eq!(p.to_string(), "http://[::1]:8080");
        // A user name alone.
        let p = ProxyUrl::parse("http://tok@h:1", "X").unwrap();
        assert_eq!(p.credentials(), Some(("tok", "")));
    }

    #[test]
    fn bad_proxy_urls_are_typed_errors_that_quote_nothing() {
        for (url, scheme) in [
            ("socks5://u:SECRET@h:1080", "socks5"),
            ("https://u:SECRET@h:443", "https"),
        ] {
            let e = ProxyUrl::parse(url, "ALL_PROXY").unwrap_err();
            assert_eq!(
                e,
                ProxyError::UnsupportedScheme {
                    source_name: "ALL_PROXY".into(),
                    scheme: scheme.into()
                }
            );
            assert!(!e.to_string().contains("SECRET"));
        }
        for url in [
            "http://u:SECRET@",
            "http://u:SECRET@h:99999",
            "http://h:1/path?SECRET",
            "",
        ] {
            let e = ProxyUrl::parse(url, "HTTPS_PROXY").unwrap_err();
            assert_eq!(e, ProxyError::InvalidUrl("HTTPS_PROXY".into()), "{url}");
            assert!(!e.to_string().contains("SECRET"));
        }
    }

    #[test]
    fn the_environment_is_read_as_curl_and_reqwest_read_it() {
        let p = Proxies::from_env(env(&[])).unwrap();
        assert!(p.is_empty());
        // https targets: https_proxy, then ALL_PROXY; http targets: http_proxy, then ALL_PROXY.
        let p = Proxies::from_env(env(&[
            ("HTTPS_PROXY", "http://s:1"),
            ("ALL_PROXY", "http://a:1"),
        ]))
        .unwrap();
        assert_eq!(p.for_target("wss", "gw").unwrap().host(), "s");
        assert_eq!(p.for_target("https", "api").unwrap().host(), "s");
        assert_eq!(p.for_target("ws", "gw").unwrap().host(), "a");
        // The lower-case name wins; empty counts as unset.
        let p = Proxies::from_env(env(&[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:1"),
            ("http_proxy", ""),
            ("HTTP_PROXY", "http://h:1"),
        ]))
        .unwrap();
        assert_eq!(p.for_target("https", "x").unwrap().host(), "lower");
        assert_eq!(p.for_target("http", "x").unwrap().host(), "h");
        // Under CGI, HTTP_PROXY may come from a request header: ignored.
        let p = Proxies::from_env(env(&[
            ("HTTP_PROXY", "http://evil:1"),
            ("REQUEST_METHOD", "GET"),
        ]))
        .unwrap();
        assert!(p.for_target("http", "x").is_none());
        // A set but unusable variable is an error, not a silent bypass.
        assert!(matches!(
            Proxies::from_env(env(&[("ALL_PROXY", "socks5://h:1")])),
            Err(ProxyError::UnsupportedScheme { .. })
        ));
        // Other schemes never go through a proxy.
        let p = Proxies::all("http://p:1").unwrap();
        assert!(p.for_target("ftp", "x").is_none());
    }

    #[test]
    fn no_proxy_matches_names_subdomains_addresses_and_ranges() {
        let p = Proxies::from_env(env(&[
            ("ALL_PROXY", "http://p:3128"),
            (
                "NO_PROXY",
                " example.com, .corp.local,*.svc ,10.0.0.0/8, 192.168.1.7, ::1, [fe80::1], bad/xx",
            ),
        ]))
        .unwrap();
        for direct in [
            "example.com",
            "api.example.com",
            "EXAMPLE.COM.",
            "corp.local",
            "a.b.corp.local",
            "x.svc",
            "10.200.3.4",
            "192.168.1.7",
            "[::1]",
            "fe80::1",
        ] {
            assert!(
                p.for_target("https", direct).is_none(),
                "{direct} goes direct"
            );
        }
        for proxied in [
            "notexample.com",
            "example.com.evil",
            "192.168.1.8",
            "11.0.0.1",
            "127.0.0.1",
            "api.dingtalk.com",
        ] {
            assert!(
                p.for_target("https", proxied).is_some(),
                "{proxied} is proxied"
            );
        }
        let p = p.with_no_proxy("*");
        assert!(p.for_target("https", "api.dingtalk.com").is_none());
        assert!(NoProxy::parse(" , ").is_empty());
    }

    #[test]
    fn connect_request_carries_basic_credentials() {
        let p = ProxyUrl::parse("http://user:pass@p:3128", "X").unwrap();
        let h = p.connect("gw.dingtalk.com", 443);
        let text = String::from_utf8(h.request().to_vec()).unwrap();
        assert_eq!(
            text,
            "CONNECT gw.dingtalk.com:443 HTTP/1.1\r\nHost: gw.dingtalk.com:443\r\n\
             Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"
        );
        assert!(!format!("{h:?}").contains("dXNlcjpwYXNz"));
        let p = ProxyUrl::parse("p:3128", "X").unwrap();
        let text = String::from_utf8(p.connect("::1", 8080).request().to_vec()).unwrap();
        assert_eq!(
            text,
            "CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"
        );
    }

    fn feed(chunks: &[&[u8]]) -> Result<bool, ProxyError> {
        let p = ProxyUrl::parse("p:1", "X").unwrap();
        let mut h = p.connect("t", 443);
        let mut last = Ok(false);
        for chunk in chunks {
            let spare = h.spare();
            spare[..chunk.len()].copy_from_slice(chunk);
            last = h.received(chunk.len());
            if !matches!(last, Ok(false)) {
                return last;
            }
        }
        last
    }

    #[test]
    fn connect_answers_are_read_in_pieces_and_checked() {
        assert_eq!(
            feed(&[
                b"HTTP/1.1 200 Connection established\r\n",
                b"Via: x\r\n\r\n"
            ]),
            Ok(true)
        );
        assert_eq!(feed(&[b"HTTP/1.0 200 OK\r\n\r"]), Ok(false));
        assert_eq!(
            feed(&[b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"]),
            Err(ProxyError::AuthRequired)
        );
        assert_eq!(
            feed(&[b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"]),
            Err(ProxyError::Refused(403))
        );
        assert!(matches!(
            feed(&[b"HTTP/1.1 200 OK\r\n\r\nEXTRA"]),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            feed(&[b"SSH-2.0-OpenSSH\r\n\r\n"]),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            feed(&[b"HTTP/1.1 200 OK\r\n", b""]),
            Err(ProxyError::Malformed(_))
        ));
        // An endless header is cut off.
        let line = [b'a'; 1000];
        let mut chunks: Vec<&[u8]> = vec![b"HTTP/1.1 200 OK\r\nX: "];
        chunks.extend(std::iter::repeat_n(&line[..], 20));
        assert_eq!(feed(&chunks), Err(ProxyError::TooLarge));
    }
}
