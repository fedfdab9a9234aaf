//! The fixed-size key a counter is stored under: a keyed 128-bit digest of who the
//! request is counted for.
//!
//! Identifiers can be long and are chosen by clients (`limit_by: header` counts by a
//! header value of up to the gateway's header limit), so they are never stored: a
//! counter costs the same 16 bytes of key whatever it counts. The digest is SipHash-2-4
//! with its 128-bit output, keyed with 128 bits drawn at random for each plugin
//! instance: a pseudo-random function made for short inputs, a few hundred instructions
//! a request (the keyed SHA-256 used before cost about ten times that). Without the secret a client cannot compute digests, so it cannot craft
//! identifiers that collide with another client's counter (sharing its allowance) or
//! that all land in the same shard; and 128 bits make accidental collisions negligible
//! (about 2^-64 after 2^32 keys).

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;

use ring::rand::{SecureRandom, SystemRandom};
use siphasher::sip128::{Hasher128 as _, SipHasher24};

use super::limiter::Identifier;

/// A counter's key: the keyed 128-bit digest of the identifier, as two words so that
/// it needs no more than 8-byte alignment (a `u128` would pad the map's entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyDigest {
    /// Bits 0..64: the hash the shard's map uses (see [`DigestHasher`]).
    lo: u64,
    /// Bits 64..128: which shard, and which entries to consider for eviction.
    hi: u64,
}

impl KeyDigest {
    /// The bits that pick a shard and eviction candidates. Independent of the bits the
    /// map hashes with, so keys of one shard still spread over that shard's buckets.
    pub fn spread(self) -> u64 {
        self.hi
    }
}

impl Hash for KeyDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed uniform hash: hashing it again would only cost time.
        state.write_u64(self.lo);
    }
}

/// A [`Hasher`] that passes a [`KeyDigest`] through: the digest is already keyed and
/// uniform, so the map need not run SipHash over it again.
#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `KeyDigest`; fold anything else in case.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

/// The `BuildHasher` of the counter maps.
pub(crate) type BuildDigestHasher = BuildHasherDefault<DigestHasher>;

/// The operating system's random source failed, so no secret could be drawn.
#[derive(Debug, thiserror::Error)]
#[error("could not draw a random secret for the rate-limiting keys")]
pub(crate) struct RandomUnavailable;

/// Turns identifiers into [`KeyDigest`]s with one instance's secret.
pub(crate) struct KeyHasher {
    /// SipHash-2-4 keyed with the instance's secret; copied for each digest.
    seeded: SipHasher24,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print anything derived from the secret.
        f.write_str("KeyHasher")
    }
}

/// Domain separation: an IPv4 address, an IPv6 address and a name never share a digest
/// even when their bytes are equal.
const KIND_V4: u8 = 4;
const KIND_V6: u8 = 6;
const KIND_NAME: u8 = b'n';

impl KeyHasher {
    /// A hasher with a fresh random 128-bit secret.
    pub fn new() -> Result<Self, RandomUnavailable> {
        let mut secret = [0u8; 16];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| RandomUnavailable)?;
        Ok(KeyHasher {
            seeded: SipHasher24::new_with_key(&secret),
        })
    }

    /// The digest of `id`.
    pub fn digest(&self, id: Identifier<'_>) -> KeyDigest {
        let mut c = self.seeded;
        match id {
            Identifier::Ip(IpAddr::V4(ip)) => {
                c.write(&[KIND_V4]);
                c.write(&ip.octets());
            }
            Identifier::Ip(IpAddr::V6(ip)) => {
                c.write(&[KIND_V6]);
                c.write(&ip.octets());
            }
            Identifier::Name(name) => {
                c.write(&[KIND_NAME]);
                c.write(name);
            }
        }
        let d = c.finish128();
        KeyDigest { lo: d.h1, hi: d.h2 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_sixteen_bytes_whatever_it_counts() {
        assert_eq!(std::mem::size_of::<KeyDigest>(), 16);
        assert_eq!(std::mem::align_of::<KeyDigest>(), 8);
    }

    #[test]
    fn digests_are_keyed_and_separate_kinds() {
        let a = KeyHasher::new().expect("random");
        let b = KeyHasher::new().expect("random");
        let alice = Identifier::Name(b"alice");
        assert_eq!(a.digest(alice), a.digest(alice));
        // Another secret, another digest: a client cannot predict them.
        assert_ne!(a.digest(alice), b.digest(alice));
        assert_ne!(a.digest(alice), a.digest(Identifier::Name(b"alicf")));
        // The name "\n\0\0\x01" has the bytes of 10.0.0.1, but is another identifier.
        let ip = Identifier::Ip(IpAddr::from([10, 0, 0, 1]));
        assert_ne!(a.digest(ip), a.digest(Identifier::Name(&[10, 0, 0, 1])));
        let v6 = Identifier::Ip("::a00:1".parse().expect("ip"));
        assert_ne!(a.digest(ip), a.digest(v6));
    }
}
