//! The `consumers:` section in Kong's declarative shape: a consumer with its ACL groups,
//! its credentials per auth kind, and its own plugins.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{lenient_vec, ConfigNode, PluginConfig};

/// A secret value from the configuration (an API key, a password, an HMAC secret).
///
/// It never shows in `Debug` output, logs or error messages: `Debug` prints
/// `Secret(<redacted>)` and there is no `Display`. It serializes as written so a
/// configuration can be copied (the demo writes one), which is the only way to read it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The config deserializer reads any scalar as its text (`key: 12345` is the
        // string "12345"), so type errors, which would quote the value, do not arise.
        String::deserialize(deserializer).map(Secret)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A secret; never shown in logs or errors."
        })
    }
}

/// A consumer: an identity that authentication plugins map credentials to.
///
/// Fields other than these are credentials of kinds that plugins registered; the
/// gateway checks them against its registry when it builds the configuration, and
/// refuses any other field there.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct ConsumerConfig {
    /// Stable identifier, sent upstream as `X-Consumer-ID`. Default: the username, or
    /// else the custom_id.
    #[serde(default)]
    pub id: Option<String>,
    /// Unique username, sent upstream as `X-Consumer-Username`.
    #[serde(default)]
    pub username: Option<String>,
    /// Unique identifier from another system, sent upstream as `X-Consumer-Custom-ID`.
    #[serde(default)]
    pub custom_id: Option<String>,
    /// ACL groups (for the `acl` plugin).
    #[serde(default)]
    pub groups: Vec<String>,
    /// ACL groups in Kong's declarative shape, `acls: [{group: admins}]`; merged with
    /// `groups`.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub acls: Vec<AclGroupConfig>,
    /// `key-auth` credentials.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub keyauth_credentials: Vec<KeyAuthCredentialConfig>,
    /// `basic-auth` credentials.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub basicauth_credentials: Vec<BasicAuthCredentialConfig>,
    /// `jwt` credentials.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub jwt_secrets: Vec<JwtSecretConfig>,
    /// Plugins that apply to this consumer's requests once it is authenticated. One
    /// replaces the route's or the global plugin of the same name.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub plugins: Vec<PluginConfig>,
    /// Free-form labels (accepted for Kong compatibility, not used).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Credentials of the kinds plugins registered, by consumer field
    /// (`hmacauth_credentials: [...]`), as written.
    #[serde(flatten)]
    #[schemars(skip)]
    pub registered_credentials: BTreeMap<String, ConfigNode>,
}

impl ConsumerConfig {
    /// The consumer's identifier: `id`, else `username`, else `custom_id`.
    pub fn effective_id(&self) -> Option<&str> {
        self.id
            .as_deref()
            .or(self.username.as_deref())
            .or(self.custom_id.as_deref())
    }
}

/// An ACL group membership in Kong's shape.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AclGroupConfig {
    /// The group's name.
    pub group: String,
    /// Kong's credential id (accepted, not used).
    #[serde(default)]
    pub id: Option<String>,
    /// Free-form labels (accepted, not used).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A `key-auth` credential.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyAuthCredentialConfig {
    /// The API key clients present. Unique across all consumers.
    pub key: Secret,
    /// Identifier sent upstream as `X-Credential-Identifier` and used by
    /// `rate-limiting` with `limit_by: credential`. Default: `<consumer id>-key-<n>`
    /// (the key itself is never used, as it is a secret).
    #[serde(default)]
    pub id: Option<String>,
    /// Free-form labels (accepted, not used).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A `basic-auth` credential.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthCredentialConfig {
    /// The user name clients present. Unique across all consumers; sent upstream as
    /// `X-Credential-Identifier` (as Kong does).
    pub username: String,
    /// The password in plain text, or a stored hash recognised by its prefix: bcrypt
    /// (`$2a$`, `$2b$`, `$2y$`) or argon2 (`$argon2id$`, `$argon2i$`, `$argon2d$`).
    pub password: Secret,
    /// Kong's credential id (accepted; the header carries the username, as in Kong).
    #[serde(default)]
    pub id: Option<String>,
    /// Free-form labels (accepted, not used).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A `jwt` credential.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtSecretConfig {
    /// The value tokens carry in the plugin's `key_claim_name` claim (`iss` by default).
    /// Unique across all consumers; sent upstream as `X-Credential-Identifier`.
    pub key: String,
    /// The algorithm tokens must be signed with; a token with any other `alg` is
    /// refused.
    #[serde(default)]
    pub algorithm: JwtAlgorithm,
    /// The HMAC secret, for HS256/HS384/HS512.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The public key in PEM (`-----BEGIN PUBLIC KEY-----`, or `BEGIN RSA PUBLIC KEY`
    /// for RSA), for RS*, PS*, ES* and EdDSA.
    #[serde(default)]
    pub rsa_public_key: Option<String>,
    /// Kong's credential id (accepted; the header carries the key, as in Kong).
    #[serde(default)]
    pub id: Option<String>,
    /// Free-form labels (accepted, not used).
    #[serde(default)]
    pub tags: Vec<String>,
}

/// JWT signature algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize, JsonSchema)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256.
    #[default]
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// Ed25519.
    EdDSA,
}

impl JwtAlgorithm {
    /// The name used in a token's `alg` header.
    pub fn as_str(self) -> &'static str {
        use JwtAlgorithm::*;
        match self {
            HS256 => "HS256",
            HS384 => "HS384",
            HS512 => "HS512",
            RS256 => "RS256",
            RS384 => "RS384",
            RS512 => "RS512",
            ES256 => "ES256",
            ES384 => "ES384",
            PS256 => "PS256",
            PS384 => "PS384",
            PS512 => "PS512",
            EdDSA => "EdDSA",
        }
    }

    /// The algorithm named `alg`, if supported.
    pub fn from_name(alg: &str) -> Option<JwtAlgorithm> {
        use JwtAlgorithm::*;
        Some(match alg {
            "HS256" => HS256,
            "HS384" => HS384,
            "HS512" => HS512,
            "RS256" => RS256,
            "RS384" => RS384,
            "RS512" => RS512,
            "ES256" => ES256,
            "ES384" => ES384,
            "PS256" => PS256,
            "PS384" => PS384,
            "PS512" => PS512,
            "EdDSA" => EdDSA,
            _ => return None,
        })
    }

    /// Whether this is an HMAC algorithm (verified with a shared secret).
    pub fn is_hmac(self) -> bool {
        matches!(
            self,
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = KeyAuthCredentialConfig {
            key: Secret::new("s3cr3t-key"),
            id: None,
            tags: vec![],
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
