//! The server side of a SCRAM exchange (Kafka's `ScramSaslServer`): client-first in,
//! server-first out; client-final in, server-final out and the authenticated user.
use subtle::ConstantTimeEq;

use crate::scram::{ScramCredential, ScramMechanism};
use crate::scram_messages::{
    format_server_final, ClientFinal, ClientFirst, ScramError, ServerFirst,
};

pub struct ScramServer {
    mechanism: ScramMechanism,
    state: State,
}

enum State {
    AwaitingFirst,
    AwaitingFinal(Box<Exchange>),
    Done,
}

struct Exchange {
    first: ClientFirst,
    server_first: ServerFirst,
    credential: ScramCredential,
}

/// A finished exchange: who logged in, and the server-final message to send.
#[derive(Debug)]
pub struct ScramServerFinal {
    pub username: String,
    pub response: Vec<u8>,
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        Self {
            mechanism,
            state: State::AwaitingFirst,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Whether the next message is client-first (else client-final).
    pub fn expects_client_first(&self) -> bool {
        matches!(self.state, State::AwaitingFirst)
    }

    /// Takes client-first, returns server-first. `credential` finds the user's stored
    /// credential for this mechanism; `server_nonce` is appended to the client's nonce.
    /// An unknown user fails here with the same error as a wrong proof later, as Kafka does.
    pub fn client_first(
        &mut self,
        message: &[u8],
        server_nonce: &str,
        credential: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, ScramError> {
        if !matches!(self.state, State::AwaitingFirst) {
            return Err(ScramError::IllegalState);
        }
        self.state = State::Done;
        let first = ClientFirst::parse(message)?;
        if first
            .extensions
            .iter()
            .any(|(k, v)| k == "tokenauth" && v.eq_ignore_ascii_case("true"))
        {
            return Err(ScramError::TokenAuthUnsupported);
        }
        let credential = credential(&first.username).ok_or(ScramError::InvalidCredentials)?;
        let server_first = ServerFirst {
            nonce: format!("{}{server_nonce}", first.nonce),
            salt: credential.salt.clone(),
            iterations: credential.iterations,
        };
        let out = server_first.format().into_bytes();
        self.state = State::AwaitingFinal(Box::new(Exchange {
            first,
            server_first,
            credential,
        }));
        Ok(out)
    }

    /// Takes client-final, checks nonce, channel binding and proof, returns server-final.
    pub fn client_final(&mut self, message: &[u8]) -> Result<ScramServerFinal, ScramError> {
        let State::AwaitingFinal(exchange) = std::mem::replace(&mut self.state, State::Done) else {
            return Err(ScramError::IllegalState);
        };
        let Exchange {
            first,
            server_first,
            credential,
        } = *exchange;
        let last = ClientFinal::parse(message)?;
        // `endsWith`, not equality, as Kafka 3.x checked: librdkafka before 2.x.y (kcat 1.7.1
        // ships 2.0.2) sends its own nonce again in front of the combined one and signs what it
        // sent. Kafka 4.4 compares exactly and refuses those clients; Spate keeps them working:
        // the server nonce is still required, and the proof still covers what was sent.
        if !last.nonce.ends_with(&server_first.nonce) {
            return Err(ScramError::NonceMismatch);
        }
        if last.channel_binding != first.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingMismatch);
        }
        let auth_message = format!(
            "{},{},{}",
            first.bare,
            server_first.format(),
            last.without_proof
        );
        let m = self.mechanism;
        let signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if last.proof.len() != signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key: Vec<u8> = last
            .proof
            .iter()
            .zip(&signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !bool::from(m.hash(&client_key).ct_eq(&credential.stored_key)) {
            return Err(ScramError::InvalidCredentials);
        }
        if let Some(authzid) = first.authzid.filter(|a| *a != first.username) {
            return Err(ScramError::AuthorizationIdMismatch(authzid));
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        Ok(ScramServerFinal {
            username: first.username,
            response: format_server_final(&server_signature).into_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScramClient;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    fn rfc_7677_credential() -> ScramCredential {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        ScramCredential::from_password(ScramMechanism::Sha256, b"pencil", salt, 4096)
    }

    /// The exchange of RFC 7677 §3, byte for byte.
    #[test]
    fn answers_the_rfc_7677_exchange() {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let first = server
            .client_first(
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
                |u| (u == "user").then(rfc_7677_credential),
            )
            .unwrap();
        assert_eq!(
            first,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let done = server
            .client_final(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(done.username, "user");
        assert_eq!(
            done.response,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    fn exchange(
        mechanism: ScramMechanism,
        stored: &ScramCredential,
        user: &str,
        password: &str,
    ) -> Result<String, ScramError> {
        let mut client = ScramClient::new(mechanism, user, password, "clientnonce");
        let mut server = ScramServer::new(mechanism);
        let sf = server.client_first(client.first_message().as_bytes(), "servernonce", |u| {
            (u == "alice").then(|| stored.clone())
        })?;
        let cf = client.final_message(&sf)?;
        let done = server.client_final(cf.as_bytes())?;
        client.verify_server_final(&done.response)?;
        Ok(done.username)
    }

    #[test]
    fn a_client_with_the_password_logs_in_with_both_mechanisms() {
        for m in ScramMechanism::ALL {
            let stored = ScramCredential::generate(m, b"secret", 4096);
            assert_eq!(exchange(m, &stored, "alice", "secret").unwrap(), "alice");
        }
    }

    #[test]
    fn a_wrong_password_and_an_unknown_user_fail_alike() {
        let m = ScramMechanism::Sha512;
        let stored = ScramCredential::generate(m, b"secret", 4096);
        let wrong = exchange(m, &stored, "alice", "guess").unwrap_err();
        let unknown = exchange(m, &stored, "mallory", "secret").unwrap_err();
        assert_eq!(wrong, ScramError::InvalidCredentials);
        assert_eq!(wrong.to_string(), unknown.to_string());
    }

    /// librdkafka (2.x) repeats its nonce before the combined one in client-final; Kafka
    /// accepts that, and so must Spate.
    #[test]
    fn accepts_librdkafkas_repeated_client_nonce() {
        let m = ScramMechanism::Sha256;
        let stored = ScramCredential::from_password(m, b"pw", vec![5; 16], 4096);
        let mut s = ScramServer::new(m);
        s.client_first(b"n,,n=alice,r=cn", "sn", |_| Some(stored.clone()))
            .unwrap();
        let without_proof = "c=biws,r=cncnsn";
        let auth = format!(
            "n=alice,r=cn,r=cnsn,s={},i=4096,{without_proof}",
            STANDARD.encode([5u8; 16])
        );
        let salted = m.salted_password(b"pw", &[5; 16], 4096);
        let key = m.client_key(&salted);
        let sig = m.hmac(&stored.stored_key, auth.as_bytes());
        let proof: Vec<u8> = key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let last = format!("{without_proof},p={}", STANDARD.encode(proof));
        assert_eq!(s.client_final(last.as_bytes()).unwrap().username, "alice");
    }

    #[test]
    fn a_wrong_nonce_or_binding_or_state_fails() {
        let m = ScramMechanism::Sha256;
        let stored = rfc_7677_credential();
        let start = |s: &mut ScramServer| {
            s.client_first(b"n,,n=user,r=abc", "xyz", |_| Some(stored.clone()))
                .unwrap()
        };
        let mut s = ScramServer::new(m);
        start(&mut s);
        assert_eq!(
            s.client_final(b"c=biws,r=abcxyZ,p=AAAA").unwrap_err(),
            ScramError::NonceMismatch
        );
        assert_eq!(
            s.client_final(b"c=biws,r=abcxyz,p=AAAA").unwrap_err(),
            ScramError::IllegalState,
            "one failed attempt ends the exchange"
        );
        let mut s = ScramServer::new(m);
        start(&mut s);
        assert_eq!(
            s.client_final(b"c=eSws,r=abcxyz,p=AAAA").unwrap_err(),
            ScramError::ChannelBindingMismatch
        );
        let mut s = ScramServer::new(m);
        start(&mut s);
        assert_eq!(
            s.client_final(b"c=biws,r=abcxyz,p=AAAA").unwrap_err(),
            ScramError::InvalidCredentials,
            "a short proof"
        );
        let mut s = ScramServer::new(m);
        assert_eq!(
            s.client_final(b"c=biws,r=a,p=AA==").unwrap_err(),
            ScramError::IllegalState
        );
    }

    #[test]
    fn token_auth_and_foreign_authorization_ids_are_refused() {
        let m = ScramMechanism::Sha256;
        let stored = ScramCredential::generate(m, b"pw", 4096);
        let mut s = ScramServer::new(m);
        assert_eq!(
            s.client_first(b"n,,n=alice,r=abc,tokenauth=true", "x", |_| Some(
                stored.clone()
            ))
            .unwrap_err(),
            ScramError::TokenAuthUnsupported
        );
        // A client acting for someone else: the proof is right, the authzid is not.
        let mut client = ScramClient::new(m, "alice", "pw", "cn").with_authzid("bob");
        let mut s = ScramServer::new(m);
        let sf = s
            .client_first(client.first_message().as_bytes(), "sn", |_| {
                Some(stored.clone())
            })
            .unwrap();
        let cf = client.final_message(&sf).unwrap();
        assert_eq!(
            s.client_final(cf.as_bytes()).unwrap_err(),
            ScramError::AuthorizationIdMismatch("bob".into())
        );
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use crate::PlainResponse;
    use proptest::prelude::*;

    /// Derived once: PBKDF2 per case would dominate the run.
    fn credential() -> &'static ScramCredential {
        static CRED: std::sync::OnceLock<ScramCredential> = std::sync::OnceLock::new();
        CRED.get_or_init(|| {
            ScramCredential::from_password(ScramMechanism::Sha256, b"pw", vec![1; 16], 4096)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The stable-toolchain side of the `sasl_tokens` fuzz target.
        #[test]
        fn arbitrary_tokens_are_refused_not_panicked_on(first in proptest::collection::vec(any::<u8>(), 0..256), last in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = PlainResponse::parse(&first);
            let cred = credential().clone();
            let mut s = ScramServer::new(ScramMechanism::Sha256);
            let mut prefixed = b"n,,n=u,r=".to_vec();
            prefixed.extend_from_slice(&first);
            if s.client_first(&prefixed, "x", |_| Some(cred.clone())).is_ok() {
                let mut fin = b"c=biws,r=".to_vec();
                fin.extend_from_slice(&last);
                prop_assert!(s.client_final(&fin).is_err());
            }
        }
    }
}
