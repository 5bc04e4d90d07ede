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
    /// Logged in as this user; send this last token.
    Done(String, Vec<u8>),
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
                if expires_at.is_some_and(|at| now >= at) {
                    return Step::Close("SASL session expired without re-authentication".into());
                }
                let (mechanism, reauth_enabled) = (*mechanism, expires_at.is_some());
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
                    Request::SaslHandshake(_) => Step::Reply(reply(Response::SaslHandshake(
                        SaslHandshakeResponse::default()
                            .with_error_code(ResponseError::IllegalSaslState.code()),
                    ))),
                    Request::SaslAuthenticate(_) => Step::Reply(reply(Response::SaslAuthenticate(
                        SaslAuthenticateResponse::default()
                            .with_error_code(ResponseError::IllegalSaslState.code())
                            .with_error_message(Some(StrBytes::from_static_str(
                                "SaslAuthenticate request received after successful authentication",
                            ))),
                    ))),
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
            Ok(TokenResult::Continue(out)) | Ok(TokenResult::Done(_, out)) => RawStep::Reply(out),
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
            Exchange::Plain => plain(token, creds).map(|user| TokenResult::Done(user, vec![])),
            Exchange::Scram(server) => scram(server, token, creds, nonce),
        };
        let result = match result {
            Ok(TokenResult::Done(user, _))
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
            Ok(TokenResult::Done(user, _)) => {
                self.principal = Some(KafkaPrincipal::user(user.as_str()));
                self.state = State::Authenticated {
                    mechanism,
                    expires_at: self.settings.max_reauth.map(|d| now + d),
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
            Ok(TokenResult::Done(_, out)) => {
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
            .map(|done| TokenResult::Done(done.username, done.response))
            .map_err(|e| {
                tracing::debug!("SCRAM client-final refused: {e}");
                invalid_credentials(m.name())
            })
    }
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
