//! Topic name rules, as Kafka enforces them.

pub const MAX_NAME_LEN: usize = 249;

/// Why a topic name is refused (INVALID_TOPIC_EXCEPTION), or `None` if it is legal.
pub fn invalid_topic_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("topic name cannot be `{name}`"));
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "topic name is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "topic name `{name}` contains `{c}`; only ASCII alphanumerics, '.', '_' and '-' are legal"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_legal_names_and_refuses_the_rest() {
        for ok in ["a", "orders.v1", "my_topic-2", &"x".repeat(249)] {
            assert_eq!(invalid_topic_name(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", &"x".repeat(250)] {
            assert!(invalid_topic_name(bad).is_some(), "{bad}");
        }
    }
}
