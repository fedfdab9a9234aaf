//! `bot-detection`: refuse requests whose `User-Agent` looks like a bot, as Kong's
//! plugin does.
//!
//! - `allow` regexes win: a matching agent passes;
//! - then `deny` regexes, then the built-in rules: a match is a `403` `Forbidden`;
//! - several `User-Agent` headers are a `400` `Only one User-Agent header allowed`;
//! - a request without `User-Agent` passes.
//!
//! Regexes are searched (not anchored), as Kong's `ngx.re.find` does. The built-in rules
//! are Pingway's own short list in the spirit of Kong's (which comes from uap-core):
//! generic words (`bot`, `spider`, `crawl`, `scrape`, `archiver`, `indexer`) and a few
//! well-known fetchers; they are not the same list.

use http::header::USER_AGENT;
use http::StatusCode;
use regex::{RegexBuilder, RegexSet, RegexSetBuilder};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::registry::{BuildContext, BuildPlugin, ConfigError};
use crate::transform::Problems;
use crate::{Flow, Plugin, Request, Response};

/// The largest compiled size of one `allow` or `deny` regex; a larger one is refused.
pub const MAX_RULE_SIZE: usize = 256 * 1024;

/// Pingway's built-in rules (case-insensitive searches).
const BUILT_IN: &[&str] = &[
    // `bot` as a word part, except the phone brand CUBOT.
    r"(?:^|[^u])bot",
    r"spider|crawl|scrap(?:e|er|y)|archiver|indexer",
    r"facebookexternalhit|pingdom|slurp|mediapartners-google",
    r"python-urllib|apache-httpclient|google-http-java-client|winhttp|httpmonitor",
];

/// Kong's `bot-detection` configuration.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BotDetectionConfig {
    /// `User-Agent` regexes that always pass (checked first).
    #[serde(default)]
    pub allow: Vec<String>,
    /// `User-Agent` regexes that are refused.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// The `bot-detection` plugin.
#[derive(Debug)]
pub struct BotDetection {
    allow: Option<RegexSet>,
    deny: Option<RegexSet>,
    built_in: RegexSet,
}

/// What a `User-Agent` matched.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Denied,
    Bot,
    Unknown,
}

impl BotDetection {
    fn examine(&self, agent: &str) -> Verdict {
        let agent = agent.trim();
        if self.allow.as_ref().is_some_and(|s| s.is_match(agent)) {
            Verdict::Allowed
        } else if self.deny.as_ref().is_some_and(|s| s.is_match(agent)) {
            Verdict::Denied
        } else if self.built_in.is_match(agent) {
            Verdict::Bot
        } else {
            Verdict::Unknown
        }
    }
}

#[async_trait::async_trait]
impl Plugin for BotDetection {
    async fn on_request(&self, req: &mut Request<'_>) -> Flow {
        let mut agents = req.headers().get_all(USER_AGENT).iter();
        let Some(agent) = agents.next() else {
            return Flow::Continue;
        };
        if agents.next().is_some() {
            return Flow::Respond(Response::error(
                StatusCode::BAD_REQUEST,
                "Only one User-Agent header allowed",
            ));
        }
        let agent = String::from_utf8_lossy(agent.as_bytes());
        match self.examine(&agent) {
            Verdict::Denied | Verdict::Bot => {
                Flow::Respond(Response::error(StatusCode::FORBIDDEN, "Forbidden"))
            }
            Verdict::Allowed | Verdict::Unknown => Flow::Continue,
        }
    }
}

fn set(rules: &[String], field: &str, problems: &mut Problems) -> Option<RegexSet> {
    if rules.is_empty() {
        return None;
    }
    // Each rule alone first, so a bad one is reported with its index.
    let mut ok = true;
    for (i, r) in rules.iter().enumerate() {
        if let Err(e) = RegexBuilder::new(r).size_limit(MAX_RULE_SIZE).build() {
            let why = e.to_string();
            let why = why.lines().last().unwrap_or_default().trim().to_string();
            problems.add(format!("{field}[{i}]"), format!("invalid regex: {why}"));
            ok = false;
        }
    }
    if !ok {
        return None;
    }
    RegexSetBuilder::new(rules)
        .size_limit(MAX_RULE_SIZE.saturating_mul(rules.len()))
        .build()
        .map_err(|e| problems.add(field, format!("invalid regexes: {e}")))
        .ok()
}

impl BuildPlugin for BotDetection {
    const NAME: &'static str = "bot-detection";
    const PRIORITY: i32 = 2500;
    type Config = BotDetectionConfig;

    fn build(c: BotDetectionConfig, _cx: &BuildContext<'_>) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
        let allow = set(&c.allow, "allow", &mut problems);
        let deny = set(&c.deny, "deny", &mut problems);
        let built_in = RegexSetBuilder::new(BUILT_IN)
            .case_insensitive(true)
            .build()
            .map_err(|e| ConfigError::new("", format!("built-in rules: {e}")))?;
        problems.into_result(BotDetection {
            allow,
            deny,
            built_in,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PluginScope;
    use crate::testkit::TestRequest;

    fn build(allow: &[&str], deny: &[&str]) -> Result<BotDetection, ConfigError> {
        BotDetection::build(
            BotDetectionConfig {
                allow: allow.iter().map(|s| s.to_string()).collect(),
                deny: deny.iter().map(|s| s.to_string()).collect(),
            },
            &BuildContext::new(PluginScope::Global),
        )
    }

    #[test]
    fn the_built_in_rules_catch_common_bots_not_browsers() {
        let p = build(&[], &[]).expect("valid");
        for bot in [
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "facebookexternalhit/1.1",
            "Twitterbot/1.0",
            "Mozilla/5.0 (compatible; YandexSpider/3.0)",
            "Scrapy/2.11 (+https://scrapy.org)",
            "Python-urllib/3.11",
            "ia_archiver",
        ] {
            assert_eq!(p.examine(bot), Verdict::Bot, "{bot}");
        }
        for human in [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 Mobile Safari/537.36",
            "curl/8.5.0",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Version/17.0 Mobile/15E148 Safari/604.1",
        ] {
            assert_eq!(p.examine(human), Verdict::Unknown, "{human}");
        }
    }

    #[test]
    fn allow_beats_deny_which_beats_the_built_in_rules() {
        let p = build(&["^Googlebot", "MyMonitor"], &["curl", "Googlebot"]).expect("valid");
        assert_eq!(p.examine("Googlebot/2.1"), Verdict::Allowed);
        assert_eq!(p.examine("curl/8.5.0"), Verdict::Denied);
        assert_eq!(p.examine("bingbot/2.0 MyMonitor"), Verdict::Allowed);
        assert_eq!(p.examine("bingbot/2.0"), Verdict::Bot);
    }

    #[tokio::test]
    async fn answers_403_400_or_lets_through() {
        let p = build(&[], &["curl"]).expect("valid");
        let r = TestRequest::get("/")
            .header("user-agent", "curl/8")
            .access(&p)
            .await
            .expect("refused");
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(matches!(&r.body, crate::Body::Message(m) if m == "Forbidden"));
        let r = TestRequest::get("/")
            .header("user-agent", "a")
            .header("user-agent", "b")
            .access(&p)
            .await
            .expect("refused");
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(TestRequest::get("/").access(&p).await.is_none());
        let mut browser = TestRequest::get("/").header("user-agent", "Mozilla/5.0 Firefox/120");
        assert!(browser.access(&p).await.is_none());
    }

    #[test]
    fn bad_regexes_are_named() {
        let e = build(&["ok", "(open"], &["[z-a]"]).unwrap_err();
        let fields: Vec<_> = e.problems().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, vec!["allow[1]", "deny[0]"]);
    }
}
