//! The contract stays small: no Pingora and no cryptography among its dependencies, and
//! no Pingora type named anywhere in its source, so that a plugin crate built on it
//! survives a Pingora upgrade and does not compile a TLS or crypto stack.

use std::path::Path;

const FORBIDDEN_DEPENDENCIES: &[&str] = &[
    "pingora",
    "ring",
    "argon2",
    "bcrypt",
    "rsa",
    "sha2",
    "sha1",
    "hmac",
    "openssl",
    "boring",
    "rustls",
    "aws-lc",
    "subtle",
    "dashmap",
    "pingway-plugins",
];

#[test]
fn the_manifest_names_no_pingora_and_no_crypto() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .expect("the contract's Cargo.toml");
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table")
        .split("\n[")
        .next()
        .unwrap_or_default();
    let names: Vec<&str> = deps
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['=', '.']).next())
        .map(str::trim)
        .collect();
    assert!(!names.is_empty(), "no dependency parsed from {deps:?}");
    for name in names {
        for bad in FORBIDDEN_DEPENDENCIES {
            assert!(!name.starts_with(bad), "the contract depends on {name}");
        }
    }
}

#[test]
fn no_source_file_names_a_pingora_type() {
    fn walk(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("readable source dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("readable source");
                for (i, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or_default();
                    if code.contains("pingora") {
                        found.push(format!("{}:{}: {line}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "Pingora named in the contract:\n{}",
        found.join("\n")
    );
}
