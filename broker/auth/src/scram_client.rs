//! The client side of a SCRAM exchange, for Spate's own logins (tests, brokers, operator).
use subtle::ConstantTimeEq;

use crate::scram::ScramMechanism;
use crate::scram_messages::{
    encode_saslname, parse_server_final, ClientFinal, ScramError, ServerFirst,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

pub struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    password: String,
    nonce: String,
    authzid: Option<String>,
    /// Set once server-first arrived: the ServerSignature to expect.
    expected_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str, nonce: &str) -> Self {
        Self {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
            nonce: nonce.to_string(),
            authzid: None,
            expected_signature: None,
        }
    }

    /// Asks to act as `authzid` (servers refuse any but the user itself).
    pub fn with_authzid(mut self, authzid: &str) -> Self {
        self.authzid = Some(authzid.to_string());
        self
    }

    fn gs2_header(&self) -> String {
        match &self.authzid {
            Some(a) => format!("n,a={},", encode_saslname(a)),
            None => "n,,".to_string(),
        }
    }

    fn first_bare(&self) -> String {
        format!("n={},r={}", encode_saslname(&self.user), self.nonce)
    }

    pub fn first_message(&self) -> String {
        format!("{}{}", self.gs2_header(), self.first_bare())
    }

    /// Takes server-first, returns client-final (with the proof).
    pub fn final_message(&mut self, server_first: &[u8]) -> Result<String, ScramError> {
        let sf = ServerFirst::parse(server_first)?;
        if !sf.nonce.starts_with(&self.nonce) || sf.nonce.len() == self.nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &sf.salt, sf.iterations);
        let client_key = m.client_key(&salted);
        let stored_key = m.hash(&client_key);
        let without_proof = ClientFinal::format_without_proof(&self.gs2_header(), &sf.nonce);
        let auth_message = format!(
            "{},{},{}",
            self.first_bare(),
            std::str::from_utf8(server_first).unwrap_or_default(),
            without_proof
        );
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.expected_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    /// Checks server-final: the server proved it knows the credential too.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let got = parse_server_final(server_final)?;
        let expected = self
            .expected_signature
            .as_ref()
            .ok_or(ScramError::IllegalState)?;
        if bool::from(got.ct_eq(expected)) {
            Ok(())
        } else {
            Err(ScramError::InvalidServerSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3 from the client's side.
    #[test]
    fn produces_the_rfc_7677_client_messages() {
        let mut c = ScramClient::new(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(c.first_message(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let last = c
            .final_message(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert_eq!(
            c.verify_server_final(b"v=AAAA").unwrap_err(),
            ScramError::InvalidServerSignature
        );
    }

    #[test]
    fn refuses_a_server_that_drops_the_client_nonce() {
        let mut c = ScramClient::new(ScramMechanism::Sha256, "user", "pencil", "abc");
        assert_eq!(
            c.final_message(b"r=xyz,s=AAAA,i=4096").unwrap_err(),
            ScramError::NonceMismatch
        );
    }
}
