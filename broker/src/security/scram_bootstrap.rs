//! `--add-scram`: credentials given when the broker starts, in the syntax of Kafka's
//! `kafka-storage format --add-scram`: `SCRAM-SHA-512=[name=admin,password=admin-secret]`
//! (or `salt=<base64>,saltedpassword=<base64>` instead of the password; `iterations=N`,
//! default 4096). Each is stored unless its user already has that mechanism's credential, so
//! restarting with the same flag never undoes a password change.
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use spate_auth::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

/// One parsed `--add-scram` value.
#[derive(Clone)]
pub struct BootstrapScram {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub credential: ScramCredential,
}

impl std::fmt::Debug for BootstrapScram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}=[name={}, [hidden]]",
            self.mechanism.name(),
            self.user
        )
    }
}

/// Why a value did not parse; never quotes the value (it holds a password).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--add-scram: {0}")]
pub struct BootstrapError(String);

fn err(s: impl Into<String>) -> BootstrapError {
    BootstrapError(s.into())
}

impl BootstrapScram {
    pub fn parse(spec: &str) -> Result<Self, BootstrapError> {
        let (mech, rest) = spec
            .split_once('=')
            .ok_or_else(|| err("expected MECHANISM=[name=...,password=...]"))?;
        let mechanism = ScramMechanism::from_name(mech.trim()).ok_or_else(|| {
            err(format!(
                "unknown mechanism {:?}; use SCRAM-SHA-256 or SCRAM-SHA-512",
                mech.trim()
            ))
        })?;
        let body = rest
            .trim()
            .strip_prefix('[')
            .and_then(|b| b.strip_suffix(']'))
            .ok_or_else(|| err("expected the settings in [...]"))?;
        let (mut name, mut password, mut salt, mut salted, mut iterations) =
            (None, None, None, None, None);
        for part in split_unquoted(body) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err("expected key=value pairs"))?;
            let v = unquote(v.trim());
            match k.trim() {
                "name" => name = Some(v),
                "password" => password = Some(v),
                "salt" => salt = Some(v),
                "saltedpassword" => salted = Some(v),
                "iterations" => {
                    iterations = Some(
                        v.parse::<i32>()
                            .map_err(|_| err("iterations: not a number"))?,
                    )
                }
                other => return Err(err(format!("unknown key {other:?}"))),
            }
        }
        let user = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err("name is required"))?;
        let iterations = iterations.unwrap_or(MIN_ITERATIONS);
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(err(format!(
                "iterations must be in {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            )));
        }
        let decode = |what: &str, v: &str| {
            STANDARD
                .decode(v)
                .map_err(|_| err(format!("{what} is not base64")))
        };
        let credential = match (password, salt, salted) {
            (Some(p), None, None) => ScramCredential::generate(mechanism, p.as_bytes(), iterations),
            (Some(p), Some(s), None) => ScramCredential::from_password(
                mechanism,
                p.as_bytes(),
                decode("salt", &s)?,
                iterations,
            ),
            (None, Some(s), Some(sp)) => ScramCredential::from_salted_password(
                mechanism,
                &decode("saltedpassword", &sp)?,
                decode("salt", &s)?,
                iterations,
            ),
            (None, None, Some(_)) => return Err(err("saltedpassword needs a salt")),
            _ => return Err(err("give password, or salt and saltedpassword")),
        };
        Ok(Self {
            user,
            mechanism,
            credential,
        })
    }
}

/// Splits on commas outside double quotes.
fn split_unquoted(s: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_storage_add_scram_values() {
        let b = BootstrapScram::parse("SCRAM-SHA-512=[name=admin,password=admin-secret]").unwrap();
        assert_eq!(
            (b.user.as_str(), b.mechanism),
            ("admin", ScramMechanism::Sha512)
        );
        assert_eq!(b.credential.iterations, 4096);
        assert!(b
            .credential
            .matches_password(ScramMechanism::Sha512, b"admin-secret"));

        let b =
            BootstrapScram::parse("SCRAM-SHA-256=[name=\"a\",password=\"x,y=z\",iterations=8192]")
                .unwrap();
        assert_eq!(b.user, "a");
        assert_eq!(b.credential.iterations, 8192);
        assert!(b
            .credential
            .matches_password(ScramMechanism::Sha256, b"x,y=z"));

        // The salted form, as kafka-storage documents it.
        let salt = STANDARD.encode(b"salt");
        let salted = ScramMechanism::Sha256.salted_password(b"pw", b"salt", 4096);
        let b = BootstrapScram::parse(&format!(
            "SCRAM-SHA-256=[name=u,salt={salt},saltedpassword={},iterations=4096]",
            STANDARD.encode(salted)
        ))
        .unwrap();
        assert!(b.credential.matches_password(ScramMechanism::Sha256, b"pw"));
    }

    #[test]
    fn refuses_bad_values_without_echoing_the_password() {
        for (spec, why) in [
            ("SCRAM-SHA-1=[name=a,password=hunter2]", "unknown mechanism"),
            ("SCRAM-SHA-512=name=a,password=hunter2", "in [...]"),
            ("SCRAM-SHA-512=[password=hunter2]", "name is required"),
            ("SCRAM-SHA-512=[name=a]", "give password"),
            (
                "SCRAM-SHA-512=[name=a,password=hunter2,iterations=10]",
                "iterations",
            ),
            (
                "SCRAM-SHA-512=[name=a,password=hunter2,colour=red]",
                "unknown key",
            ),
        ] {
            let e = BootstrapScram::parse(spec).unwrap_err().to_string();
            assert!(e.contains(why), "{spec}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        let b = BootstrapScram::parse("SCRAM-SHA-512=[name=a,password=hunter2]").unwrap();
        assert!(!format!("{b:?}").contains("hunter2"));
    }
}
