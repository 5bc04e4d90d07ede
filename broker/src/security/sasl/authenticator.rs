//! One connection's SASL state, as Kafka's `SaslServerAuthenticator`: sans-io, it takes
//! decoded requests (or raw tokens after a SaslHandshake v0) and says what to do.
//!
//! - Before authentication only ApiVersions and SaslHandshake are served; anything else
//!   closes the connection without an answer. After SaslHandshake v1 the tokens come in
//!   SaslAuthenticate requests; after v0 they come as raw size-prefixed frames.
//! - A failed login is answered with SASL_AUTHENTICATION_FAILED (the same message for an
//!   unknown user and a wrong password), then the connection closes.
//! - With `connections.max.reauth.ms` a session ends at that age (KIP-368): the client
//!   re-authenticates (SaslHandshake + SaslAuthenticate on the open connection, same mechanism
//!   and principal) or its next request closes the connection.
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use spate_auth::{PlainResponse, ScramCredential, ScramMechanism, ScramServer};
use std::sync::Arc;

use super::{Mechanism, SaslSettings};
use crate::protocol::{Request, RequestEnvelope, Response};
use crate::security::KafkaPrincipal;

/// Where credentials come from (the metadata quorum's state in the broker).
pub trait CredentialStore {
    fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

impl CredentialStore for spate_meta::ClusterMetadata {
    fn scram(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.scram.get(user)?.get(&mechanism).cloned()
    }
}

/// A response to send: (correlation id, version, body).
pub struct Reply {
    pub correlation_id: i32,
    pub version: i16,
    pub response: Response,
}

/// What the connection does with a request.
pub enum Step {
    /// Not a SASL matter: handle it as usual.
    Dispatch(RequestEnvelope),
    /// Send this and go on.
    Reply(Reply),
    /// Send this, then close the connection after the delay.
    ReplyAndClose(Reply, Duration),
    /// Close at once, sending nothing (Kafka's answer to a protocol violation).
    Close(String),
}

/// What the connection does with a raw token (after SaslHandshake v0).
pub enum RawStep {
    /// Send this token, size-prefixed.
    Reply(Vec<u8>),
    Close(String),
}

/// A finished login, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub mechanism: &'static str,
    pub success: bool,
}

enum Exchange {
    Plain,
    Scram(Box<ScramServer>),
    /// `refusal` is set once an invalid token was answered with the RFC 7628 challenge.
    OAuthBearer {
        refusal: Option<String>,
    },
}

enum State {
    /// ApiVersions or SaslHandshake expected.
    Start,
    /// Tokens expected: in SaslAuthenticate requests (`framed`) or raw. `reauth` holds the
    /// principal a re-authentication must keep.
    Exchanging {
        mechanism: Mechanism,
        framed: bool,
        exchange: Exchange,
        reauth: Option<KafkaPrincipal>,
    },
    Authenticated {
        mechanism: Mechanism,
        expires_at: Option<Instant>,
    },
    Failed,
}

pub struct Authenticator {
    settings: Arc<SaslSettings>,
    state: State,
    principal: Option<KafkaPrincipal>,
    outcome: Option<Outcome>,
}

/// Why a token was refused: the message the client gets.
struct Refused(String);

enum TokenResult {
    /// More to exchange; send this.
    Continue(Vec<u8>),
    /// Logged in as this user; send this last token. `expires` is when the credential
    /// itself ends (an OAUTHBEARER token's `exp`).
    Done(String, Vec<u8>, Option<Instant>),
}

impl Authenticator {
    pub fn new(settings: Arc<SaslSettings>) -> Self {
        Self {
            settings,
            state: State::Start,
            principal: None,
            outcome: None,
        }
    }

    /// The authenticated principal, once there is one.
    pub fn principal(&self) -> Option<&KafkaPrincipal> {
        self.principal.as_ref()
    }

    /// The largest frame to read now: `sasl.server.max.receive.size` until the first login.
    pub fn max_frame(&self) -> Option<usize> {
        self.principal
            .is_none()
            .then_some(self.settings.max_receive_size)
    }

    /// After SaslHandshake v0 the next frames are raw tokens, not requests.
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Exchanging { framed: false, .. })
    }

    /// The login that just finished, if any (each reported once).
    pub fn take_outcome(&mut self) -> Option<Outcome> {
        self.outcome.take()
    }

    pub fn on_request(
        &mut self,
        env: RequestEnvelope,
        creds: &dyn CredentialStore,
        nonce: &str,
        now: Instant,
    ) -> Step {
        let (correlation_id, version) = (env.correlation_id, env.version);
        let reply = |response| Reply {
            correlation_id,
            version,
            response,
        };
        match &mut self.state {
            State::Failed => Step::Close("authentication failed".into()),
            State::Start => match env.body {
                Request::ApiVersions(_) => Step::Dispatch(env),
                Request::SaslHandshake(r) => self.handshake(r, version, None, reply),
                _ => Step::Close(format!(
                    "{:?} request before SASL authentication",
                    env.api_key
                )),
            },
            State::Exchanging { framed: false, .. } => {
                Step::Close("a Kafka request where a raw SASL token was expected".into())
            }
            State::Exchanging { .. } => match env.body {
                Request::SaslAuthenticate(r) => {
                    let result = self.token(&r.0.auth_bytes, creds, nonce, now);
                    self.authenticate_response(result, now, reply)
                }
                _ => Step::Close(format!(
                    "{:?} request during SASL authentication",
                    env.api_key
                )),
            },
            State::Authenticated {
                mechanism,
                expires_at,
            } => {
                let (mechanism, reauth_enabled) = (*mechanism, expires_at.is_some());
                // A re-authentication that starts late (the client waited on a slow answer,
                // e.g. a JoinGroup held for the rebalance delay) is still one, as in Kafka;
                // any other request after expiry ends the connection.
                let reauthenticating =
                    reauth_enabled && matches!(env.body, Request::SaslHandshake(_));
                if !reauthenticating && expires_at.is_some_and(|at| now >= at) {
                    return Step::Close("SASL session expired without re-authentication".into());
                }
                match env.body {
                    Request::SaslHandshake(r) if reauth_enabled => {
                        let principal = self.principal.clone();
                        let asked = Mechanism::from_name(r.mechanism.as_str());
                        if asked != Some(mechanism) {
                            // KIP-368: re-authentication keeps the mechanism.
                            return Step::ReplyAndClose(
                                reply(Response::SaslHandshake(
                                    SaslHandshakeResponse::default()
                                        .with_error_code(
                                            ResponseError::UnsupportedSaslMechanism.code(),
                                        )
                                        .with_mechanisms(vec![StrBytes::from_static_str(
                                            mechanism.name(),
                                        )]),
                                )),
                                Duration::ZERO,
                            );
                        }
                        self.handshake(r, version, principal, reply)
                    }
                    // Other SASL requests after a login are answered by the API layer
                    // (ILLEGAL_SASL_STATE, handlers/sasl.rs).
                    _ => Step::Dispatch(env),
                }
            }
        }
    }

    /// A raw token after SaslHandshake v0: the next token back, or close.
    pub fn on_raw_token(
        &mut self,
        token: &[u8],
        creds: &dyn CredentialStore,
        nonce: &str,
        now: Instant,
    ) -> RawStep {
        if !self.expects_raw_token() {
            return RawStep::Close("unexpected raw SASL token".into());
        }
        match self.token(token, creds, nonce, now) {
            Ok(TokenResult::Continue(out)) | Ok(TokenResult::Done(_, out, _)) => {
                RawStep::Reply(out)
            }
            Err(Refused(why)) => RawStep::Close(why),
        }
    }

    fn handshake(
        &mut self,
        r: SaslHandshakeRequest,
        version: i16,
        reauth: Option<KafkaPrincipal>,
        reply: impl Fn(Response) -> Reply,
    ) -> Step {
        let enabled: Vec<StrBytes> = self
            .settings
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(enabled);
        let Some(mechanism) = self.settings.enabled(r.mechanism.as_str()) else {
            self.state = State::Failed;
            return Step::ReplyAndClose(
                reply(Response::SaslHandshake(response.with_error_code(
                    ResponseError::UnsupportedSaslMechanism.code(),
                ))),
                Duration::ZERO,
            );
        };
        let exchange = match mechanism {
            Mechanism::Plain => Exchange::Plain,
            Mechanism::Scram(m) => Exchange::Scram(Box::new(ScramServer::new(m))),
            Mechanism::OAuthBearer => Exchange::OAuthBearer { refusal: None },
        };
        self.state = State::Exchanging {
            mechanism,
            framed: version >= 1,
            exchange,
            reauth,
        };
        Step::Reply(reply(Response::SaslHandshake(response)))
    }

    fn token(
        &mut self,
        token: &[u8],
        creds: &dyn CredentialStore,
        nonce: &str,
        now: Instant,
    ) -> Result<TokenResult, Refused> {
        let State::Exchanging {
            mechanism,
            exchange,
            reauth,
            ..
        } = &mut self.state
        else {
            return Err(Refused("no SASL exchange in progress".into()));
        };
        let mechanism = *mechanism;
        let result = match exchange {
            Exchange::Plain => {
                plain(token, creds).map(|user| TokenResult::Done(user, vec![], None))
            }
            Exchange::Scram(server) => scram(server, token, creds, nonce),
            Exchange::OAuthBearer { refusal } => {
                oauthbearer(refusal, token, self.settings.oauth.as_deref(), now)
            }
        };
        let result = match result {
            Ok(TokenResult::Done(user, ..))
                if reauth
                    .as_ref()
                    .is_some_and(|p| *p != KafkaPrincipal::user(user.as_str())) =>
            {
                Err(Refused(
                    "Cannot change principals during re-authentication".into(),
                ))
            }
            other => other,
        };
        match &result {
            Ok(TokenResult::Continue(_)) => {}
            Ok(TokenResult::Done(user, _, credential_expiry)) => {
                self.principal = Some(KafkaPrincipal::user(user.as_str()));
                // KIP-368: the session ends with the credential or after
                // connections.max.reauth.ms, whichever comes first.
                let by_config = self.settings.max_reauth.map(|d| now + d);
                let expires_at = match (by_config, *credential_expiry) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                self.state = State::Authenticated {
                    mechanism,
                    expires_at,
                };
                self.outcome = Some(Outcome {
                    mechanism: mechanism.name(),
                    success: true,
                });
            }
            Err(_) => {
                self.state = State::Failed;
                self.outcome = Some(Outcome {
                    mechanism: mechanism.name(),
                    success: false,
                });
            }
        }
        result
    }

    fn authenticate_response(
        &self,
        result: Result<TokenResult, Refused>,
        now: Instant,
        reply: impl Fn(Response) -> Reply,
    ) -> Step {
        match result {
            Ok(TokenResult::Continue(out)) => Step::Reply(reply(Response::SaslAuthenticate(
                SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(out)),
            ))),
            Ok(TokenResult::Done(_, out, _)) => {
                let lifetime = match &self.state {
                    State::Authenticated {
                        expires_at: Some(at),
                        ..
                    } => at.saturating_duration_since(now).as_millis() as i64,
                    _ => 0,
                };
                Step::Reply(reply(Response::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_auth_bytes(Bytes::from(out))
                        .with_session_lifetime_ms(lifetime),
                )))
            }
            Err(Refused(message)) => Step::ReplyAndClose(
                reply(Response::SaslAuthenticate(
                    SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                        .with_error_message(Some(StrBytes::from_string(message))),
                )),
                self.settings.failed_delay,
            ),
        }
    }
}

/// The message for every SCRAM credential failure: Kafka's wording for a bad proof, used for
/// unknown users too so that a reply never tells whether a user exists.
fn invalid_credentials(mechanism: &str) -> Refused {
    Refused(format!(
        "Authentication failed during authentication due to invalid credentials with SASL \
         mechanism {mechanism}"
    ))
}

fn scram(
    server: &mut ScramServer,
    token: &[u8],
    creds: &dyn CredentialStore,
    nonce: &str,
) -> Result<TokenResult, Refused> {
    let m = server.mechanism();
    if server.expects_client_first() {
        server
            .client_first(token, nonce, |user| creds.scram(user, m))
            .map(TokenResult::Continue)
            .map_err(|e| {
                tracing::debug!("SCRAM client-first refused: {e}");
                invalid_credentials(m.name())
            })
    } else {
        server
            .client_final(token)
            .map(|done| TokenResult::Done(done.username, done.response, None))
            .map_err(|e| {
                tracing::debug!("SCRAM client-final refused: {e}");
                invalid_credentials(m.name())
            })
    }
}

/// OAUTHBEARER: a valid token logs its subject in until its `exp`; an invalid one gets the
/// `{"status":"invalid_token"}` challenge, and the client's `\x01` after it the failure.
fn oauthbearer(
    refusal: &mut Option<String>,
    token: &[u8],
    settings: Option<&super::oauth::OAuthSettings>,
    now: Instant,
) -> Result<TokenResult, Refused> {
    if let Some(why) = refusal.take() {
        return Err(Refused(why));
    }
    let Some(settings) = settings else {
        return Err(Refused("OAUTHBEARER is not configured".into()));
    };
    // As Kafka, the client learns only that the token is invalid; the reason is logged.
    let invalid = |refusal: &mut Option<String>, why: String| {
        tracing::info!("OAUTHBEARER token refused: {why}");
        *refusal = Some(
            String::from_utf8_lossy(spate_auth::oauthbearer::INVALID_TOKEN_CHALLENGE).into_owned(),
        );
        Ok(TokenResult::Continue(
            spate_auth::oauthbearer::INVALID_TOKEN_CHALLENGE.to_vec(),
        ))
    };
    let response = match spate_auth::oauthbearer::InitialResponse::parse(token) {
        Ok(r) => r,
        Err(why) => return Err(Refused(why)),
    };
    let valid = match settings.validate(&response.token) {
        Ok(v) => v,
        Err(why) => return invalid(refusal, why),
    };
    if response
        .authzid
        .as_ref()
        .is_some_and(|a| *a != valid.principal)
    {
        return invalid(
            refusal,
            "the authorization id is not the token's principal".into(),
        );
    }
    let left = valid
        .expires_at
        .saturating_sub(crate::context::now_ms() as u64 / 1000);
    Ok(TokenResult::Done(
        valid.principal,
        vec![],
        Some(now + Duration::from_secs(left)),
    ))
}

/// PLAIN: the password is checked against the user's SCRAM credential (SHA-512 preferred).
fn plain(token: &[u8], creds: &dyn CredentialStore) -> Result<String, Refused> {
    let r = PlainResponse::parse(token).map_err(|e| Refused(e.to_string()))?;
    let ok = [ScramMechanism::Sha512, ScramMechanism::Sha256]
        .into_iter()
        .find_map(|m| creds.scram(&r.username, m).map(|c| (m, c)))
        .is_some_and(|(m, c)| c.matches_password(m, &r.password));
    if ok {
        Ok(r.username)
    } else {
        Err(Refused(
            spate_auth::PlainError::InvalidCredentials.to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::request::Hidden;
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest,
    };
    use spate_auth::ScramClient;
    use std::collections::BTreeMap;

    struct Users(BTreeMap<(String, ScramMechanism), ScramCredential>);

    impl CredentialStore for Users {
        fn scram(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
            self.0.get(&(user.to_string(), m)).cloned()
        }
    }

    fn users() -> Users {
        let m = ScramMechanism::Sha512;
        Users(BTreeMap::from([(
            ("alice".to_string(), m),
            ScramCredential::from_password(m, b"secret", vec![3; 16], 4096),
        )]))
    }

    fn settings(reauth_ms: u64) -> Arc<SaslSettings> {
        Arc::new(SaslSettings {
            listener: "SASL".into(),
            mechanisms: vec![Mechanism::Scram(ScramMechanism::Sha512), Mechanism::Plain],
            max_receive_size: 1000,
            max_reauth: (reauth_ms > 0).then(|| Duration::from_millis(reauth_ms)),
            failed_delay: Duration::from_millis(100),
            oauth: None,
        })
    }

    fn env(api_key: ApiKey, version: i16, body: Request) -> RequestEnvelope {
        RequestEnvelope {
            api_key,
            version,
            correlation_id: 9,
            client_id: None,
            traceparent: None,
            body,
        }
    }

    fn handshake(mechanism: &'static str, version: i16) -> RequestEnvelope {
        env(
            ApiKey::SaslHandshake,
            version,
            Request::SaslHandshake(
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(mechanism)),
            ),
        )
    }

    fn token(bytes: &[u8]) -> RequestEnvelope {
        env(
            ApiKey::SaslAuthenticate,
            2,
            Request::SaslAuthenticate(Hidden(
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(bytes)),
            )),
        )
    }

    fn metadata() -> RequestEnvelope {
        env(
            ApiKey::Metadata,
            12,
            Request::Metadata(MetadataRequest::default()),
        )
    }

    fn auth_bytes(step: Step) -> Vec<u8> {
        match step {
            Step::Reply(Reply {
                response: Response::SaslAuthenticate(r),
                ..
            }) => {
                assert_eq!(r.error_code, 0, "{:?}", r.error_message);
                r.auth_bytes.to_vec()
            }
            _ => panic!("expected a SaslAuthenticate reply"),
        }
    }

    fn failure_message(step: Step) -> String {
        match step {
            Step::ReplyAndClose(
                Reply {
                    response: Response::SaslAuthenticate(r),
                    ..
                },
                delay,
            ) => {
                assert_eq!(r.error_code, ResponseError::SaslAuthenticationFailed.code());
                assert_eq!(delay, Duration::from_millis(100));
                r.error_message.map(|m| m.to_string()).unwrap_or_default()
            }
            _ => panic!("expected a failed SaslAuthenticate and a close"),
        }
    }

    /// A full SCRAM-SHA-512 login through SaslHandshake v1 + SaslAuthenticate.
    fn scram_login(a: &mut Authenticator, user: &str, password: &str, now: Instant) -> Step {
        let users = users();
        assert!(matches!(
            a.on_request(handshake("SCRAM-SHA-512", 1), &users, "", now),
            Step::Reply(_)
        ));
        let mut client = ScramClient::new(ScramMechanism::Sha512, user, password, "cnonce");
        let first = a.on_request(
            token(client.first_message().as_bytes()),
            &users,
            "snonce",
            now,
        );
        let server_first = match first {
            Step::Reply(_) => auth_bytes(first),
            other => return other,
        };
        let last = client.final_message(&server_first).unwrap();
        a.on_request(token(last.as_bytes()), &users, "", now)
    }

    #[test]
    fn only_api_versions_and_a_handshake_come_before_a_login() {
        let now = Instant::now();
        let mut a = Authenticator::new(settings(0));
        assert!(matches!(
            a.on_request(
                env(
                    ApiKey::ApiVersions,
                    3,
                    Request::ApiVersions(ApiVersionsRequest::default())
                ),
                &users(),
                "",
                now
            ),
            Step::Dispatch(_)
        ));
        assert!(matches!(
            a.on_request(metadata(), &users(), "", now),
            Step::Close(_)
        ));
        assert_eq!(a.max_frame(), Some(1000));
        assert!(a.principal().is_none());
    }

    #[test]
    fn a_scram_login_sets_the_principal_and_lifts_the_frame_limit() {
        let now = Instant::now();
        let mut a = Authenticator::new(settings(0));
        let done = scram_login(&mut a, "alice", "secret", now);
        let server_final = auth_bytes(done);
        assert!(server_final.starts_with(b"v="));
        assert_eq!(a.principal(), Some(&KafkaPrincipal::user("alice")));
        assert_eq!(a.max_frame(), None);
        assert_eq!(
            a.take_outcome(),
            Some(Outcome {
                mechanism: "SCRAM-SHA-512",
                success: true
            })
        );
        assert!(matches!(
            a.on_request(metadata(), &users(), "", now),
            Step::Dispatch(_)
        ));
        // SaslAuthenticate after the login reaches the API layer (ILLEGAL_SASL_STATE there).
        assert!(matches!(
            a.on_request(token(b"x"), &users(), "", now),
            Step::Dispatch(_)
        ));
    }

    #[test]
    fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
        let now = Instant::now();
        let mut a = Authenticator::new(settings(0));
        let wrong = failure_message(scram_login(&mut a, "alice", "guess", now));
        assert_eq!(
            a.take_outcome().map(|o| o.success),
            Some(false),
            "counted as a failure"
        );
        let mut b = Authenticator::new(settings(0));
        let unknown = failure_message(scram_login(&mut b, "mallory", "secret", now));
        assert_eq!(wrong, unknown);
        assert!(wrong.contains("SCRAM-SHA-512"), "{wrong}");
        // Nothing more is served on a failed connection.
        assert!(matches!(
            a.on_request(metadata(), &users(), "", now),
            Step::Close(_)
        ));
    }

    #[test]
    fn an_unknown_mechanism_is_answered_with_the_enabled_ones_then_closed() {
        let mut a = Authenticator::new(settings(0));
        match a.on_request(handshake("GSSAPI", 1), &users(), "", Instant::now()) {
            Step::ReplyAndClose(
                Reply {
                    response: Response::SaslHandshake(r),
                    ..
                },
                _,
            ) => {
                assert_eq!(r.error_code, ResponseError::UnsupportedSaslMechanism.code());
                let names: Vec<String> = r.mechanisms.iter().map(|m| m.to_string()).collect();
                assert_eq!(names, ["SCRAM-SHA-512", "PLAIN"]);
            }
            _ => panic!("expected UNSUPPORTED_SASL_MECHANISM"),
        }
    }

    #[test]
    fn plain_checks_the_scram_credential() {
        let now = Instant::now();
        let mut a = Authenticator::new(settings(0));
        a.on_request(handshake("PLAIN", 1), &users(), "", now);
        auth_bytes(a.on_request(token(b"\0alice\0secret"), &users(), "", now));
        assert_eq!(a.principal(), Some(&KafkaPrincipal::user("alice")));

        let mut b = Authenticator::new(settings(0));
        b.on_request(handshake("PLAIN", 1), &users(), "", now);
        let m = failure_message(b.on_request(token(b"\0alice\0nope"), &users(), "", now));
        assert_eq!(m, "Authentication failed: Invalid username or password");
    }

    #[test]
    fn after_handshake_v0_tokens_are_raw_frames() {
        let now = Instant::now();
        let mut a = Authenticator::new(settings(0));
        a.on_request(handshake("PLAIN", 0), &users(), "", now);
        assert!(a.expects_raw_token());
        // A Kafka request where a raw token belongs closes the connection.
        let mut b = Authenticator::new(settings(0));
        b.on_request(handshake("PLAIN", 0), &users(), "", now);
        assert!(matches!(
            b.on_request(metadata(), &users(), "", now),
            Step::Close(_)
        ));
        match a.on_raw_token(b"\0alice\0secret", &users(), "", now) {
            RawStep::Reply(t) => assert!(t.is_empty()),
            RawStep::Close(why) => panic!("{why}"),
        }
        assert!(!a.expects_raw_token());
        assert!(matches!(
            a.on_request(metadata(), &users(), "", now),
            Step::Dispatch(_)
        ));
        let mut c = Authenticator::new(settings(0));
        c.on_request(handshake("PLAIN", 0), &users(), "", now);
        assert!(matches!(
            c.on_raw_token(b"\0alice\0bad", &users(), "", now),
            RawStep::Close(_)
        ));
    }

    #[test]
    fn sessions_expire_unless_the_client_reauthenticates() {
        let start = Instant::now();
        let mut a = Authenticator::new(settings(2000));
        match scram_login(&mut a, "alice", "secret", start) {
            Step::Reply(Reply {
                response: Response::SaslAuthenticate(r),
                ..
            }) => assert_eq!(r.session_lifetime_ms, 2000),
            _ => panic!("login failed"),
        }
        // Re-authentication before expiry keeps the connection, and the clock restarts.
        let later = start + Duration::from_millis(1500);
        auth_bytes(scram_login(&mut a, "alice", "secret", later));
        assert!(matches!(
            a.on_request(
                metadata(),
                &users(),
                "",
                start + Duration::from_millis(3000)
            ),
            Step::Dispatch(_)
        ));
        // Without it, the next request after expiry closes the connection.
        assert!(matches!(
            a.on_request(
                metadata(),
                &users(),
                "",
                later + Duration::from_millis(2000)
            ),
            Step::Close(_)
        ));
    }

    #[test]
    fn reauthentication_keeps_the_mechanism_and_the_principal() {
        let now = Instant::now();
        let mut a = Authenticator::new(settings(2000));
        auth_bytes(scram_login(&mut a, "alice", "secret", now));
        assert!(matches!(
            a.on_request(handshake("PLAIN", 1), &users(), "", now),
            Step::ReplyAndClose(..)
        ));

        let mut users = users();
        let m = ScramMechanism::Sha512;
        users.0.insert(
            ("bob".into(), m),
            ScramCredential::from_password(m, b"pw", vec![4; 16], 4096),
        );
        let mut b = Authenticator::new(settings(2000));
        auth_bytes(scram_login(&mut b, "alice", "secret", now));
        b.on_request(handshake("SCRAM-SHA-512", 1), &users, "", now);
        let mut client = ScramClient::new(m, "bob", "pw", "c");
        let sf =
            auth_bytes(b.on_request(token(client.first_message().as_bytes()), &users, "s", now));
        let last = client.final_message(&sf).unwrap();
        let message = failure_message(b.on_request(token(last.as_bytes()), &users, "", now));
        assert!(message.contains("Cannot change principals"), "{message}");
    }

    #[test]
    fn without_reauthentication_a_handshake_after_login_is_an_illegal_state() {
        let now = Instant::now();
        let mut a = Authenticator::new(settings(0));
        auth_bytes(scram_login(&mut a, "alice", "secret", now));
        assert!(matches!(
            a.on_request(handshake("SCRAM-SHA-512", 1), &users(), "", now),
            Step::Dispatch(_)
        ));
    }
}
