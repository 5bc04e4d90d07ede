//! The manifests in `examples/` parse as the resources they claim to be and pass the CRDs'
//! CEL rules, so what README tells users to apply is accepted.

use spate_operator::crd::{Topic, User};

fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_topic_example_is_a_valid_topic() {
    let t: Topic = serde_yaml::from_str(&example("topic.yaml")).expect("examples/topic.yaml");
    kube::core::cel::validate_cel(&t).expect("CEL rules");
    assert_eq!(t.spec.partitions, 6);
}

#[test]
fn the_user_example_is_a_valid_user() {
    let u: User = serde_yaml::from_str(&example("user.yaml")).expect("examples/user.yaml");
    kube::core::cel::validate_cel(&u).expect("CEL rules");
    assert_eq!(u.spec.cluster_ref, "spate");
}
