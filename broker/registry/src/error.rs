//! Registry errors with Confluent's error codes and HTTP statuses.

/// Why a registry request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The subject does not exist.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// The version does not exist.
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    /// No schema has this id (or the subject has no such schema).
    #[error("Schema {0} not found")]
    SchemaNotFound(String),
    /// The schema does not parse.
    #[error("{0}")]
    InvalidSchema(String),
    /// The schema breaks the subject's compatibility level: (subject, messages).
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{details}]", subject = .0, details = .1.join(", "))]
    Incompatible(String, Vec<String>),
    /// Writes are off for the subject.
    #[error("Subject {0} is in read-only mode")]
    ReadOnly(String),
}

impl RegistryError {
    /// Confluent's `error_code`.
    pub fn code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound(_) => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::Incompatible(..) => 409,
            RegistryError::ReadOnly(_) => 42205,
        }
    }

    /// The HTTP status: the first three digits of the code.
    pub fn status(&self) -> u16 {
        let code = self.code();
        u16::try_from(if code >= 1000 { code / 100 } else { code }).unwrap_or(500)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_confluents() {
        assert_eq!(RegistryError::SubjectNotFound("s".into()).code(), 40401);
        assert_eq!(RegistryError::SubjectNotFound("s".into()).status(), 404);
        let e = RegistryError::Incompatible("t".into(), vec!["{a}".into(), "{b}".into()]);
        assert_eq!(e.status(), 409);
        assert_eq!(
            e.to_string(),
            "Schema being registered is incompatible with an earlier schema for subject \"t\", details: [{a}, {b}]"
        );
        assert_eq!(RegistryError::InvalidSchema("x".into()).status(), 422);
    }
}
