//! The user's Secret (named after the user) and the SCRAM password it carries.
//!
//! The password is the one `spec.authentication.password` points to, else the one already in
//! the user's Secret, else a new random one: generated once, then kept. It goes into the
//! Secret and (salted) to the brokers, never into status, Events or logs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use super::{Problem, Stop};
use crate::builders::LABEL_CLUSTER;
use crate::crd::User;
use crate::reconcilers::{Context, FIELD_MANAGER};
use crate::Result;

/// Secret key: the Kafka user name.
pub const KEY_USERNAME: &str = "username";
/// Secret key: the SCRAM password.
pub const KEY_PASSWORD: &str = "password";
/// Secret key: a ready-made `sasl.jaas.config` client setting.
pub const KEY_JAAS: &str = "sasl.jaas.config";
/// Label: what kind of resource a Secret belongs to (`user`).
pub const LABEL_KIND: &str = "spate.dev/kind";
/// Length of a generated password.
const GENERATED_PASSWORD_LEN: usize = 32;

/// Where this pass's password came from (for the Event that creates the Secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordOrigin {
    /// `spec.authentication.password`: the Secret and key it names.
    Referenced { secret: String, key: String },
    /// Already in the user's Secret.
    Kept,
    /// Generated in this pass.
    Generated,
}

/// A password, kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The password text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password(s)
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([hidden])")
    }
}

/// Whether `secret` was made for this very User (its controller owner is the User's uid).
pub fn owned_by(secret: &Secret, user: &User) -> bool {
    let uid = user.uid();
    uid.is_some()
        && secret
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == uid.as_ref() && o.controller == Some(true))
}

/// The user's Secret as it exists; `Err` when a Secret of that name belongs to something
/// else (the operator never overwrites a Secret it did not make for this User).
pub async fn existing(ctx: &Context, user: &User) -> Result<Option<Secret>, Stop> {
    let ns = user.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let name = user.secret_name();
    match secrets.get_opt(&name).await? {
        Some(s) if !owned_by(&s, user) => Err(Problem::new(
            "SecretConflict",
            format!(
                "Secret {ns}/{name} exists and does not belong to this User; delete or rename it"
            ),
        )
        .into()),
        found => Ok(found),
    }
}

/// The password for this pass (see the module doc for the order).
pub async fn password(
    ctx: &Context,
    user: &User,
    existing: Option<&Secret>,
) -> Result<(Password, PasswordOrigin), Stop> {
    if let Some(source) = &user.spec.authentication.password {
        let r = &source.value_from.secret_key_ref;
        let ns = user.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let found = secrets.get_opt(&r.name).await?;
        let value = found.as_ref().and_then(|s| data_value(s, &r.key));
        let Some(value) = value else {
            return Err(Problem::new(
                "PasswordSecretNotFound",
                format!(
                    "spec.authentication.password: Secret {ns}/{} has no non-empty UTF-8 key {}",
                    r.name, r.key
                ),
            )
            .into());
        };
        let origin = PasswordOrigin::Referenced {
            secret: r.name.clone(),
            key: r.key.clone(),
        };
        return Ok((Password(value), origin));
    }
    if let Some(kept) = existing.and_then(|s| data_value(s, KEY_PASSWORD)) {
        return Ok((Password(kept), PasswordOrigin::Kept));
    }
    let generated = spate_auth::random_nonce(GENERATED_PASSWORD_LEN);
    Ok((Password(generated), PasswordOrigin::Generated))
}

/// A non-empty UTF-8 value of `key` in `secret`'s data.
fn data_value(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone())
        .ok()
        .filter(|s| !s.is_empty())
}

/// The client setting that logs in as `username` (`sasl.jaas.config`). Quotes and
/// backslashes in the values are escaped, as Kafka's JAAS parser reads them.
pub fn jaas_config(username: &str, password: &Password) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{}\" password=\"{}\";",
        quote(username),
        quote(password.expose())
    )
}

/// The data of a SCRAM user's Secret.
pub fn scram_data(username: &str, password: &Password) -> BTreeMap<String, String> {
    BTreeMap::from([
        (KEY_USERNAME.to_string(), username.to_string()),
        (KEY_PASSWORD.to_string(), password.expose().to_string()),
        (KEY_JAAS.to_string(), jaas_config(username, password)),
    ])
}

/// The user's Secret holding `data`: labelled with its cluster, owned by the User so it is
/// garbage-collected with it.
pub fn build(user: &User, data: BTreeMap<String, String>) -> Secret {
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            FIELD_MANAGER.to_string(),
        ),
        (LABEL_CLUSTER.to_string(), user.spec.cluster_ref.clone()),
        (LABEL_KIND.to_string(), "user".to_string()),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(user.secret_name()),
            namespace: user.namespace(),
            labels: Some(labels),
            owner_references: user.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Server-side-applies the user's Secret. Keys the operator wrote before and no longer
/// writes (a SCRAM user that became a TLS user) go.
pub async fn apply(ctx: &Context, secret: &Secret) -> Result<()> {
    let ns = secret.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    api.patch(
        &secret.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(secret),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn user() -> User {
        let mut u: User = serde_json::from_value(serde_json::json!({
            "apiVersion": "spate.dev/v1alpha1", "kind": "User",
            "metadata": {"name": "alice", "namespace": "team", "uid": "u-1"},
            "spec": {"clusterRef": "spate", "authentication": {"type": "scram-sha-512"}}
        }))
        .expect("user parses");
        u.metadata.generation = Some(1);
        u
    }

    #[test]
    fn jaas_config_escapes_quotes_and_backslashes() {
        let pw = Password(r#"a"b\c"#.into());
        assert_eq!(
            jaas_config("alice", &pw),
            r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="a\"b\\c";"#
        );
    }

    #[test]
    fn secret_is_labelled_and_owned_by_the_user() {
        let u = user();
        let s = build(&u, scram_data("alice", &Password("pw".into())));
        assert_eq!(s.metadata.name.as_deref(), Some("alice"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("team"));
        let labels = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "spate-operator");
        assert_eq!(labels["spate.dev/cluster"], "spate");
        assert_eq!(labels["spate.dev/kind"], "user");
        let owner = &s.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("User", "u-1", Some(true))
        );
        let data = s.data.clone().unwrap_or_default();
        assert_eq!(data[KEY_USERNAME].0, b"alice");
        assert_eq!(data[KEY_PASSWORD].0, b"pw");
        assert!(owned_by(&s, &u));
    }

    #[test]
    fn a_secret_owned_by_something_else_is_not_ours() {
        let u = user();
        let mut s = build(&u, BTreeMap::new());
        s.metadata.owner_references = Some(vec![OwnerReference {
            uid: "other".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        assert!(!owned_by(&s, &u));
        s.metadata.owner_references = None;
        assert!(!owned_by(&s, &u));
    }

    #[test]
    fn password_debug_hides_the_value() {
        assert_eq!(
            format!("{:?}", Password("hunter2".into())),
            "Password([hidden])"
        );
    }
}
