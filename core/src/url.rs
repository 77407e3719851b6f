//! Which URLs the SDK sends to: TLS only, plain `http://` (or `ws://`) only to a loopback host
//! (the emulator, a local forwarder). Error texts never quote the URL: a custom-robot or
//! session-webhook URL carries credentials in its query.

/// Whether `host` (as in a URI authority, IPv6 in brackets) is a loopback host.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Checks that `url` is absolute and secure: `https://` (or `wss://`), or `http://` (`ws://`)
/// to a loopback host. `what` names the URL in the error, which never quotes it.
pub fn check_secure(url: &str, what: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .trim()
        .parse()
        .map_err(|_| format!("the {what} is not a valid URL"))?;
    let Some(authority) = uri.authority() else {
        return Err(format!("the {what} is not an absolute URL"));
    };
    match uri.scheme_str() {
        Some("https" | "wss") => Ok(uri),
        Some("http" | "ws") if is_loopback_host(authority.host()) => Ok(uri),
        Some("http" | "ws") => Err(format!(
            "the {what} is plain http to a host that is not loopback: only https is allowed"
        )),
        _ => Err(format!("the {what} is not an http(s) URL")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests abort on failure
    use super::*;

    #[test]
    fn tls_everywhere_plain_http_only_to_loopback() {
        for ok in [
            "https://api.dingtalk.com",
            "https://oapi.dingtalk.com/robot/send?access_token=x",
            "http://127.0.0.1:8080",
            "http://localhost/x",
            "http://[::1]:9/x",
            "wss://gw.dingtalk.com/connect",
            "ws://127.0.0.1:1/connect",
        ] {
            assert!(check_secure(ok, "URL").is_ok(), "{ok}");
        }
        for bad in [
            "http://api.dingtalk.com",
            "http://10.0.0.1/x?access_token=SECRET",
            "ws://gw.example/connect",
            "ftp://127.0.0.1/",
            "/relative",
            "https//missing",
            "",
        ] {
            let e = check_secure(bad, "URL").unwrap_err();
            assert!(!e.contains("SECRET") && !e.contains("10.0.0.1"), "{e}");
        }
        assert!(!is_loopback_host("localhost.evil.com"));
        assert!(is_loopback_host("127.8.9.10"));
    }
}
