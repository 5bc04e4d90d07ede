//! Test JWTs: an ES256 key made with ring, its JWKS, and tokens signed with it.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

pub struct Issuer {
    key: EncodingKey,
    pub kid: String,
    /// The JWKS document holding the public key.
    pub jwks: String,
}

impl Issuer {
    pub fn new(kid: &str) -> Self {
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
        Self {
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            kid: kid.into(),
            jwks: jwks.to_string(),
        }
    }

    /// A token for `sub` that expires `ttl_secs` from now (negative: already expired).
    pub fn token(&self, sub: &str, aud: &str, ttl_secs: i64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let claims = serde_json::json!({"sub": sub, "aud": aud, "iss": "https://issuer.test", "iat": now, "exp": now + ttl_secs});
        encode(&header, &claims, &self.key).unwrap()
    }
}
