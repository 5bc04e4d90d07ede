//! SASL/PLAIN (RFC 4616): `authzid NUL authcid NUL passwd` in one message, as Kafka's
//! `PlainSaslServer` reads it. Spate checks the password against the user's SCRAM credential
//! (Kafka checks JAAS `user_<name>` entries), so one set of users serves both mechanisms.

/// A parsed PLAIN response. The password is kept only as long as the check takes.
pub struct PlainResponse {
    pub username: String,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for PlainResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlainResponse({}, password [hidden])", self.username)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("Invalid SASL/PLAIN response: expected 3 tokens, got {0}")]
    Malformed(usize),
    #[error("Authentication failed: username not specified")]
    NoUsername,
    #[error("Authentication failed: password not specified")]
    NoPassword,
    #[error("Authentication failed: Client requested an authorization id that is different from username")]
    AuthorizationIdMismatch,
    #[error("Authentication failed: Invalid username or password")]
    InvalidCredentials,
}

impl PlainResponse {
    pub fn parse(message: &[u8]) -> Result<Self, PlainError> {
        let tokens: Vec<&[u8]> = message.split(|b| *b == 0).collect();
        let [authzid, user, password] = tokens[..] else {
            return Err(PlainError::Malformed(tokens.len()));
        };
        let user = std::str::from_utf8(user).map_err(|_| PlainError::InvalidCredentials)?;
        if user.is_empty() {
            return Err(PlainError::NoUsername);
        }
        if password.is_empty() {
            return Err(PlainError::NoPassword);
        }
        if !authzid.is_empty() && authzid != user.as_bytes() {
            return Err(PlainError::AuthorizationIdMismatch);
        }
        Ok(Self {
            username: user.to_string(),
            password: password.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_kafka_accepts() {
        let r = PlainResponse::parse(b"\0alice\0secret").unwrap();
        assert_eq!(r.username, "alice");
        assert_eq!(r.password, b"secret");
        assert!(PlainResponse::parse(b"alice\0alice\0secret").is_ok());
        assert!(!format!("{r:?}").contains("secret"));
    }

    #[test]
    fn refuses_what_kafka_refuses() {
        assert_eq!(
            PlainResponse::parse(b"alice\0secret").unwrap_err(),
            PlainError::Malformed(2)
        );
        assert_eq!(
            PlainResponse::parse(b"\0\0secret").unwrap_err(),
            PlainError::NoUsername
        );
        assert_eq!(
            PlainResponse::parse(b"\0alice\0").unwrap_err(),
            PlainError::NoPassword
        );
        assert_eq!(
            PlainResponse::parse(b"bob\0alice\0pw").unwrap_err(),
            PlainError::AuthorizationIdMismatch
        );
        assert_eq!(
            PlainResponse::parse(b"\0a\0b\0c").unwrap_err(),
            PlainError::Malformed(4)
        );
    }
}
