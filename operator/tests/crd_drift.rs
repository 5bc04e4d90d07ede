//! Fails when the CRD files in `crds/` or `charts/spate/crds/` differ from what the Rust types
//! generate. Fix with `cargo run -p spate-operator --bin crdgen -- --write` from the
//! workspace root.

use std::path::Path;

#[test]
fn generated_crds_match_checked_in_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("operator/ has a parent");
    let mut drift = Vec::new();
    for dir in spate_operator::crd::CRD_DIRS {
        for (name, yaml) in spate_operator::crd::generated_files() {
            let path = root.join(dir).join(&name);
            match std::fs::read_to_string(&path) {
                Ok(on_disk) if on_disk == yaml => {}
                Ok(_) => drift.push(format!("{} differs", path.display())),
                Err(e) => drift.push(format!("{}: {e}", path.display())),
            }
        }
    }
    assert!(
        drift.is_empty(),
        "CRDs drifted from the Rust types; run `cargo run -p spate-operator --bin crdgen -- --write`:\n{}",
        drift.join("\n")
    );
}

#[test]
fn crd_files_parse_as_custom_resource_definitions() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    for (name, yaml) in spate_operator::crd::generated_files() {
        let crd: CustomResourceDefinition =
            serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(crd.spec.group, "spate.dev");
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(name.trim_end_matches(".yaml"))
        );
    }
}
