//! Keys and the envelope that seals every staged object.
//!
//! A container key is 32 bytes from the operating system's CSPRNG, one per container
//! (one task round), never reused. It never leaves this module in a printable form:
//! `Debug` shows `[REDACTED]`, and its bytes are zeroed when it is dropped. Everything
//! else is derived from it with BLAKE3 `derive_key`, each use under its own context
//! string, so that no two purposes ever share a key.

pub mod envelope;
pub mod keyfile;

use std::fmt;

use zeroize::Zeroizing;

/// Contexts for BLAKE3 `derive_key`: globally unique, fixed forever (changing one is a
/// new format version).
mod context {
    pub const KEY_ID: &str = "ferry 2026-11-24 container key id v1";
    pub const OBJECT_NAME: &str = "ferry 2026-11-24 staged object name v1";
    pub const ENCRYPTION: &str = "ferry 2026-11-24 package encryption key v1";
    pub const AUTHENTICATION: &str = "ferry 2026-11-24 package authentication key v1";
    pub const SEGMENT_IV: &str = "ferry 2026-12-01 resumable segment iv v1";
}

/// The key of one staging container.
pub struct ContainerKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for ContainerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContainerKey([REDACTED])")
    }
}

/// The operating system could not give random bytes.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// Fills `buf` from the operating system's CSPRNG.
pub fn random(buf: &mut [u8]) -> Result<(), RandomError> {
    use rand::TryRng as _;
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .map_err(|e| RandomError(e.to_string()))
}

impl ContainerKey {
    /// A fresh random key.
    pub fn generate() -> Result<ContainerKey, RandomError> {
        let mut key = Zeroizing::new([0u8; 32]);
        random(key.as_mut())?;
        Ok(ContainerKey(key))
    }

    /// A key from its bytes (read from a key file).
    pub fn from_bytes(bytes: [u8; 32]) -> ContainerKey {
        ContainerKey(Zeroizing::new(bytes))
    }

    /// The key's bytes, for its key file only.
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Names the key without revealing it: an importer finds the right key file, and a
    /// package sealed under another key is refused before anything is tried.
    pub fn id(&self) -> [u8; 16] {
        let full = blake3::derive_key(context::KEY_ID, self.0.as_ref());
        let mut id = [0u8; 16];
        id.copy_from_slice(&full[..16]);
        id
    }

    /// The name of a staged object: derived from the key, so that someone who can open
    /// the container's folder but does not hold the key cannot guess names.
    pub fn object_name(&self, package_id: u64) -> String {
        let mut hasher = blake3::Hasher::new_derive_key(context::OBJECT_NAME);
        hasher.update(self.0.as_ref());
        hasher.update(&package_id.to_le_bytes());
        hasher.finalize().to_hex()[..32].to_string()
    }

    /// The key the IVs of a resumable object's segments come from.
    fn segment_iv_key(&self, salt: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        let mut material = Zeroizing::new([0u8; 64]);
        material[..32].copy_from_slice(self.0.as_ref());
        material[32..].copy_from_slice(salt);
        Zeroizing::new(blake3::derive_key(context::SEGMENT_IV, material.as_ref()))
    }

    /// The encryption and authentication keys of one object, from its random salt.
    fn subkeys(&self, salt: &[u8; 32]) -> Subkeys {
        let mut material = Zeroizing::new([0u8; 64]);
        material[..32].copy_from_slice(self.0.as_ref());
        material[32..].copy_from_slice(salt);
        Subkeys {
            encryption: Zeroizing::new(blake3::derive_key(context::ENCRYPTION, material.as_ref())),
            authentication: Zeroizing::new(blake3::derive_key(
                context::AUTHENTICATION,
                material.as_ref(),
            )),
        }
    }
}

/// One object's keys; zeroed on drop.
struct Subkeys {
    encryption: Zeroizing<[u8; 32]>,
    authentication: Zeroizing<[u8; 32]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = ContainerKey::from_bytes([0xAB; 32]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "ContainerKey([REDACTED])");
        assert!(!shown.to_lowercase().contains("ab"));
    }

    #[test]
    fn derived_values_differ_per_purpose_and_salt() {
        let key = ContainerKey::from_bytes([7; 32]);
        let a = key.subkeys(&[1; 32]);
        let b = key.subkeys(&[2; 32]);
        assert_ne!(*a.encryption, *a.authentication);
        assert_ne!(*a.encryption, *b.encryption);
        assert_ne!(key.object_name(1), key.object_name(2));
        assert_eq!(key.object_name(1).len(), 32);
        assert_ne!(key.id(), ContainerKey::from_bytes([8; 32]).id());
    }

    #[test]
    fn generated_keys_differ() {
        let a = ContainerKey::generate().unwrap();
        let b = ContainerKey::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }
}
