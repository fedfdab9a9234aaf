//! The `acme:` section: certificates issued and renewed by an ACME certificate
//! authority (Let's Encrypt, a private CA, pebble in the tests) through HTTP-01, for the
//! HTTPS listeners' certificate entries that say `acme: true` (see docs/acme.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::model::GatewayConfig;
use super::Diagnostic;

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Names one ACME certificate may cover, at most (Let's Encrypt's limit per order).
pub const MAX_NAMES_PER_CERTIFICATE: usize = 100;

/// The ACME account and renewal policy shared by every `acme: true` certificate.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The CA's ACME directory URL (HTTPS). Default: Let's Encrypt's production
    /// directory; use its staging directory while trying things out.
    #[serde(default = "default_directory")]
    pub directory: String,
    /// The account's contact address, where the CA sends expiry notices (Kong's
    /// `account_email`).
    #[serde(default)]
    pub email: Option<String>,
    /// Agree to the CA's terms of service (Kong's `tos_accepted`): required, since the
    /// CA refuses an account otherwise.
    #[serde(default)]
    pub tos_accepted: bool,
    /// The directory the account key and the issued certificates are kept in (created
    /// if missing, mode 0700; keys 0600). Certificates found there at start-up are
    /// served at once, and not ordered again until they are due for renewal.
    pub storage: String,
    /// A PEM file of CA certificates to trust for the directory's HTTPS, for a private
    /// or test CA. Absent: the system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Renew a certificate when it expires within this long. Default `30d`.
    #[serde(default = "default_renew_before")]
    pub renew_before: Duration,
    /// How often certificates are checked for renewal. Default `1h`; at least `1s`. A
    /// failed order is retried sooner, with a backoff from 10s up to this interval.
    #[serde(default = "default_check_interval")]
    pub check_interval: Duration,
}

fn default_directory() -> String {
    LETS_ENCRYPT.to_string()
}

fn default_renew_before() -> Duration {
    Duration::from_secs(30 * 86_400)
}

fn default_check_interval() -> Duration {
    Duration::from_secs(3600)
}

/// Checks the `acme:` section and every `acme: true` certificate entry: each needs the
/// section, host names only (HTTP-01 cannot prove a wildcard), no file or PEM of its
/// own, and a plain HTTP listener to answer the CA's challenge on.
pub fn check(config: &GatewayConfig, out: &mut Vec<Diagnostic>) {
    if let Some(acme) = &config.acme {
        check_section(acme, out);
    }
    let plain_listener = config.listeners.iter().any(|l| l.tls.is_none());
    for (i, l) in config.listeners.iter().enumerate() {
        let Some(tls) = &l.tls else { continue };
        for (j, c) in tls.certificates.iter().enumerate() {
            if !c.acme {
                continue;
            }
            let at = format!("listeners[{i}].tls.certificates[{j}]");
            if config.acme.is_none() {
                out.push(Diagnostic::new(
                    format!("{at}.acme"),
                    "needs the top-level `acme:` section (its CA, storage and terms of service)",
                ));
            }
            if !plain_listener {
                out.push(Diagnostic::new(
                    format!("{at}.acme"),
                    "the CA checks HTTP-01 challenges over plain HTTP: add a listener without `tls` (on port 80 for a public CA) to answer them",
                ));
            }
            for (field, set) in [
                ("cert", c.cert.is_some()),
                ("key", c.key.is_some()),
                ("cert_pem", c.cert_pem.is_some()),
                ("key_pem", c.key_pem.is_some()),
                ("ocsp_file", c.ocsp_file.is_some()),
            ] {
                if set {
                    out.push(Diagnostic::new(
                        format!("{at}.{field}"),
                        "an `acme: true` certificate is issued by the CA: leave this out",
                    ));
                }
            }
            if c.snis.is_empty() {
                out.push(Diagnostic::new(
                    format!("{at}.snis"),
                    "name the hosts to obtain the certificate for",
                ));
            }
            if c.snis.len() > MAX_NAMES_PER_CERTIFICATE {
                out.push(Diagnostic::new(
                    format!("{at}.snis"),
                    format!("at most {MAX_NAMES_PER_CERTIFICATE} names per ACME certificate"),
                ));
            }
            for (k, name) in c.snis.iter().enumerate() {
                if name.trim().starts_with('*') {
                    out.push(Diagnostic::new(
                        format!("{at}.snis[{k}]"),
                        "an HTTP-01 challenge cannot prove a wildcard name; list the hosts, or give a certificate from a file",
                    ));
                }
            }
        }
    }
}

fn check_section(acme: &AcmeConfig, out: &mut Vec<Diagnostic>) {
    if !acme.tos_accepted {
        out.push(Diagnostic::new(
            "acme.tos_accepted",
            "set `tos_accepted: true` to agree to the CA's terms of service; it refuses an account without",
        ));
    }
    if !acme.directory.starts_with("https://") {
        out.push(Diagnostic::new(
            "acme.directory",
            format!(
                "{:?} is not an https:// URL; ACME directories are served over HTTPS",
                acme.directory
            ),
        ));
    }
    if acme.storage.trim().is_empty() {
        out.push(Diagnostic::new(
            "acme.storage",
            "name a directory for the account key and certificates",
        ));
    }
    if let Some(email) = &acme.email {
        let valid = email
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
            && !email.chars().any(|c| c.is_whitespace() || c == ',');
        if !valid {
            out.push(Diagnostic::new(
                "acme.email",
                format!("{email:?} is not an email address"),
            ));
        }
    }
    if acme.ca_file.as_deref().is_some_and(|f| f.trim().is_empty()) {
        out.push(Diagnostic::new(
            "acme.ca_file",
            "must not be empty (leave it out to trust the system's roots)",
        ));
    }
    if acme.renew_before.get().is_zero() {
        out.push(Diagnostic::new(
            "acme.renew_before",
            "must be more than 0 (30d is usual)",
        ));
    }
    if acme.check_interval.get() < std::time::Duration::from_secs(1) {
        out.push(Diagnostic::new(
            "acme.check_interval",
            "must be at least 1s",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load_str;

    fn problems(yaml: &str) -> Vec<String> {
        let loaded = load_str(yaml).expect("parses");
        let mut out = Vec::new();
        super::check(&loaded.config, &mut out);
        out.iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect()
    }

    const ACME: &str = "acme: {storage: /var/lib/pingway/acme, tos_accepted: true}\n";

    #[test]
    fn a_valid_section_and_entry_pass_with_defaults() {
        let yaml = format!(
            "{ACME}listeners:\n  - address: 127.0.0.1:80\n  - address: 127.0.0.1:443\n    tls: {{certificates: [{{acme: true, snis: [app.test, www.app.test]}}]}}\n"
        );
        assert!(problems(&yaml).is_empty(), "{:?}", problems(&yaml));
        let c = load_str(&yaml).unwrap().config;
        let acme = c.acme.unwrap();
        assert_eq!(acme.directory, super::LETS_ENCRYPT);
        assert_eq!(acme.renew_before.get().as_secs(), 30 * 86_400);
        assert_eq!(acme.check_interval.get().as_secs(), 3600);
    }

    #[test]
    fn entries_and_section_problems_name_their_field() {
        let yaml = "\
acme: {storage: '', directory: http://ca.test/dir, email: 'ops at example', renew_before: 0s, check_interval: 10ms}
listeners:
  - address: 127.0.0.1:443
    tls:
      certificates:
        - {acme: true, snis: ['*.app.test'], cert: /etc/app.crt}
        - {acme: true}
";
        assert_eq!(
            problems(yaml),
            [
                "acme.tos_accepted: set `tos_accepted: true` to agree to the CA's terms of service; it refuses an account without",
                "acme.directory: \"http://ca.test/dir\" is not an https:// URL; ACME directories are served over HTTPS",
                "acme.storage: name a directory for the account key and certificates",
                "acme.email: \"ops at example\" is not an email address",
                "acme.renew_before: must be more than 0 (30d is usual)",
                "acme.check_interval: must be at least 1s",
                "listeners[0].tls.certificates[0].acme: the CA checks HTTP-01 challenges over plain HTTP: add a listener without `tls` (on port 80 for a public CA) to answer them",
                "listeners[0].tls.certificates[0].cert: an `acme: true` certificate is issued by the CA: leave this out",
                "listeners[0].tls.certificates[0].snis[0]: an HTTP-01 challenge cannot prove a wildcard name; list the hosts, or give a certificate from a file",
                "listeners[0].tls.certificates[1].acme: the CA checks HTTP-01 challenges over plain HTTP: add a listener without `tls` (on port 80 for a public CA) to answer them",
                "listeners[0].tls.certificates[1].snis: name the hosts to obtain the certificate for",
            ]
        );
        let no_section = "listeners:\n  - address: 127.0.0.1:80\n  - address: 127.0.0.1:443\n    tls: {certificates: [{acme: true, snis: [a.test]}]}\n";
        assert_eq!(
            problems(no_section),
            ["listeners[1].tls.certificates[0].acme: needs the top-level `acme:` section (its CA, storage and terms of service)"]
        );
    }
}
