//! The four SCRAM messages (RFC 5802 §7), parsed and formatted as Kafka's `ScramMessages`.
//!
//! Only what Kafka accepts is accepted: the gs2 flag `n` (no channel binding), an optional
//! authorization id, printable nonces, `key=value` extensions.
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Why an exchange failed. The `Display` of every variant a client can see is the same
/// generic text for credential problems, so a reply never tells whether a user exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("invalid SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("authentication failed: invalid credentials")]
    InvalidCredentials,
    #[error("invalid client nonce in the final client message")]
    NonceMismatch,
    #[error("invalid channel binding in the final client message")]
    ChannelBindingMismatch,
    #[error("authorization id {0:?} is not the authenticated user")]
    AuthorizationIdMismatch(String),
    #[error("delegation tokens are not supported")]
    TokenAuthUnsupported,
    #[error("invalid server signature")]
    InvalidServerSignature,
    #[error("server reported an error: {0}")]
    ServerError(String),
    #[error("unexpected message in this state")]
    IllegalState,
}

/// `n,[a=authzid],n=<saslname>,r=<nonce>[,ext=value]*`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    pub gs2_header: String,
    pub authzid: Option<String>,
    pub username: String,
    pub nonce: String,
    pub extensions: Vec<(String, String)>,
    /// client-first-message-bare: part of the AuthMessage both sides sign.
    pub bare: String,
}

impl ClientFirst {
    pub fn parse(bytes: &[u8]) -> Result<Self, ScramError> {
        let text = ascii(bytes)?;
        let rest = text.strip_prefix("n,").ok_or(ScramError::Malformed(
            "only gs2 flag 'n' (no channel binding) is supported",
        ))?;
        let (authz, bare) = rest
            .split_once(',')
            .ok_or(ScramError::Malformed("no gs2 header"))?;
        let authzid = match authz {
            "" => None,
            a => Some(decode_saslname(
                a.strip_prefix("a=")
                    .ok_or(ScramError::Malformed("bad authorization id"))?,
            )?),
        };
        let mut parts = bare.split(',');
        let username = decode_saslname(
            parts
                .next()
                .and_then(|p| p.strip_prefix("n="))
                .ok_or(ScramError::Malformed("no user name"))?,
        )?;
        if username.is_empty() {
            return Err(ScramError::Malformed("empty user name"));
        }
        let nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        check_nonce(nonce)?;
        let extensions = parts.map(extension).collect::<Result<_, _>>()?;
        Ok(Self {
            gs2_header: format!("n,{authz},"),
            authzid,
            username,
            nonce: nonce.to_string(),
            extensions,
            bare: bare.to_string(),
        })
    }

    pub fn format(username: &str, nonce: &str) -> String {
        format!("n,,n={},r={nonce}", encode_saslname(username))
    }
}

/// `r=<nonce>,s=<salt>,i=<iterations>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFirst {
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: i32,
}

impl ServerFirst {
    pub fn format(&self) -> String {
        format!(
            "r={},s={},i={}",
            self.nonce,
            STANDARD.encode(&self.salt),
            self.iterations
        )
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, ScramError> {
        let text = ascii(bytes)?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramError::ServerError(e.to_string()));
        }
        let mut parts = text.split(',');
        let mut field = |key: &'static str| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(key))
                .ok_or(ScramError::Malformed("server-first message"))
        };
        let nonce = field("r=")?.to_string();
        let salt = STANDARD
            .decode(field("s=")?)
            .map_err(|_| ScramError::Malformed("salt is not base64"))?;
        let iterations = field("i=")?
            .parse()
            .map_err(|_| ScramError::Malformed("iterations"))?;
        Ok(Self {
            nonce,
            salt,
            iterations,
        })
    }
}

/// `c=<channel binding>,r=<nonce>[,ext]*,p=<proof>`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal {
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    pub proof: Vec<u8>,
    /// client-final-message-without-proof, signed in the AuthMessage.
    pub without_proof: String,
}

impl ClientFinal {
    pub fn parse(bytes: &[u8]) -> Result<Self, ScramError> {
        let text = ascii(bytes)?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut parts = without_proof.split(',');
        let channel_binding = parts
            .next()
            .and_then(|p| p.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel binding"))?;
        let nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        for p in parts {
            extension(p)?;
        }
        Ok(Self {
            channel_binding: STANDARD
                .decode(channel_binding)
                .map_err(|_| ScramError::Malformed("channel binding is not base64"))?,
            nonce: nonce.to_string(),
            proof: STANDARD
                .decode(proof)
                .map_err(|_| ScramError::Malformed("proof is not base64"))?,
            without_proof: without_proof.to_string(),
        })
    }

    pub fn format_without_proof(gs2_header: &str, nonce: &str) -> String {
        format!("c={},r={nonce}", STANDARD.encode(gs2_header))
    }
}

/// `v=<server signature>` or `e=<error>`
pub fn format_server_final(signature: &[u8]) -> String {
    format!("v={}", STANDARD.encode(signature))
}

pub fn parse_server_final(bytes: &[u8]) -> Result<Vec<u8>, ScramError> {
    let text = ascii(bytes)?;
    if let Some(e) = text.strip_prefix("e=") {
        return Err(ScramError::ServerError(e.to_string()));
    }
    let v = text
        .split(',')
        .next()
        .and_then(|p| p.strip_prefix("v="))
        .ok_or(ScramError::Malformed("server-final message"))?;
    STANDARD
        .decode(v)
        .map_err(|_| ScramError::Malformed("server signature is not base64"))
}

fn ascii(bytes: &[u8]) -> Result<&str, ScramError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    Ok(text)
}

/// RFC 5802 nonces are printable ASCII except ','.
fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    if nonce.is_empty()
        || !nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(ScramError::Malformed("nonce is not printable"));
    }
    Ok(())
}

fn extension(part: &str) -> Result<(String, String), ScramError> {
    let (k, v) = part
        .split_once('=')
        .ok_or(ScramError::Malformed("extension without '='"))?;
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ScramError::Malformed("bad extension name"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// saslname: ',' and '=' travel as `=2C` and `=3D`; any other '=' is invalid.
pub fn decode_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3);
        match esc {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad '=' escape in a name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_client_first_message() {
        let m = ClientFirst::parse(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL").unwrap();
        assert_eq!(m.username, "user");
        assert_eq!(m.nonce, "fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(m.bare, "n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        assert_eq!(m.gs2_header, "n,,");
        assert_eq!(m.authzid, None);

        let m = ClientFirst::parse(b"n,a=a=3Db,n=a=3Db=2Cc,r=x,tokenauth=true").unwrap();
        assert_eq!(m.authzid.as_deref(), Some("a=b"));
        assert_eq!(m.username, "a=b,c");
        assert_eq!(m.extensions, vec![("tokenauth".into(), "true".into())]);
    }

    #[test]
    fn refuses_malformed_client_first_messages() {
        for bad in [
            &b""[..],
            b"y,,n=user,r=abc",
            b"p=tls-unique,,n=user,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=user",
            b"n,,r=abc,n=user",
            b"n,,n=us=er,r=abc",
            b"n,,n=user,r=",
            b"n,,n=user,r=a\x01b",
            b"n,,n=user,r=abc,=x",
            b"\xff\xfe",
            b"n,x,n=user,r=abc",
        ] {
            assert!(ClientFirst::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_a_client_final_message() {
        let m = ClientFinal::parse(b"c=biws,r=abcdef,p=dHpbprQ=").unwrap();
        assert_eq!(m.channel_binding, b"n,,");
        assert_eq!(m.nonce, "abcdef");
        assert_eq!(m.without_proof, "c=biws,r=abcdef");
        assert!(ClientFinal::parse(b"c=biws,r=abcdef").is_err());
        assert!(ClientFinal::parse(b"c=!!,r=a,p=AA==").is_err());
        assert!(ClientFinal::parse(b"r=a,c=biws,p=AA==").is_err());
    }

    #[test]
    fn server_messages_round_trip() {
        let first = ServerFirst {
            nonce: "abc".into(),
            salt: vec![1, 2, 3],
            iterations: 4096,
        };
        assert_eq!(
            ServerFirst::parse(first.format().as_bytes()).unwrap(),
            first
        );
        assert_eq!(
            parse_server_final(format_server_final(&[9, 9]).as_bytes()).unwrap(),
            vec![9, 9]
        );
        assert_eq!(
            parse_server_final(b"e=invalid-proof"),
            Err(ScramError::ServerError("invalid-proof".into()))
        );
    }

    #[test]
    fn saslnames_escape_both_ways() {
        assert_eq!(encode_saslname("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(decode_saslname("a=2Cb=3Dc").unwrap(), "a,b=c");
        assert!(decode_saslname("a=2").is_err());
    }
}
