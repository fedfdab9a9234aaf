//! The live dashboard's static files (`GET /dashboard`), embedded in the binary. They
//! hold no data: the page's script polls `GET /stats` once a second, sending the admin
//! token it reads from the URL fragment (`/dashboard#token=...`; browsers never send a
//! fragment to the server, so the token is neither sent in the page request nor logged).

/// A static file of the dashboard.
pub(super) struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its contents.
    pub body: &'static str,
}

/// Headers sent with every dashboard file: the page loads only its own files and talks
/// only to the admin API it came from; it may not be framed; no referrer leaves it.
pub(super) const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// The file served at `path`, if it is one of the dashboard's.
pub(super) fn asset(path: &str) -> Option<Asset> {
    let (content_type, body) = match path {
        "/dashboard" | "/dashboard/" => (
            "text/html; charset=utf-8",
            include_str!("dashboard/index.html"),
        ),
        "/dashboard/app.js" => (
            "text/javascript; charset=utf-8",
            include_str!("dashboard/app.js"),
        ),
        "/dashboard/style.css" => (
            "text/css; charset=utf-8",
            include_str!("dashboard/style.css"),
        ),
        _ => return None,
    };
    Some(Asset { content_type, body })
}
