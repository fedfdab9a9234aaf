use super::*;
use crate::plugin_host::UpstreamHead;
use proptest::prelude::*;

fn policy() -> HeadPolicy {
    HeadPolicy::new(EscapedSlashes::Reject, 32 * 1024, 100, "x-request-id")
}

fn request(method: &str, target: &[u8], headers: &[(&str, &str)]) -> RequestHeader {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = RequestHeader::build(method, b"/", None).unwrap();
    req.set_raw_path(target).unwrap();
    for (name, value) in headers {
        req.append_header(name.to_string(), *value).unwrap();
    }
    req
}

#[test]
fn targets_without_a_leading_slash_are_refused() {
    for target in [
        &b"admin"[..],
        b"admin/secret",
        b"../admin",
        b"x/../admin",
        b"?q=1",
        b"%2Fadmin",
        b"*",
        b"ftp://host/admin",
        b"http:/admin",
        b"http://",
        b"http:///admin",
        b"http://user@host/admin",
        b"javascript:alert(1)",
    ] {
        assert_eq!(
            classify_target(&Method::GET, target),
            Err(INVALID_TARGET),
            "{:?}",
            String::from_utf8_lossy(target)
        );
    }
}

#[test]
fn the_forms_rfc_9112_allows_are_accepted() {
    assert_eq!(classify_target(&Method::GET, b"/"), Ok(TargetForm::Origin));
    assert_eq!(
        classify_target(&Method::GET, b"/a/b?x=1"),
        Ok(TargetForm::Origin)
    );
    assert_eq!(
        classify_target(&Method::OPTIONS, b"*"),
        Ok(TargetForm::Asterisk)
    );
    assert_eq!(
        classify_target(&Method::GET, b"HTTP://example.com:8080/a?b"),
        Ok(TargetForm::Absolute {
            authority: b"example.com:8080",
            path_and_query: b"/a?b",
        })
    );
    assert_eq!(
        classify_target(&Method::GET, b"https://[::1]"),
        Ok(TargetForm::Absolute {
            authority: b"[::1]",
            path_and_query: b"",
        })
    );
}

#[test]
fn absolute_form_becomes_origin_form_with_its_authority_as_host() {
    let mut req = request(
        "GET",
        b"http://api.example.com/admin?x=1",
        &[("Host", "other.example.com")],
    );
    check(&mut req, &policy()).unwrap();
    assert_eq!(req.raw_path(), b"/admin?x=1");
    assert_eq!(req.uri.path(), "/admin");
    assert_eq!(req.headers.get("host").unwrap(), "api.example.com");

    let mut req = request("GET", b"http://h.example?x=1", &[("Host", "h.example")]);
    check(&mut req, &policy()).unwrap();
    assert_eq!(req.raw_path(), b"/?x=1");
}

#[test]
fn an_http2_request_gets_its_authority_as_host() {
    let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
    req.set_version(http::Version::HTTP_2);
    req.set_uri("https://api.example.com:8443/x?y=1".parse().unwrap());
    check(&mut req, &policy()).unwrap();
    assert_eq!(req.headers.get("host").unwrap(), "api.example.com:8443");
    assert_eq!(req.uri.path(), "/x");

    // A Host it sent is kept; userinfo in the authority is refused as in Host.
    let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
    req.set_version(http::Version::HTTP_2);
    req.set_uri("https://api.example.com/x".parse().unwrap());
    req.insert_header("host", "own.example").unwrap();
    check(&mut req, &policy()).unwrap();
    assert_eq!(req.headers.get("host").unwrap(), "own.example");

    let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
    req.set_version(http::Version::HTTP_2);
    req.set_uri("https://user@api.example.com/x".parse().unwrap());
    assert_eq!(check(&mut req, &policy()), Err(INVALID_HOST));
}

#[test]
fn host_is_required_once_in_http_1_1() {
    let mut req = request("GET", b"/", &[]);
    assert_eq!(check(&mut req, &policy()), Err(BAD_HOST));

    let mut req = request("GET", b"/", &[("Host", "a"), ("Host", "b")]);
    assert_eq!(check(&mut req, &policy()), Err(BAD_HOST));

    let mut req = request("GET", b"/", &[("Host", "a b")]);
    assert_eq!(check(&mut req, &policy()), Err(INVALID_HOST));
    let mut req = request("GET", b"/", &[("Host", "evil.com/admin")]);
    assert_eq!(check(&mut req, &policy()), Err(INVALID_HOST));

    let mut req = request("GET", b"/", &[]);
    req.set_version(Version::HTTP_10);
    assert_eq!(check(&mut req, &policy()), Ok(()));

    let mut req = request("GET", b"/", &[("Host", "")]);
    assert_eq!(check(&mut req, &policy()), Ok(()));
    let mut req = request("GET", b"/", &[("Host", "[::1]:8080")]);
    assert_eq!(check(&mut req, &policy()), Ok(()));
}

#[test]
fn connection_nominations_are_removed_and_protected_ones_refused() {
    let mut req = request(
        "GET",
        b"/",
        &[
            ("Host", "h"),
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("X-Secret-Hop", "1"),
            ("X-Kept", "2"),
        ],
    );
    check(&mut req, &policy()).unwrap();
    assert!(req.headers.get("x-secret-hop").is_none());
    assert_eq!(req.headers.get("x-kept").unwrap(), "2");
    assert_eq!(req.headers.get("connection").unwrap(), "keep-alive");

    for nominated in [
        "close, X-Anonymous-Consumer",
        "X-Consumer-Username",
        "x-consumer-id",
        "X-Credential-Identifier",
        "X-Consumer-Groups",
        "X-Forwarded-For",
        "X-Real-IP",
        "X-Request-Id",
        "Content-Length",
    ] {
        let mut req = request("GET", b"/", &[("Host", "h"), ("Connection", nominated)]);
        assert_eq!(
            check(&mut req, &policy()),
            Err(PROTECTED_NOMINATION),
            "{nominated}"
        );
    }

    let mut req = request("GET", b"/", &[("Host", "h"), ("Connection", "close")]);
    check(&mut req, &policy()).unwrap();
    assert_eq!(req.headers.get("connection").unwrap(), "close");
}

#[test]
fn heads_over_the_limits_get_431() {
    let policy = HeadPolicy::new(EscapedSlashes::Reject, 1024, 10, "x-request-id");
    let big = "v".repeat(1100);
    let mut req = request("GET", b"/", &[("Host", "h"), ("X-Big", &big)]);
    assert_eq!(check(&mut req, &policy), Err(HEAD_TOO_LARGE));

    let many: Vec<(String, &str)> = (0..11).map(|i| (format!("x-h{i}"), "v")).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let mut req = request("GET", b"/", &many);
    assert_eq!(check(&mut req, &policy), Err(HEAD_TOO_LARGE));

    let mut req = request("GET", b"/", &[("Host", "h"), ("X-Small", "v")]);
    assert_eq!(check(&mut req, &policy), Ok(()));
}

#[test]
fn escaped_slashes_follow_the_policy() {
    for path in [
        "/admin%2fsecret",
        "/%2Fadmin",
        "/admin%2F",
        "/a%5Cb",
        "/a%5cb",
    ] {
        assert_eq!(
            escaped_slashes(path, EscapedSlashes::Reject),
            Err(ESCAPED_SLASH),
            "{path}"
        );
        assert_eq!(
            escaped_slashes(path, EscapedSlashes::Keep),
            Ok(SlashOutcome::Unchanged)
        );
    }
    assert_eq!(
        escaped_slashes("/admin%2fsecret", EscapedSlashes::Unescape),
        Ok(SlashOutcome::Unescaped("/admin/secret".into()))
    );
    assert_eq!(
        escaped_slashes("/a%5Cb%2F", EscapedSlashes::Unescape),
        Ok(SlashOutcome::Unescaped("/a\\b/".into()))
    );
    for path in ["/a%2", "/a%25", "/a%252F", "/plain"] {
        assert_eq!(
            escaped_slashes(path, EscapedSlashes::Reject),
            Ok(SlashOutcome::Unchanged),
            "{path}"
        );
    }
}

#[test]
fn repeated_content_length_is_sent_once() {
    let mut req = request(
        "POST",
        b"/",
        &[("Content-Length", "5"), ("Content-Length", "5")],
    );
    single_content_length(&mut UpstreamHead::Cased(&mut req));
    let values: Vec<_> = req.headers.get_all("content-length").iter().collect();
    assert_eq!(values, ["5"]);

    let mut req = request("POST", b"/", &[("Content-Length", "7, 7")]);
    single_content_length(&mut UpstreamHead::Cased(&mut req));
    assert_eq!(req.headers.get("content-length").unwrap(), "7");
}

/// RFC 9112 §3.2 and RFC 3986 §3, written as regular expressions over the ABNF, as the
/// reference the classifier is checked against.
fn rfc_9112_accepts(method: &Method, target: &str) -> bool {
    const PCHAR: &str = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})";
    let query = format!(r"(?:{PCHAR}|[/?])*");
    let origin = format!(r"^/(?:{PCHAR}|/)*(?:\?{query})?$");
    let authority =
        r"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)(?::[0-9]*)?";
    let absolute = format!(r"^(?i:https?)://{authority}(?:/(?:{PCHAR}|/)*)?(?:\?{query})?$");
    let origin = regex::Regex::new(&origin).unwrap();
    let absolute = regex::Regex::new(&absolute).unwrap();
    origin.is_match(target)
        || absolute.is_match(target)
        || (target == "*" && method == Method::OPTIONS)
}

/// Targets built from the pieces an attacker would combine: schemes, authorities (good
/// and bad) and path pieces made of characters RFC 3986 allows in a path.
fn target_strategy() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just(""),
        Just(""),
        Just("http://"),
        Just("HTTPS://"),
        Just("ftp://"),
        Just("http:/"),
        Just("*"),
    ];
    let authority = prop_oneof![
        Just(""),
        Just("example.com"),
        Just("h:8080"),
        Just("[::1]"),
        Just("[::1]:80"),
        Just("user@h"),
        Just("a%41b"),
        Just("[]"),
    ];
    let piece = prop_oneof![
        Just("/"),
        Just("//"),
        Just(".."),
        Just("."),
        Just("?"),
        Just("*"),
        Just(":"),
        Just("@"),
        Just("admin"),
        Just("%2F"),
        Just("%41"),
        Just("a=1&b"),
    ];
    (scheme, authority, prop::collection::vec(piece, 0..6)).prop_map(|(s, a, p)| {
        let authority = if s.is_empty() || s == "*" { "" } else { a };
        format!("{s}{authority}{}", p.concat())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_target_check_agrees_with_rfc_9112(
        target in target_strategy(),
        options in any::<bool>(),
    ) {
        let method = if options { Method::OPTIONS } else { Method::GET };
        let ours = classify_target(&method, target.as_bytes()).is_ok();
        prop_assert_eq!(ours, rfc_9112_accepts(&method, &target), "target {:?}", target);
    }

    #[test]
    fn classifying_arbitrary_bytes_never_panics(raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = classify_target(&Method::GET, &raw);
        let _ = escaped_slashes(&String::from_utf8_lossy(&raw), EscapedSlashes::Unescape);
    }

    #[test]
    fn reject_refuses_exactly_what_unescape_would_change(
        path in prop::collection::vec(prop_oneof![
            Just("/"), Just("%2F"), Just("%2f"), Just("%5C"), Just("%5c"), Just("%"), Just("2F"),
            Just("%25"), Just("a"),
        ], 0..10),
    ) {
        let path = format!("/{}", path.concat());
        let rejected = escaped_slashes(&path, EscapedSlashes::Reject).is_err();
        let unescaped = escaped_slashes(&path, EscapedSlashes::Unescape).unwrap();
        prop_assert_eq!(rejected, matches!(unescaped, SlashOutcome::Unescaped(_)));
        if let SlashOutcome::Unescaped(p) = unescaped {
            // Each escape became one byte, and decoding once more finds nothing new.
            prop_assert_eq!((path.len() - p.len()) % 2, 0);
            prop_assert!(escaped_slashes(&p, EscapedSlashes::Reject).is_ok());
        }
    }
}
