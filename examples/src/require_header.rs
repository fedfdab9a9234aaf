//! `require-header`: a synchronous header check.
//!
//! ```yaml
//! plugins:
//!   - name: require-header
//!     config: {header: X-Tenant, values: [acme, globex]}
//! ```
//!
//! - the header missing (or empty) → 400 `{"message": "X-Tenant is required"}`;
//! - given more than once → 400 `{"message": "X-Tenant must be given once"}` (which of
//!   two values would the upstream believe?);
//! - `values` non-empty and the value not on it → 403
//!   `{"message": "X-Tenant value is not allowed"}`.

use std::collections::HashSet;

use pingway::plugins::http::{HeaderName, StatusCode};
use pingway::plugins::{
    async_trait, BuildContext, BuildPlugin, ConfigError, Flow, Plugin, Request, Response,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// `require-header` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequireHeaderConfig {
    /// The header every request must carry (as written here in the messages).
    pub header: String,
    /// The values allowed; empty (the default) allows any value.
    #[serde(default)]
    pub values: Vec<String>,
}

/// The `require-header` plugin: the header name parsed and the messages written once, at
/// load.
#[derive(Debug)]
pub struct RequireHeader {
    header: HeaderName,
    allowed: HashSet<String>,
    missing: String,
    repeated: String,
    not_allowed: String,
}

#[async_trait]
impl Plugin for RequireHeader {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let mut values = req.headers().get_all(&self.header).iter();
        let (first, second) = (values.next(), values.next());
        let Some(first) = first.filter(|v| !v.as_bytes().trim_ascii().is_empty()) else {
            return Flow::Respond(Response::error(
                StatusCode::BAD_REQUEST,
                self.missing.clone(),
            ));
        };
        if second.is_some() {
            return Flow::Respond(Response::error(
                StatusCode::BAD_REQUEST,
                self.repeated.clone(),
            ));
        }
        if self.allowed.is_empty() {
            return Flow::Continue;
        }
        // A value that is not visible ASCII cannot be on the list.
        match first.to_str() {
            Ok(v) if self.allowed.contains(v.trim()) => Flow::Continue,
            _ => Flow::Respond(Response::error(
                StatusCode::FORBIDDEN,
                self.not_allowed.clone(),
            )),
        }
    }
}

impl BuildPlugin for RequireHeader {
    const NAME: &'static str = "require-header";
    /// After authentication and `ip-restriction` (990), before `rate-limiting` (910).
    const PRIORITY: i32 = 960;
    type Config = RequireHeaderConfig;

    fn build(config: RequireHeaderConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let header = HeaderName::from_bytes(config.header.as_bytes()).map_err(|_| {
            ConfigError::new(
                "header",
                format!("{:?} is not a valid header name", config.header),
            )
        })?;
        let mut allowed = HashSet::new();
        for (i, v) in config.values.iter().enumerate() {
            let v = v.trim();
            if v.is_empty() {
                return Err(ConfigError::new(
                    format!("values[{i}]"),
                    "an allowed value cannot be empty",
                ));
            }
            allowed.insert(v.to_string());
        }
        let shown = &config.header;
        Ok(RequireHeader {
            header,
            allowed,
            missing: format!("{shown} is required"),
            repeated: format!("{shown} must be given once"),
            not_allowed: format!("{shown} value is not allowed"),
        })
    }
}

#[cfg(test)]
mod tests {
    use pingway::plugins::testkit::TestRequest;
    use pingway::plugins::{Body, PluginScope};

    use super::*;

    fn plugin(values: &[&str]) -> RequireHeader {
        RequireHeader::build(
            RequireHeaderConfig {
                header: "X-Tenant".into(),
                values: values.iter().map(|s| s.to_string()).collect(),
            },
            &BuildContext::new(PluginScope::Global),
        )
        .unwrap()
    }

    fn message(r: &Response) -> &str {
        match &r.body {
            Body::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_missing_header_is_a_400() {
        let p = plugin(&[]);
        let answer = TestRequest::get("/").access(&p).await.unwrap();
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(message(&answer), "X-Tenant is required");
        let mut empty = TestRequest::get("/").header("x-tenant", " ");
        assert_eq!(
            empty.access(&p).await.unwrap().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn any_value_passes_without_an_allow_list() {
        let p = plugin(&[]);
        let mut req = TestRequest::get("/").header("x-tenant", "anyone");
        assert!(req.access(&p).await.is_none());
    }

    #[tokio::test]
    async fn the_allow_list_is_enforced() {
        let p = plugin(&["acme", "globex"]);
        let mut ok = TestRequest::get("/").header("X-Tenant", "acme");
        assert!(ok.access(&p).await.is_none());
        let answer = TestRequest::get("/")
            .header("x-tenant", "initech")
            .access(&p)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(message(&answer), "X-Tenant value is not allowed");
    }

    #[tokio::test]
    async fn a_repeated_header_is_refused() {
        let p = plugin(&["acme"]);
        let mut req = TestRequest::get("/")
            .header("x-tenant", "acme")
            .header("x-tenant", "globex");
        let answer = req.access(&p).await.unwrap();
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(message(&answer), "X-Tenant must be given once");
    }

    #[test]
    fn bad_configuration_names_the_field() {
        let cx = BuildContext::new(PluginScope::Global);
        let bad = RequireHeader::build(
            RequireHeaderConfig {
                header: "bad header".into(),
                values: vec![],
            },
            &cx,
        )
        .unwrap_err();
        assert_eq!(bad.problems()[0].0, "header");
        let empty = RequireHeader::build(
            RequireHeaderConfig {
                header: "x-tenant".into(),
                values: vec!["a".into(), "".into()],
            },
            &cx,
        )
        .unwrap_err();
        assert_eq!(empty.problems()[0].0, "values[1]");
    }
}
