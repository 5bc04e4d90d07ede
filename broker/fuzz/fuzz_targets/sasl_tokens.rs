//! SASL tokens are read before a client has proved anything: no bytes may panic a parser or a
//! SCRAM exchange.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spate_auth::{PlainResponse, ScramCredential, ScramMechanism, ScramServer};

fuzz_target!(|data: &[u8]| {
    let _ = PlainResponse::parse(data);
    let _ = spate_auth::oauthbearer::InitialResponse::parse(data);
    // The first half as client-first, the rest as client-final, against a known user.
    let split = data.iter().position(|b| *b == 0xff).unwrap_or(data.len());
    let (first, last) = data.split_at(split);
    // Derived once: PBKDF2 on every input would leave little time for fuzzing.
    static CRED: std::sync::OnceLock<ScramCredential> = std::sync::OnceLock::new();
    let cred = CRED.get_or_init(|| {
        ScramCredential::from_password(ScramMechanism::Sha256, b"pw", vec![1; 16], 4096)
    });
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    if server.client_first(first, "snonce", |_| Some(cred.clone())).is_ok() {
        let _ = server.client_final(last.get(1..).unwrap_or_default());
    }
    let mut fresh = ScramServer::new(ScramMechanism::Sha512);
    let _ = fresh.client_first(data, "n", |_| None);
    let _ = fresh.client_final(data);
});
