//! JWT verification keys, parsed once at load: HMAC secrets and public keys in PEM.
//!
//! Verification uses `ring`, which covers every algorithm Kong's jwt plugin offers except
//! ES512. `ring` takes raw key material, so the PEM's SubjectPublicKeyInfo is unwrapped
//! here with a small DER reader (the structure is fixed and shallow).

use base64::Engine as _;
use ring::{hmac, signature};

use super::config::{JwtAlgorithm, Secret};

/// HMAC keys: the secret as written, and base64-decoded (for `secret_is_base64`) when
/// it decodes.
struct HmacKeys {
    raw: hmac::Key,
    decoded: Option<hmac::Key>,
}

/// What verifies one credential's tokens.
pub struct JwtVerifier {
    kind: Kind,
}

enum Kind {
    Hmac(Box<HmacKeys>),
    Public(signature::UnparsedPublicKey<Vec<u8>>),
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Hmac(_) => f.write_str("JwtVerifier(hmac, <redacted>)"),
            Kind::Public(_) => f.write_str("JwtVerifier(public key)"),
        }
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    /// `secret_is_base64` is set but the secret is not base64 (Kong: "Invalid key/secret").
    InvalidKey,
    /// The signature does not match.
    InvalidSignature,
}

/// Kong's lenient base64: URL-safe or standard alphabet, padding optional.
pub fn decode_base64_lenient(input: &str) -> Option<Vec<u8>> {
    let trimmed = input.trim_end_matches('=');
    let normalized: String = trimmed
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(normalized.as_bytes())
        .ok()
}

impl JwtVerifier {
    /// Builds the verifier for `algorithm` from the credential's `secret` or PEM key.
    /// The error is (field, message) relative to the credential.
    pub fn build(
        algorithm: JwtAlgorithm,
        secret: Option<&Secret>,
        pem: Option<&str>,
    ) -> Result<JwtVerifier, (&'static str, String)> {
        use JwtAlgorithm::*;
        if algorithm.is_hmac() {
            let Some(secret) = secret.filter(|s| !s.expose().is_empty()) else {
                return Err((
                    "secret",
                    format!("required for algorithm {}", algorithm.as_str()),
                ));
            };
            let alg = match algorithm {
                HS256 => hmac::HMAC_SHA256,
                HS384 => hmac::HMAC_SHA384,
                _ => hmac::HMAC_SHA512,
            };
            let raw = hmac::Key::new(alg, secret.expose().as_bytes());
            let decoded =
                decode_base64_lenient(secret.expose()).map(|bytes| hmac::Key::new(alg, &bytes));
            return Ok(JwtVerifier {
                kind: Kind::Hmac(Box::new(HmacKeys { raw, decoded })),
            });
        }
        let Some(pem) = pem else {
            return Err((
                "rsa_public_key",
                format!(
                    "a public key in PEM is required for algorithm {}",
                    algorithm.as_str()
                ),
            ));
        };
        let key = PublicKey::from_pem(pem).map_err(|m| ("rsa_public_key", m.to_string()))?;
        let (alg, material): (&'static dyn signature::VerificationAlgorithm, Vec<u8>) =
            match (algorithm, key) {
                (RS256, PublicKey::Rsa(k)) => (&signature::RSA_PKCS1_2048_8192_SHA256, k),
                (RS384, PublicKey::Rsa(k)) => (&signature::RSA_PKCS1_2048_8192_SHA384, k),
                (RS512, PublicKey::Rsa(k)) => (&signature::RSA_PKCS1_2048_8192_SHA512, k),
                (PS256, PublicKey::Rsa(k)) => (&signature::RSA_PSS_2048_8192_SHA256, k),
                (PS384, PublicKey::Rsa(k)) => (&signature::RSA_PSS_2048_8192_SHA384, k),
                (PS512, PublicKey::Rsa(k)) => (&signature::RSA_PSS_2048_8192_SHA512, k),
                (ES256, PublicKey::P256(k)) => (&signature::ECDSA_P256_SHA256_FIXED, k),
                (ES384, PublicKey::P384(k)) => (&signature::ECDSA_P384_SHA384_FIXED, k),
                (EdDSA, PublicKey::Ed25519(k)) => (&signature::ED25519, k),
                (alg, key) => {
                    return Err((
                        "rsa_public_key",
                        format!(
                            "this is {} key; algorithm {} needs {}",
                            key.kind(),
                            alg.as_str(),
                            needed_kind(alg)
                        ),
                    ))
                }
            };
        Ok(JwtVerifier {
            kind: Kind::Public(signature::UnparsedPublicKey::new(alg, material)),
        })
    }

    /// Checks `signature` over `message` (the token's `header.claims` text).
    pub fn verify(
        &self,
        secret_is_base64: bool,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), VerifyError> {
        match &self.kind {
            Kind::Hmac(keys) => {
                let key = if secret_is_base64 {
                    keys.decoded.as_ref().ok_or(VerifyError::InvalidKey)?
                } else {
                    &keys.raw
                };
                // ring compares HMAC tags in constant time.
                hmac::verify(key, message, signature).map_err(|_| VerifyError::InvalidSignature)
            }
            Kind::Public(key) => key
                .verify(message, signature)
                .map_err(|_| VerifyError::InvalidSignature),
        }
    }
}

fn needed_kind(alg: JwtAlgorithm) -> &'static str {
    use JwtAlgorithm::*;
    match alg {
        ES256 => "an EC P-256 key",
        ES384 => "an EC P-384 key",
        EdDSA => "an Ed25519 key",
        _ => "an RSA key",
    }
}

/// Raw public key material, as `ring` takes it.
enum PublicKey {
    /// PKCS#1 `RSAPublicKey` DER.
    Rsa(Vec<u8>),
    /// An uncompressed P-256 point.
    P256(Vec<u8>),
    /// An uncompressed P-384 point.
    P384(Vec<u8>),
    /// 32 raw bytes.
    Ed25519(Vec<u8>),
}

const OID_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_RSA_PSS: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
const OID_EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2B, 0x65, 0x70];

impl PublicKey {
    fn kind(&self) -> &'static str {
        match self {
            PublicKey::Rsa(_) => "an RSA",
            PublicKey::P256(_) => "an EC P-256",
            PublicKey::P384(_) => "an EC P-384",
            PublicKey::Ed25519(_) => "an Ed25519",
        }
    }

    fn from_pem(pem: &str) -> Result<PublicKey, &'static str> {
        let (label, der) = pem_decode(pem).ok_or("not a PEM-encoded public key")?;
        match label.as_str() {
            "PUBLIC KEY" => Self::from_spki(&der),
            "RSA PUBLIC KEY" => {
                check_rsa(&der)?;
                Ok(PublicKey::Rsa(der))
            }
            _ => Err("expected a PEM public key (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY)"),
        }
    }

    fn from_spki(der: &[u8]) -> Result<PublicKey, &'static str> {
        const BAD: &str = "the PEM does not hold a valid SubjectPublicKeyInfo";
        let (spki, _) = der_expect(der, 0x30).ok_or(BAD)?;
        let (alg_id, rest) = der_expect(spki, 0x30).ok_or(BAD)?;
        let (bits, _) = der_expect(rest, 0x03).ok_or(BAD)?;
        let key = match bits.split_first() {
            Some((0, key)) => key.to_vec(),
            _ => return Err(BAD),
        };
        let (oid, params) = der_expect(alg_id, 0x06).ok_or(BAD)?;
        if oid == OID_RSA || oid == OID_RSA_PSS {
            check_rsa(&key)?;
            return Ok(PublicKey::Rsa(key));
        }
        if oid == OID_ED25519 {
            return if key.len() == 32 {
                Ok(PublicKey::Ed25519(key))
            } else {
                Err(BAD)
            };
        }
        if oid == OID_EC {
            let (curve, _) = der_expect(params, 0x06).ok_or(BAD)?;
            return match curve {
                c if c == OID_P256 && key.len() == 65 => Ok(PublicKey::P256(key)),
                c if c == OID_P384 && key.len() == 97 => Ok(PublicKey::P384(key)),
                _ => Err("unsupported EC curve (P-256 and P-384 are supported)"),
            };
        }
        Err("unsupported key type (RSA, EC P-256/P-384 and Ed25519 are supported)")
    }
}

/// RSA keys must be 2048 to 8192 bits (ring's limits).
fn check_rsa(pkcs1: &[u8]) -> Result<(), &'static str> {
    const BAD: &str = "not a valid RSA public key";
    let (seq, _) = der_expect(pkcs1, 0x30).ok_or(BAD)?;
    let (n, rest) = der_expect(seq, 0x02).ok_or(BAD)?;
    der_expect(rest, 0x02).ok_or(BAD)?;
    let n = match n.iter().position(|&b| b != 0) {
        Some(i) => &n[i..],
        None => return Err(BAD),
    };
    let bits = n.len() * 8 - n[0].leading_zeros() as usize;
    if !(2048..=8192).contains(&bits) {
        return Err("RSA keys must be 2048 to 8192 bits long");
    }
    Ok(())
}

/// Reads one DER element with tag `tag`: (contents, rest).
fn der_expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 3 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((&rest[..len], &rest[len..]))
}

/// (label, DER) of the first PEM block in `text`.
fn pem_decode(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let after = &text[start + 11..];
    let label_end = after.find("-----")?;
    let label = after[..label_end].to_string();
    let body_start = &after[label_end + 5..];
    let end = body_start.find("-----END ")?;
    let b64: String = body_start[..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .ok()?;
    Some((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn spki_pem(prefix: &[u8], key: &[u8]) -> String {
        let mut der = prefix.to_vec();
        der.extend_from_slice(key);
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    const P256_PREFIX: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08,
        0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    const ED25519_PREFIX: &[u8] = &[
        0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];

    #[test]
    fn es256_and_eddsa_keys_verify_their_signatures() {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let pem = spki_pem(P256_PREFIX, pair.public_key().as_ref());
        let v = JwtVerifier::build(JwtAlgorithm::ES256, None, Some(&pem)).unwrap();
        let sig = pair.sign(&rng, b"msg").unwrap();
        assert_eq!(v.verify(false, b"msg", sig.as_ref()), Ok(()));
        assert_eq!(
            v.verify(false, b"other", sig.as_ref()),
            Err(VerifyError::InvalidSignature)
        );
        // An EC key cannot back an RSA or EdDSA credential.
        let e = JwtVerifier::build(JwtAlgorithm::RS256, None, Some(&pem)).unwrap_err();
        assert!(e.1.contains("EC P-256"), "{e:?}");

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let pem = spki_pem(ED25519_PREFIX, pair.public_key().as_ref());
        let v = JwtVerifier::build(JwtAlgorithm::EdDSA, None, Some(&pem)).unwrap();
        let sig = pair.sign(b"msg");
        assert_eq!(v.verify(false, b"msg", sig.as_ref()), Ok(()));
    }

    #[test]
    fn hmac_secrets_and_base64() {
        let secret = Secret::new("c2VjcmV0"); // base64 of "secret"
        let v = JwtVerifier::build(JwtAlgorithm::HS256, Some(&secret), None).unwrap();
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"secret");
        let tag = hmac::sign(&key, b"m");
        assert_eq!(v.verify(true, b"m", tag.as_ref()), Ok(()));
        assert_eq!(
            v.verify(false, b"m", tag.as_ref()),
            Err(VerifyError::InvalidSignature)
        );
        assert!(JwtVerifier::build(JwtAlgorithm::HS256, None, None).is_err());
        let shown = format!("{v:?}");
        assert!(!shown.contains("c2Vj"), "{shown}");
    }

    #[test]
    fn rejects_garbage_pem() {
        let e = JwtVerifier::build(JwtAlgorithm::RS256, None, Some("nope")).unwrap_err();
        assert_eq!(e.0, "rsa_public_key");
    }
}
