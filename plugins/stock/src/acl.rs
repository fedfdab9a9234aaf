//! `acl`: allow or deny authenticated consumers by group, as Kong does.
//!
//! - Exactly one of `allow` and `deny` lists groups.
//! - It needs a consumer, so it runs after the auth plugins (priority 950). Without
//!   one: 401 `{"message":"Unauthorized"}`.
//! - A consumer in a denied group, or in none of the allowed groups: 403
//!   `{"message":"You cannot consume this service"}` (a consumer without any group on an
//!   `allow` list: 403 when it authenticated with a credential, 401 when it is the
//!   anonymous consumer, as in Kong).
//! - Allowed requests carry the consumer's groups upstream in `X-Consumer-Groups`
//!   (`a, b`; empty for a consumer without groups, as Kong sends it), unless
//!   `hide_groups_header`.
//!
//! - Kong's "authenticated groups" (set by `mtls-auth` with `skip_consumer_lookup`: the
//!   certificate's CN or DN) are judged instead of a consumer's groups when there is no
//!   consumer, or only the anonymous one, or always with
//!   `always_use_authenticated_groups`.

use std::collections::HashSet;

use http::{HeaderValue, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;

use super::auth::CONSUMER_GROUPS;
use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::{Flow, Plugin, Request, Response};

/// Kong's `acl` configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// Groups allowed; everyone else is refused.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Groups refused; everyone else is allowed.
    #[serde(default)]
    pub deny: Option<Vec<String>>,
    /// Do not send `X-Consumer-Groups` upstream.
    #[serde(default)]
    pub hide_groups_header: bool,
    /// Judge the authenticated groups (see the module docs) even when a consumer
    /// authenticated with a credential.
    #[serde(default)]
    pub always_use_authenticated_groups: bool,
}

/// The `acl` plugin.
#[derive(Debug)]
pub struct Acl {
    groups: HashSet<String>,
    deny: bool,
    hide_groups_header: bool,
    always_use_authenticated_groups: bool,
}

const DENIED: &str = "You cannot consume this service";

#[async_trait::async_trait]
impl Plugin for Acl {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let authenticated = req.ctx().credential().is_some();
        let vouched = req.ctx().authenticated_groups().map(<[_]>::to_vec);
        let Some(consumer) = req.ctx().consumer().cloned() else {
            return match vouched {
                Some(groups) => self.judge_authenticated(req, &groups),
                None if authenticated => {
                    Flow::Respond(Response::error(StatusCode::FORBIDDEN, DENIED))
                }
                None => Flow::Respond(Response::error(StatusCode::UNAUTHORIZED, "Unauthorized")),
            };
        };
        if let Some(groups) =
            vouched.filter(|_| !authenticated || self.always_use_authenticated_groups)
        {
            return self.judge_authenticated(req, &groups);
        }
        if consumer.groups.is_empty() && !self.deny {
            let status = if authenticated {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            };
            let message = if authenticated {
                DENIED
            } else {
                "Unauthorized"
            };
            return Flow::Respond(Response::error(status, message));
        }
        let in_group = consumer.groups.iter().any(|g| self.groups.contains(&**g));
        let blocked = if self.deny { in_group } else { !in_group };
        if blocked {
            return Flow::Respond(Response::error(StatusCode::FORBIDDEN, DENIED));
        }
        req.remove_header(&CONSUMER_GROUPS);
        if !self.hide_groups_header {
            // Kong sends `table.concat(groups, ", ")`: an empty value, not no header,
            // for a consumer without groups (only possible on a `deny` list).
            let value = consumer
                .headers()
                .groups
                .clone()
                .unwrap_or_else(|| HeaderValue::from_static(""));
            req.insert_header(CONSUMER_GROUPS, value);
        }
        Flow::Continue
    }
}

impl Acl {
    /// Kong's verdict on authenticated groups: blocked → 403; allowed → the groups go
    /// upstream in `X-Consumer-Groups`.
    fn judge_authenticated(&self, req: &mut Request<'_>, groups: &[std::sync::Arc<str>]) -> Flow {
        let in_group = groups.iter().any(|g| self.groups.contains(&**g));
        if in_group == self.deny {
            return Flow::Respond(Response::error(StatusCode::FORBIDDEN, DENIED));
        }
        req.remove_header(&CONSUMER_GROUPS);
        if !self.hide_groups_header {
            let joined = groups.iter().map(|g| &**g).collect::<Vec<_>>().join(", ");
            if let Ok(value) = HeaderValue::try_from(joined) {
                req.insert_header(CONSUMER_GROUPS, value);
            }
        }
        Flow::Continue
    }
}

impl BuildPlugin for Acl {
    const NAME: &'static str = "acl";
    const PRIORITY: i32 = 950;
    type Config = AclConfig;

    fn build(config: AclConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let allow = config.allow.filter(|a| !a.is_empty());
        let deny = config.deny.filter(|d| !d.is_empty());
        let (groups, is_deny) = match (allow, deny) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "",
                    "only one of these fields must be non-empty: 'allow', 'deny'",
                ))
            }
            (None, None) => {
                return Err(ConfigError::new(
                    "",
                    "at least one of these fields must be non-empty: 'allow', 'deny'",
                ))
            }
            (Some(a), None) => (a, false),
            (None, Some(d)) => (d, true),
        };
        Ok(Acl {
            groups: groups.into_iter().collect(),
            deny: is_deny,
            hide_groups_header: config.hide_groups_header,
            always_use_authenticated_groups: config.always_use_authenticated_groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PluginScope;

    fn build(allow: Option<&[&str]>, deny: Option<&[&str]>) -> Result<Acl, ConfigError> {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Acl::build(
            AclConfig {
                allow: allow.map(v),
                deny: deny.map(v),
                hide_groups_header: false,
                always_use_authenticated_groups: false,
            },
            &BuildContext::new(PluginScope::Global),
        )
    }

    #[test]
    fn exactly_one_list() {
        assert!(build(Some(&["a"]), None).is_ok());
        assert!(build(None, Some(&["a"])).is_ok());
        assert!(build(Some(&["a"]), Some(&["b"])).is_err());
        assert!(build(None, None).is_err());
        assert!(build(Some(&[]), None).is_err());
    }
}
