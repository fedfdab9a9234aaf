//! What a verified client certificate says about its holder: the subject names Kong
//! matches against credentials and consumers, the CN and the DN.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

/// The names of a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Subject names in Kong's lookup order (RFC 6125): the subject alternative names
    /// (DNS names, e-mail addresses, URIs, IP addresses) as the certificate lists them,
    /// then the subject's common name.
    pub names: Vec<String>,
    /// The subject's common name, if it has one.
    pub cn: Option<String>,
    /// The subject's distinguished name in RFC 2253 form (last RDN first, `,` between
    /// them: `CN=alice,O=Acme`), as nginx's `$ssl_client_s_dn` gives it.
    pub dn: String,
    /// The subject alternative names alone (for `X-Client-Cert-SAN`).
    pub sans: Vec<String>,
}

/// Why a certificate's names could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the certificate is not valid X.509")]
pub struct BadCertificate;

impl Identity {
    /// Reads the names of the DER certificate `der`.
    pub fn of(der: &[u8]) -> Result<Identity, BadCertificate> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| BadCertificate)?;
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                        sans.push(s.to_string())
                    }
                    GeneralName::IPAddress(b) => {
                        if let Some(ip) = ip_text(b) {
                            sans.push(ip)
                        }
                    }
                    _ => {}
                }
            }
        }
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_string);
        let mut names = sans.clone();
        names.extend(cn.clone());
        Ok(Identity {
            names,
            cn,
            dn: rfc2253(cert.subject()),
            sans,
        })
    }
}

fn ip_text(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).to_string()),
        _ => None,
    }
}

/// `name` as RFC 2253 text: RDNs last first, joined by `,`; attributes of one RDN by
/// `+`; values escaped as the RFC asks.
fn rfc2253(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns = Vec::new();
    for rdn in name.iter_rdn() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|attr| {
                let key = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                    .map(str::to_string)
                    .unwrap_or_else(|_| attr.attr_type().to_id_string());
                let value = attr.as_str().map(escape).unwrap_or_default();
                format!("{key}={value}")
            })
            .collect();
        rdns.push(attrs.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_sans_then_the_cn_and_the_dn_is_rfc2253() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["api.example.com".to_string()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::Rfc822Name(
            "ops@example.com".try_into().unwrap(),
        ));
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme, Inc");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let cert = params.self_signed(&key).unwrap();
        let id = Identity::of(cert.der()).unwrap();
        // rcgen writes the CN first; RFC 2253 names the last RDN first.
        let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
        assert_eq!(parsed.subject().to_string(), "CN=alice, O=Acme, Inc");
        assert_eq!(id.names, ["api.example.com", "ops@example.com", "alice"]);
        assert_eq!(id.cn.as_deref(), Some("alice"));
        assert_eq!(id.dn, "O=Acme\\, Inc,CN=alice");
        assert!(Identity::of(b"not a certificate").is_err());
    }
}
