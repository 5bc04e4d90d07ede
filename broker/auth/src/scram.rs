//! SCRAM mechanisms and stored credentials, as Kafka's `ScramMechanism`, `ScramCredential` and
//! `ScramFormatter`.
//!
//! The broker stores, per user and mechanism, the salt, the iteration count, StoredKey and
//! ServerKey (RFC 5802 §3) — never the password nor the salted password — so a leaked store
//! does not let anyone log in.
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Kafka refuses fewer iterations (`ScramMechanism.minIterations`)...
pub const MIN_ITERATIONS: i32 = 4096;
/// ...and more than this (AlterUserScramCredentials' "Too many iterations").
pub const MAX_ITERATIONS: i32 = 16384;

/// The SCRAM mechanisms Kafka knows, with the type codes its admin APIs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The `mechanism` code of Describe/AlterUserScramCredentials.
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_alg(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2_alg(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// Output length of the hash, also the salted password's length.
    pub fn hash_len(self) -> usize {
        self.digest_alg().output_len()
    }

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac_alg(), key), data)
            .as_ref()
            .to_vec()
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_alg(), data).as_ref().to_vec()
    }

    /// RFC 5802 `Hi(password, salt, i)`: PBKDF2 with the mechanism's HMAC. Kafka passes the
    /// password's UTF-8 bytes without SASLprep; so does Spate, or the same password would
    /// derive different keys on the two.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: i32) -> Vec<u8> {
        let mut out = vec![0u8; self.hash_len()];
        let rounds = std::num::NonZeroU32::new(iterations.max(1) as u32)
            .unwrap_or(std::num::NonZeroU32::MIN);
        pbkdf2::derive(self.pbkdf2_alg(), rounds, salt, password, &mut out);
        out
    }

    pub(crate) fn client_key(self, salted_password: &[u8]) -> Vec<u8> {
        self.hmac(salted_password, b"Client Key")
    }
}

/// What a broker stores for one user and mechanism (Kafka's `UserScramCredentialRecord`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// Keys stay out of logs (openraft Debug-prints log entries), as Kafka prints "[hidden]".
impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ScramCredential(iterations={}, keys [hidden])",
            self.iterations
        )
    }
}

impl ScramCredential {
    /// The credential for a salted password (what AlterUserScramCredentials carries).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: i32,
    ) -> Self {
        let client_key = mechanism.client_key(salted_password);
        Self {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential for a password, with the given salt.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &[u8],
        salt: Vec<u8>,
        iterations: i32,
    ) -> Self {
        let salted = mechanism.salted_password(password, &salt, iterations);
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential for a password with a fresh random salt (Kafka uses 32-byte salts...
    /// of a random string; the length is not part of the contract).
    pub fn generate(mechanism: ScramMechanism, password: &[u8], iterations: i32) -> Self {
        let mut salt = vec![0u8; 32];
        crate::fill_random(&mut salt);
        Self::from_password(mechanism, password, salt, iterations)
    }

    /// Whether `password` is the one this credential was made from (PLAIN over SCRAM
    /// credentials). Constant-time in the comparison.
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &[u8]) -> bool {
        let salted = mechanism.salted_password(password, &self.salt, self.iterations);
        let stored = mechanism.hash(&mechanism.client_key(&salted));
        bool::from(stored.ct_eq(&self.stored_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    #[test]
    fn codes_and_names_are_kafkas() {
        assert_eq!(ScramMechanism::from_code(1), Some(ScramMechanism::Sha256));
        assert_eq!(ScramMechanism::from_code(2), Some(ScramMechanism::Sha512));
        assert_eq!(ScramMechanism::from_code(0), None);
        assert_eq!(
            ScramMechanism::from_name("SCRAM-SHA-512"),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(ScramMechanism::from_name("scram-sha-512"), None);
    }

    /// RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
    #[test]
    fn derives_rfc_7677_keys() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let m = ScramMechanism::Sha256;
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let cred = ScramCredential::from_salted_password(m, &salted, salt, 4096);
        // ServerSignature of the RFC's exchange, from the same ServerKey.
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sig = m.hmac(&cred.server_key, auth.as_bytes());
        assert_eq!(
            STANDARD.encode(sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        assert!(cred.matches_password(m, b"pencil"));
        assert!(!cred.matches_password(m, b"pencil "));
    }

    #[test]
    fn debug_hides_the_keys() {
        let cred = ScramCredential::from_password(ScramMechanism::Sha512, b"pw", vec![1; 8], 4096);
        let shown = format!("{cred:?}");
        assert!(
            shown.contains("4096") && shown.contains("[hidden]"),
            "{shown}"
        );
        assert!(!shown.contains("stored_key"));
    }
}
