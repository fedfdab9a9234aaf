//! Parsing a JWT the way Kong's `jwt_parser.lua` does, so that bad tokens get Kong's
//! messages ("Bad token; invalid JSON", "... invalid alg", ...).

use serde_json::{Map, Value};

use crate::consumers::{decode_base64_lenient, JwtAlgorithm};

/// A decoded (not yet verified) token.
#[derive(Debug)]
pub struct Token<'a> {
    /// `header.claims`, the signed text.
    pub signing_input: &'a str,
    /// The JOSE header.
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: Map<String, Value>,
    /// The algorithm named by `alg`; `None` for ES512, which Kong knows (so such a
    /// token is "Invalid algorithm" for any credential here, not a bad token) but `ring`
    /// cannot verify, so no credential can use it.
    pub alg: Option<JwtAlgorithm>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Why a token could not be decoded: the text after "Bad token; ".
pub type DecodeError = &'static str;

fn json_object(part: &str) -> Result<Value, DecodeError> {
    let bytes = decode_base64_lenient(part).ok_or("invalid JSON")?;
    serde_json::from_slice(&bytes).map_err(|_| "invalid JSON")
}

/// Decodes `token`: three base64url parts, the first two JSON.
pub fn decode(token: &str) -> Result<Token<'_>, DecodeError> {
    let mut parts = token.splitn(3, '.');
    let (Some(h64), Some(c64), Some(s64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("invalid JSON");
    };
    let header = json_object(h64)?;
    let claims = json_object(c64)?;
    let signature = decode_base64_lenient(s64);
    let Value::Object(header) = header else {
        return Err("invalid alg");
    };
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("ES512") => None,
        Some(name) => Some(JwtAlgorithm::from_name(name).ok_or("invalid alg")?),
        None => return Err("invalid alg"),
    };
    let Value::Object(claims) = claims else {
        return Err("invalid claims");
    };
    let signature = signature.ok_or("invalid signature")?;
    Ok(Token {
        signing_input: &token[..h64.len() + 1 + c64.len()],
        header,
        claims,
        alg,
        signature,
    })
}

/// Checks the registered claims named in `claims_to_verify` (`exp`, `nbf`) at `now`,
/// returning Kong's error map (such as `{"exp":"token expired"}`) when any fails.
pub fn verify_claims(
    claims: &Map<String, Value>,
    claims_to_verify: &[Claim],
    now: f64,
) -> Option<Map<String, Value>> {
    let mut errors = Map::new();
    for claim in claims_to_verify {
        let name = claim.name();
        let message = match claims.get(name).and_then(Value::as_f64) {
            None => "must be a number",
            Some(v) => match claim {
                Claim::Exp if v <= now => "token expired",
                Claim::Nbf if v > now => "token not valid yet",
                _ => continue,
            },
        };
        errors.insert(name.to_string(), Value::String(message.to_string()));
    }
    (!errors.is_empty()).then_some(errors)
}

/// Kong's `maximum_expiration` check: `exp` must exist and be at most `max` seconds
/// away.
pub fn check_maximum_expiration(
    claims: &Map<String, Value>,
    max: f64,
    now: f64,
) -> Option<Map<String, Value>> {
    if max <= 0.0 {
        return None;
    }
    match claims.get("exp").and_then(Value::as_f64) {
        Some(exp) if exp - now <= max => None,
        _ => {
            let mut m = Map::new();
            m.insert(
                "exp".into(),
                Value::String("exceeds maximum allowed expiration".into()),
            );
            Some(m)
        }
    }
}

/// A registered claim the plugin can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Claim {
    /// Expiration time: the token is refused at or after it.
    Exp,
    /// Not-before time: the token is refused before it.
    Nbf,
}

impl Claim {
    fn name(self) -> &'static str {
        match self {
            Claim::Exp => "exp",
            Claim::Nbf => "nbf",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn decode_errors_match_kong() {
        let h = b64(r#"{"alg":"HS256","typ":"JWT"}"#);
        let c = b64(r#"{"iss":"k"}"#);
        assert!(decode(&format!("{h}.{c}.c2ln")).is_ok());
        assert_eq!(decode("abc").unwrap_err(), "invalid JSON");
        assert_eq!(decode(&format!("{h}.!!.x")).unwrap_err(), "invalid JSON");
        let none = b64(r#"{"alg":"none"}"#);
        assert_eq!(decode(&format!("{none}.{c}.")).unwrap_err(), "invalid alg");
        let lower = b64(r#"{"alg":"hs256"}"#);
        assert_eq!(decode(&format!("{lower}.{c}.")).unwrap_err(), "invalid alg");
        let number = b64(r#"{"alg":256}"#);
        assert_eq!(
            decode(&format!("{number}.{c}.")).unwrap_err(),
            "invalid alg"
        );
        let es512 = b64(r#"{"alg":"ES512"}"#);
        assert_eq!(decode(&format!("{es512}.{c}.")).unwrap().alg, None);
        // Two segments: Kong's parser fails on the missing one ("invalid JSON").
        assert_eq!(decode(&format!("{h}.{c}")).unwrap_err(), "invalid JSON");
        assert_eq!(
            decode(&format!("{h}.{}.x", b64("[1]"))).unwrap_err(),
            "invalid claims"
        );
        assert_eq!(
            decode(&format!("{h}.{c}.!!")).unwrap_err(),
            "invalid signature"
        );
    }

    #[test]
    fn claims_and_maximum_expiration() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"exp": 100, "nbf": 200, "x": 1}"#).unwrap();
        let errs = verify_claims(&claims, &[Claim::Exp, Claim::Nbf], 150.0).unwrap();
        assert_eq!(
            Value::Object(errs),
            serde_json::json!({"exp": "token expired", "nbf": "token not valid yet"})
        );
        assert!(verify_claims(&claims, &[], 150.0).is_none());
        let bad: Map<String, Value> = serde_json::from_str(r#"{"exp": "soon"}"#).unwrap();
        assert_eq!(
            Value::Object(verify_claims(&bad, &[Claim::Exp], 0.0).unwrap()),
            serde_json::json!({"exp": "must be a number"})
        );
        assert!(check_maximum_expiration(&claims, 0.0, 0.0).is_none());
        assert!(check_maximum_expiration(&claims, 60.0, 50.0).is_none());
        assert!(check_maximum_expiration(&claims, 10.0, 50.0).is_some());
    }
}
