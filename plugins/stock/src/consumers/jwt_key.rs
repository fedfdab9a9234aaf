//! JWT verification keys, parsed once at load: HMAC secrets and public keys in PEM.
//!
//! Verification uses `ring`, which covers every algorithm Kong's jwt plugin offers except
//! ES512. `ring` takes raw key material, so the PEM block is decoded with `pem-rfc7468`,
//! and its SubjectPublicKeyInfo (`spki`) or PKCS#1 `RSAPublicKey` (`pkcs1`) is read
//! with the `der` crate; only the key bytes found there reach `ring`.

use base64::Engine as _;
use der::Decode as _;
use ring::{hmac, signature};
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

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
        let key = PublicKey::from_pem(pem).map_err(|m| ("rsa_public_key", m))?;
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

/// rsaEncryption (RFC 8017).
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// id-RSASSA-PSS (RFC 4055): an RSA key restricted to PSS; its parameters are not
/// enforced, the credential's algorithm decides.
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
/// id-ecPublicKey (RFC 5480).
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1, the named curve P-256.
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// secp384r1, the named curve P-384.
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// id-Ed25519 (RFC 8410).
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The message for input with no PEM block at all.
const NOT_PEM: &str = "not a PEM-encoded public key";

impl PublicKey {
    fn kind(&self) -> &'static str {
        match self {
            PublicKey::Rsa(_) => "an RSA",
            PublicKey::P256(_) => "an EC P-256",
            PublicKey::P384(_) => "an EC P-384",
            PublicKey::Ed25519(_) => "an Ed25519",
        }
    }

    fn from_pem(pem: &str) -> Result<PublicKey, String> {
        let canonical = canonical_pem(pem)?;
        let (label, der) = pem_rfc7468::decode_vec(&canonical)
            .map_err(|e| format!("the PEM block is malformed ({e})"))?;
        match label {
            "PUBLIC KEY" => Ok(Self::from_spki(&der)?),
            "RSA PUBLIC KEY" => {
                check_rsa(&der)?;
                Ok(PublicKey::Rsa(der))
            }
            _ => Err(
                "expected a PEM public key (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY)".to_string(),
            ),
        }
    }

    fn from_spki(der: &[u8]) -> Result<PublicKey, &'static str> {
        const BAD: &str = "the PEM does not hold a valid SubjectPublicKeyInfo";
        // `from_der` also rejects bytes after the SubjectPublicKeyInfo.
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|_| BAD)?;
        // Every key type here is a whole number of bytes: no unused bits.
        let key = spki.subject_public_key.as_bytes().ok_or(BAD)?;
        let algorithm = &spki.algorithm;
        let oid = algorithm.oid;
        if oid == OID_RSA || oid == OID_RSA_PSS {
            // rsaEncryption's parameters are NULL (RFC 3279), sometimes omitted;
            // RSASSA-PSS's, when present, are a sequence the credential's algorithm
            // overrides.
            if oid == OID_RSA && !algorithm.parameters.is_none_or(|p| p.is_null()) {
                return Err(BAD);
            }
            check_rsa(key)?;
            return Ok(PublicKey::Rsa(key.to_vec()));
        }
        if oid == OID_ED25519 {
            // RFC 8410: the parameters are absent and the key is 32 bytes.
            return if algorithm.parameters.is_none() && key.len() == 32 {
                Ok(PublicKey::Ed25519(key.to_vec()))
            } else {
                Err(BAD)
            };
        }
        if oid == OID_EC {
            // RFC 5480: the parameters name the curve (implicit and specified curves
            // are not allowed).
            let curve = algorithm.parameters_oid().map_err(|_| BAD)?;
            let (len, key_of): (usize, fn(Vec<u8>) -> PublicKey) = match curve {
                c if c == OID_P256 => (65, PublicKey::P256),
                c if c == OID_P384 => (97, PublicKey::P384),
                _ => return Err("unsupported EC curve (P-256 and P-384 are supported)"),
            };
            // `ring` takes the uncompressed point (0x04 || x || y).
            return match key {
                [0x04, ..] if key.len() == len => Ok(key_of(key.to_vec())),
                _ => Err("not a valid EC public key (an uncompressed point is required)"),
            };
        }
        Err("unsupported key type (RSA, EC P-256/P-384 and Ed25519 are supported)")
    }
}

/// Checks a PKCS#1 `RSAPublicKey`: well-formed DER with nothing after it, a 2048 to
/// 8192-bit modulus (ring's limits) and an odd public exponent of at least 3.
fn check_rsa(pkcs1: &[u8]) -> Result<(), &'static str> {
    const BAD: &str = "not a valid RSA public key";
    let key = pkcs1::RsaPublicKey::from_der(pkcs1).map_err(|_| BAD)?;
    // `UintRef` holds the big-endian value without its leading zero bytes.
    let n = key.modulus.as_bytes();
    let Some(&first) = n.first().filter(|&&b| b != 0) else {
        return Err(BAD);
    };
    let bits = n.len() * 8 - first.leading_zeros() as usize;
    if !(2048..=8192).contains(&bits) {
        return Err("RSA keys must be 2048 to 8192 bits long");
    }
    let e = key.public_exponent.as_bytes();
    let odd = e.last().is_some_and(|&b| b & 1 == 1);
    if !odd || e == [1] {
        return Err(BAD);
    }
    Ok(())
}

/// The PEM block in `text`, rewritten in the strict form `pem-rfc7468` decodes.
///
/// RFC 7468's strict grammar wants the boundaries on lines of their own and 64-column
/// Base64 lines, but keys pasted into YAML arrive on one line, indented, with CRLF or
/// with blank lines, or folded into one line by a quoted scalar. This only moves
/// whitespace: explanatory text before the BEGIN boundary is dropped (RFC 7468 allows
/// it), the Base64 is re-wrapped at 64 columns, and anything but whitespace after the
/// END boundary is refused. The labels and the Base64 are checked by `pem-rfc7468`.
fn canonical_pem(text: &str) -> Result<Vec<u8>, &'static str> {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "-----END ";
    const DASHES: &str = "-----";
    const INCOMPLETE: &str = "the PEM block has no complete BEGIN and END lines";
    let start = text.find(BEGIN).ok_or(NOT_PEM)?;
    let rest = &text[start..];
    let begin_len =
        BEGIN.len() + rest[BEGIN.len()..].find(DASHES).ok_or(INCOMPLETE)? + DASHES.len();
    let (begin, rest) = rest.split_at(begin_len);
    let (body, rest) = rest.split_at(rest.find(END).ok_or(INCOMPLETE)?);
    let end_len = END.len() + rest[END.len()..].find(DASHES).ok_or(INCOMPLETE)? + DASHES.len();
    let (end, trailing) = rest.split_at(end_len);
    if !trailing.trim().is_empty() {
        return Err("unexpected text after the PEM block's END line (one key per credential)");
    }
    let base64: Vec<u8> = body.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(begin.len() + end.len() + base64.len() * 65 / 64 + 3);
    out.extend_from_slice(begin.as_bytes());
    out.push(b'\n');
    for chunk in base64.chunks(64) {
        out.extend_from_slice(chunk);
        out.push(b'\n');
    }
    out.extend_from_slice(end.as_bytes());
    out.push(b'\n');
    Ok(out)
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
        assert_eq!(e.1, NOT_PEM);
    }

    // DER built piece by piece, so each malformed input differs from a good key in
    // exactly one place.

    const RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
    const EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
    const P521: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x23];
    const SECP256K1: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x0A];
    const DSA: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x01];
    const NULL: &[u8] = &[0x05, 0x00];

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend_from_slice(&[0x81, n as u8]),
            n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }

    /// A SubjectPublicKeyInfo: algorithm OID, optional parameters (DER), key bits.
    fn spki(oid: &[u8], params: Option<&[u8]>, key: &[u8]) -> Vec<u8> {
        let mut alg = tlv(0x06, oid);
        alg.extend_from_slice(params.unwrap_or_default());
        let mut bits = vec![0u8];
        bits.extend_from_slice(key);
        let mut body = tlv(0x30, &alg);
        body.extend_from_slice(&tlv(0x03, &bits));
        tlv(0x30, &body)
    }

    /// A PKCS#1 RSAPublicKey with a `bits`-bit modulus (not a real key: enough for
    /// the checks made at load) and exponent `e`.
    fn rsa_pkcs1(bits: usize, e: &[u8]) -> Vec<u8> {
        let mut n = vec![0u8; 1 + bits / 8];
        n[1] = 0x80;
        *n.last_mut().unwrap() = 0x01;
        let mut body = tlv(0x02, &n);
        body.extend_from_slice(&tlv(0x02, e));
        tlv(0x30, &body)
    }

    /// PEM as OpenSSL writes it: 64-column lines, LF.
    fn pem(label: &str, der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    fn p256_point() -> Vec<u8> {
        let mut point = vec![0x04];
        point.extend_from_slice(&[0x11; 64]);
        point
    }

    fn build_err(alg: JwtAlgorithm, pem: &str) -> String {
        let (field, message) = JwtVerifier::build(alg, None, Some(pem)).unwrap_err();
        assert_eq!(field, "rsa_public_key");
        message
    }

    #[test]
    fn rsa_keys_in_spki_and_pkcs1_give_ring_the_same_bytes() {
        let pkcs1 = rsa_pkcs1(2048, &[0x01, 0x00, 0x01]);
        let from_spki = PublicKey::from_pem(&pem("PUBLIC KEY", &spki(RSA, Some(NULL), &pkcs1)));
        let from_pkcs1 = PublicKey::from_pem(&pem("RSA PUBLIC KEY", &pkcs1));
        for key in [from_spki, from_pkcs1] {
            match key {
                Ok(PublicKey::Rsa(der)) => assert_eq!(der, pkcs1),
                Ok(other) => panic!("{}", other.kind()),
                Err(e) => panic!("{e}"),
            }
        }
        // rsaEncryption's parameters may be omitted, but are NULL when present.
        let absent = pem("PUBLIC KEY", &spki(RSA, None, &pkcs1));
        assert!(JwtVerifier::build(JwtAlgorithm::PS256, None, Some(&absent)).is_ok());
        let oid_params = pem("PUBLIC KEY", &spki(RSA, Some(&tlv(0x06, P256)), &pkcs1));
        assert_eq!(
            build_err(JwtAlgorithm::RS256, &oid_params),
            "the PEM does not hold a valid SubjectPublicKeyInfo"
        );
        // An RSA key cannot back an EC credential.
        let rsa = pem("RSA PUBLIC KEY", &pkcs1);
        assert_eq!(
            build_err(JwtAlgorithm::ES256, &rsa),
            "this is an RSA key; algorithm ES256 needs an EC P-256 key"
        );
    }

    #[test]
    fn pkcs1_keys_are_checked() {
        let short = pem("RSA PUBLIC KEY", &rsa_pkcs1(1024, &[0x01, 0x00, 0x01]));
        assert_eq!(
            build_err(JwtAlgorithm::RS256, &short),
            "RSA keys must be 2048 to 8192 bits long"
        );
        let huge = pem("RSA PUBLIC KEY", &rsa_pkcs1(8200, &[0x01, 0x00, 0x01]));
        assert_eq!(
            build_err(JwtAlgorithm::RS256, &huge),
            "RSA keys must be 2048 to 8192 bits long"
        );
        for e in [&[0x01, 0x00, 0x00][..], &[0x01], &[0x00]] {
            let bad_e = pem("RSA PUBLIC KEY", &rsa_pkcs1(2048, e));
            assert_eq!(
                build_err(JwtAlgorithm::RS256, &bad_e),
                "not a valid RSA public key",
                "{e:?}"
            );
        }
        // A negative modulus (no leading zero before the high bit) is not a key.
        let mut n = vec![0xC0; 256];
        n[255] = 1;
        let mut body = tlv(0x02, &n);
        body.extend_from_slice(&tlv(0x02, &[0x01, 0x00, 0x01]));
        let negative = pem("RSA PUBLIC KEY", &tlv(0x30, &body));
        assert_eq!(
            build_err(JwtAlgorithm::RS256, &negative),
            "not a valid RSA public key"
        );
        // A SubjectPublicKeyInfo under the PKCS#1 label is not an RSAPublicKey.
        let spki_as_pkcs1 = pem(
            "RSA PUBLIC KEY",
            &spki(RSA, Some(NULL), &rsa_pkcs1(2048, &[3])),
        );
        assert_eq!(
            build_err(JwtAlgorithm::RS256, &spki_as_pkcs1),
            "not a valid RSA public key"
        );
    }

    #[test]
    fn truncated_or_padded_der_is_refused() {
        let good = spki(EC, Some(&tlv(0x06, P256)), &p256_point());
        assert!(PublicKey::from_pem(&pem("PUBLIC KEY", &good)).is_ok());
        for cut in [1, 10, good.len() - 1] {
            let truncated = pem("PUBLIC KEY", &good[..good.len() - cut]);
            assert_eq!(
                build_err(JwtAlgorithm::ES256, &truncated),
                "the PEM does not hold a valid SubjectPublicKeyInfo",
                "cut {cut}"
            );
        }
        let mut padded = good.clone();
        padded.push(0);
        assert_eq!(
            build_err(JwtAlgorithm::ES256, &pem("PUBLIC KEY", &padded)),
            "the PEM does not hold a valid SubjectPublicKeyInfo"
        );
        let pkcs1 = rsa_pkcs1(2048, &[0x01, 0x00, 0x01]);
        let truncated = pem("RSA PUBLIC KEY", &pkcs1[..pkcs1.len() - 2]);
        assert_eq!(
            build_err(JwtAlgorithm::RS256, &truncated),
            "not a valid RSA public key"
        );
        // A BIT STRING with unused bits does not hold a whole key.
        let mut unused_bits = good;
        let at = unused_bits.len() - 66;
        assert_eq!(unused_bits[at], 0);
        unused_bits[at] = 1;
        assert_eq!(
            build_err(JwtAlgorithm::ES256, &pem("PUBLIC KEY", &unused_bits)),
            "the PEM does not hold a valid SubjectPublicKeyInfo"
        );
        let empty = "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n";
        let e = build_err(JwtAlgorithm::ES256, empty);
        assert!(e.starts_with("the PEM block is malformed ("), "{e}");
    }

    #[test]
    fn only_public_key_labels_are_accepted() {
        let der = spki(EC, Some(&tlv(0x06, P256)), &p256_point());
        for label in ["CERTIFICATE", "PRIVATE KEY", "EC PUBLIC KEY"] {
            assert_eq!(
                build_err(JwtAlgorithm::ES256, &pem(label, &der)),
                "expected a PEM public key (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY)",
                "{label}"
            );
        }
        // The END label must match the BEGIN label.
        let mismatched = pem("PUBLIC KEY", &der).replace("END PUBLIC KEY", "END RSA PUBLIC KEY");
        let e = build_err(JwtAlgorithm::ES256, &mismatched);
        assert!(e.starts_with("the PEM block is malformed ("), "{e}");
        // Labels are case-sensitive.
        let lower = pem("PUBLIC KEY", &der).replace("PUBLIC KEY", "public key");
        assert_eq!(
            build_err(JwtAlgorithm::ES256, &lower),
            "expected a PEM public key (BEGIN PUBLIC KEY or BEGIN RSA PUBLIC KEY)"
        );
        let unterminated = "-----BEGIN PUBLIC KEY-----\nMFkw\n";
        assert_eq!(
            build_err(JwtAlgorithm::ES256, unterminated),
            "the PEM block has no complete BEGIN and END lines"
        );
        let bad_base64 = pem("PUBLIC KEY", &der).replacen("MF", "M*", 1);
        let e = build_err(JwtAlgorithm::ES256, &bad_base64);
        assert!(e.starts_with("the PEM block is malformed ("), "{e}");
    }

    #[test]
    fn text_after_the_pem_block_is_refused() {
        let key = pem(
            "PUBLIC KEY",
            &spki(EC, Some(&tlv(0x06, P256)), &p256_point()),
        );
        // Whitespace after the block is fine.
        assert!(
            JwtVerifier::build(JwtAlgorithm::ES256, None, Some(&format!("{key}\n \n"))).is_ok()
        );
        // So is explanatory text before it (RFC 7468).
        let preamble = format!("Subject: gateway test key\n{key}");
        assert!(JwtVerifier::build(JwtAlgorithm::ES256, None, Some(&preamble)).is_ok());
        for trailing in [
            format!("{key}garbage"),
            format!("{key}\n-----"),
            format!("{key}{key}"),
            key.replace("-----END PUBLIC KEY-----", "-----END PUBLIC KEY-----x"),
        ] {
            assert_eq!(
                build_err(JwtAlgorithm::ES256, &trailing),
                "unexpected text after the PEM block's END line (one key per credential)",
                "{trailing:?}"
            );
        }
    }

    #[test]
    fn unknown_algorithms_and_curves_are_refused() {
        let dsa = pem("PUBLIC KEY", &spki(DSA, None, &tlv(0x02, &[0x05; 128])));
        assert_eq!(
            build_err(JwtAlgorithm::RS256, &dsa),
            "unsupported key type (RSA, EC P-256/P-384 and Ed25519 are supported)"
        );
        for curve in [P521, SECP256K1] {
            let mut point = vec![0x04];
            point.extend_from_slice(&[0x22; 132]);
            let key = pem("PUBLIC KEY", &spki(EC, Some(&tlv(0x06, curve)), &point));
            assert_eq!(
                build_err(JwtAlgorithm::ES256, &key),
                "unsupported EC curve (P-256 and P-384 are supported)"
            );
        }
        // Curves given by parameters, not by name, are not taken.
        let explicit = pem(
            "PUBLIC KEY",
            &spki(EC, Some(&tlv(0x30, &[])), &p256_point()),
        );
        assert_eq!(
            build_err(JwtAlgorithm::ES256, &explicit),
            "the PEM does not hold a valid SubjectPublicKeyInfo"
        );
        // `ring` takes uncompressed points only.
        let mut compressed = vec![0x02];
        compressed.extend_from_slice(&[0x11; 32]);
        let key = pem("PUBLIC KEY", &spki(EC, Some(&tlv(0x06, P256)), &compressed));
        assert_eq!(
            build_err(JwtAlgorithm::ES256, &key),
            "not a valid EC public key (an uncompressed point is required)"
        );
        // A P-256 key for ES384 is a mismatch, named as such.
        let p256 = pem(
            "PUBLIC KEY",
            &spki(EC, Some(&tlv(0x06, P256)), &p256_point()),
        );
        assert_eq!(
            build_err(JwtAlgorithm::ES384, &p256),
            "this is an EC P-256 key; algorithm ES384 needs an EC P-384 key"
        );
    }

    #[test]
    fn whitespace_and_line_endings_do_not_matter() {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        let der = spki(EC, Some(&tlv(0x06, P256)), pair.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let (head, tail) = b64.split_at(40);
        let sig = pair.sign(&rng, b"msg").unwrap();
        for text in [
            pem("PUBLIC KEY", &der).replace('\n', "\r\n"),
            pem("PUBLIC KEY", &der).replace('\n', "\r"),
            format!("\n\n  -----BEGIN PUBLIC KEY-----  \n\t{head}\n\n   {tail}\n  -----END PUBLIC KEY-----\n\n"),
            // A quoted YAML scalar folds the lines into one.
            format!("-----BEGIN PUBLIC KEY----- {head} {tail} -----END PUBLIC KEY-----"),
            // One Base64 line, longer than RFC 7468's 64 columns.
            format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----"),
        ] {
            let v = JwtVerifier::build(JwtAlgorithm::ES256, None, Some(&text))
                .unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
            assert_eq!(v.verify(false, b"msg", sig.as_ref()), Ok(()), "{text:?}");
        }
        // Whitespace inside a boundary line is not whitespace between lines.
        let split_label = pem("PUBLIC KEY", &der).replace("BEGIN PUBLIC KEY", "BEGIN PUBLIC  KEY");
        let e = build_err(JwtAlgorithm::ES256, &split_label);
        assert!(e.starts_with("the PEM block is malformed ("), "{e}");
    }
}
