//! SASL/OAUTHBEARER (RFC 7628) as Kafka's `OAuthBearerSaslServer` with its JWT validator
//! (`ValidatorAccessTokenValidator`): the client's initial response carries a bearer token,
//! a JWT signed by a key of the configured JWKS; its subject claim is the principal and its
//! `exp` ends the session.
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};

/// What the server answers an invalid token with before failing (RFC 7628 §3.2.2); the
/// client then sends `\x01` and the server fails the login.
pub const INVALID_TOKEN_CHALLENGE: &[u8] = br#"{"status":"invalid_token"}"#;

/// The client's initial response: `n,[a=authzid],\x01auth=Bearer <token>\x01[k=v\x01]*\x01`.
#[derive(Clone, PartialEq, Eq)]
pub struct InitialResponse {
    pub authzid: Option<String>,
    pub token: String,
    pub extensions: Vec<(String, String)>,
}

impl std::fmt::Debug for InitialResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "InitialResponse(authzid={:?}, token [hidden])",
            self.authzid
        )
    }
}

impl InitialResponse {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
        let rest = text
            .strip_prefix("n,")
            .ok_or("invalid OAUTHBEARER initial response: no gs2 header")?;
        let (authz, rest) = rest
            .split_once(',')
            .ok_or("invalid OAUTHBEARER initial response: no gs2 header")?;
        let authzid = match authz {
            "" => None,
            a => Some(
                a.strip_prefix("a=")
                    .ok_or("invalid OAUTHBEARER authorization id")?
                    .to_string(),
            ),
        };
        let body = rest
            .strip_prefix('\u{1}')
            .and_then(|b| b.strip_suffix("\u{1}\u{1}"))
            .ok_or("invalid OAUTHBEARER initial response: bad separators")?;
        let mut token = None;
        let mut extensions = Vec::new();
        for kv in body.split('\u{1}') {
            let (k, v) = kv
                .split_once('=')
                .ok_or("invalid OAUTHBEARER key/value pair")?;
            if k == "auth" {
                let t = v
                    .strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .ok_or("invalid OAUTHBEARER auth value: expected 'Bearer <token>'")?;
                token = Some(t.trim().to_string());
            } else {
                extensions.push((k.to_string(), v.to_string()));
            }
        }
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or("invalid OAUTHBEARER initial response: no token")?;
        Ok(Self {
            authzid,
            token,
            extensions,
        })
    }

    pub fn format(token: &str) -> Vec<u8> {
        format!("n,,\u{1}auth=Bearer {token}\u{1}\u{1}").into_bytes()
    }
}

/// Kafka's `sasl.oauthbearer.*` validation settings.
#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    pub expected_audience: Vec<String>,
    pub expected_issuer: Option<String>,
    pub sub_claim: String,
    pub clock_skew_seconds: u64,
}

/// A token that passed: who it names and when it expires (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    pub principal: String,
    pub expires_at: u64,
}

/// Validates a JWT against `keys`, as Kafka's `ValidatorAccessTokenValidator`: a known key
/// (by `kid`, or the only key), a signature algorithm (never `none`), `exp` and `iat` present
/// and `exp` not passed (with the clock skew), audience and issuer when configured, and a
/// non-empty subject claim.
pub fn validate(
    token: &str,
    keys: &JwkSet,
    config: &ValidatorConfig,
) -> Result<ValidToken, String> {
    let header = decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
    let jwk = match &header.kid {
        Some(kid) => keys
            .find(kid)
            .ok_or_else(|| format!("no key with id {kid} in the JWKS"))?,
        None if keys.keys.len() == 1 => &keys.keys[0],
        None => return Err("the token names no key id and the JWKS has several keys".into()),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable JWKS key: {e}"))?;
    let mut v = Validation::new(header.alg);
    v.leeway = config.clock_skew_seconds;
    v.set_required_spec_claims(&["exp"]);
    if config.expected_audience.is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&config.expected_audience);
    }
    if let Some(iss) = &config.expected_issuer {
        v.set_issuer(&[iss]);
    }
    let data =
        decode::<serde_json::Value>(token, &key, &v).map_err(|e| format!("invalid token: {e}"))?;
    // jsonwebtoken checks only the claims it knows (exp, nbf, aud, iss, sub); Kafka also
    // requires iat.
    if data.claims.get("iat").and_then(|i| i.as_f64()).is_none() {
        return Err("the token has no iat claim".into());
    }
    let principal = data
        .claims
        .get(&config.sub_claim)
        .and_then(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("the token has no {} claim", config.sub_claim))?
        .to_string();
    let expires_at = data
        .claims
        .get("exp")
        .and_then(|e| e.as_f64())
        .ok_or("the token has no exp claim")? as u64;
    Ok(ValidToken {
        principal,
        expires_at,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    /// An ES256 key: (encoding key, its JWKS with `kid`).
    pub(crate) fn es256(kid: &str) -> (EncodingKey, JwkSet) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]});
        (
            EncodingKey::from_ec_der(pkcs8.as_ref()),
            serde_json::from_value(jwks).unwrap(),
        )
    }

    pub(crate) fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    pub(crate) fn token(key: &EncodingKey, kid: &str, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        encode(&header, &claims, key).unwrap()
    }

    fn config() -> ValidatorConfig {
        ValidatorConfig {
            expected_audience: vec!["spate".into()],
            expected_issuer: Some("https://issuer".into()),
            sub_claim: "sub".into(),
            clock_skew_seconds: 30,
        }
    }

    #[test]
    fn parses_the_initial_response_and_hides_the_token() {
        let r = InitialResponse::parse(&InitialResponse::format("abc.def.ghi")).unwrap();
        assert_eq!(r.token, "abc.def.ghi");
        assert!(!format!("{r:?}").contains("abc"));
        let r = InitialResponse::parse(b"n,a=alice,\x01auth=Bearer t\x01ext=1\x01\x01").unwrap();
        assert_eq!(r.authzid.as_deref(), Some("alice"));
        assert_eq!(r.extensions, [("ext".to_string(), "1".to_string())]);
        for bad in [
            &b""[..],
            b"n,,auth=Bearer t",
            b"n,,\x01auth=Basic t\x01\x01",
            b"n,,\x01\x01",
        ] {
            assert!(InitialResponse::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_good_token_names_its_subject_and_expiry() {
        let (key, jwks) = es256("k1");
        let exp = now() + 600;
        let t = token(
            &key,
            "k1",
            serde_json::json!({"sub": "alice", "aud": "spate", "iss": "https://issuer", "iat": now(), "exp": exp}),
        );
        assert_eq!(
            validate(&t, &jwks, &config()).unwrap(),
            ValidToken {
                principal: "alice".into(),
                expires_at: exp
            }
        );
    }

    #[test]
    fn bad_tokens_are_refused() {
        let (key, jwks) = es256("k1");
        let (other, _) = es256("k1");
        let claims = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut c = serde_json::json!({"sub": "alice", "aud": "spate", "iss": "https://issuer", "iat": now(), "exp": now() + 600});
            f(&mut c);
            c
        };
        let cases = [
            (
                "expired",
                token(&key, "k1", claims(&|c| c["exp"] = (now() - 120).into())),
            ),
            (
                "audience",
                token(&key, "k1", claims(&|c| c["aud"] = "other".into())),
            ),
            (
                "issuer",
                token(&key, "k1", claims(&|c| c["iss"] = "https://evil".into())),
            ),
            (
                "no sub",
                token(
                    &key,
                    "k1",
                    claims(&|c| {
                        c.as_object_mut().unwrap().remove("sub");
                    }),
                ),
            ),
            (
                "no iat",
                token(
                    &key,
                    "k1",
                    claims(&|c| {
                        c.as_object_mut().unwrap().remove("iat");
                    }),
                ),
            ),
            ("unknown kid", token(&key, "k2", claims(&|_| {}))),
            ("wrong key", token(&other, "k1", claims(&|_| {}))),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                    URL_SAFE_NO_PAD.encode(r#"{"sub":"alice"}"#)
                ),
            ),
            ("garbage", "not-a-jwt".to_string()),
        ];
        for (why, t) in cases {
            assert!(validate(&t, &jwks, &config()).is_err(), "{why}");
        }
        // Within the clock skew an expired token still passes, as in Kafka.
        let t = token(&key, "k1", claims(&|c| c["exp"] = (now() - 10).into()));
        assert!(validate(&t, &jwks, &config()).is_ok());
    }
}
