//! `ssl.principal.mapping.rules`: Kafka's `SslPrincipalMapper`.
//!
//! A comma-separated list of `DEFAULT` (the DN unchanged) and `RULE:pattern/replacement/[L|U]`.
//! The first rule whose pattern matches the whole DN wins; its result is Java's
//! `dn.replaceAll(pattern, replacement)`, lower- or upper-cased with `L`/`U`. No rule matching
//! fails the authentication. `$n` beyond the pattern's group count is a literal `$n`.
//!
//! Rules are split and parsed with Kafka's own regular expressions; the `regex` crate has the
//! same leftmost-first alternation and lazy quantifiers. Java's `replaceAll` (its `$n`/`\x`
//! replacement syntax and its empty match after a non-empty one) is reproduced by hand.
use regex::{Captures, Regex};

const RULE_PATTERN: &str = r"(DEFAULT)|RULE:((\\.|[^\\/])*)/((\\.|[^\\/])*)/([LU]?).*?|(.*?)";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("invalid rule `{0}`")]
    InvalidRule(String),
    #[error("invalid rule `{rule}`: {reason}")]
    BadPattern { rule: String, reason: String },
    #[error("no rules apply to {0}")]
    NoMatchingRule(String),
}

#[derive(Debug, Clone)]
pub struct SslPrincipalMapper {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        /// The pattern anchored at both ends, for Java's `Matcher.matches()`: leftmost-first
        /// search may find a shorter match where `matches()` backtracks to a whole one.
        whole: Regex,
        /// As written, for `Display`.
        source: String,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

impl SslPrincipalMapper {
    pub fn parse(rules: &str) -> Result<Self, MappingError> {
        let splitter = Regex::new(&format!(r"\s*({RULE_PATTERN})\s*(,\s*|$)"))
            .map_err(|e| MappingError::InvalidRule(e.to_string()))?;
        let parser = Regex::new(&format!(r"^(?:{RULE_PATTERN})"))
            .map_err(|e| MappingError::InvalidRule(e.to_string()))?;
        let trimmed = rules.trim();
        let mut parsed = Vec::new();
        for caps in java_find_iter(&splitter, trimmed) {
            let rule = caps.get(1).map_or("", |m| m.as_str());
            let m = parser
                .captures(rule)
                .ok_or_else(|| MappingError::InvalidRule(rule.to_string()))?;
            let end = m.get(0).map_or(0, |m| m.end());
            if end != rule.len() {
                return Err(MappingError::InvalidRule(rule.to_string()));
            }
            if m.get(1).is_some() {
                parsed.push(Rule::Default);
            } else if let Some(pattern) = m.get(2) {
                let source = pattern.as_str().to_string();
                let regex = Regex::new(&source).map_err(|e| MappingError::BadPattern {
                    rule: rule.to_string(),
                    reason: e.to_string(),
                })?;
                let whole = Regex::new(&format!(r"^(?:{source})$")).map_err(|e| {
                    MappingError::BadPattern {
                        rule: rule.to_string(),
                        reason: e.to_string(),
                    }
                })?;
                parsed.push(Rule::Replace {
                    pattern: regex,
                    whole,
                    source,
                    replacement: m.get(4).map_or("", |m| m.as_str()).to_string(),
                    case: match m.get(6).map(|m| m.as_str()) {
                        Some("L") => Case::Lower,
                        Some("U") => Case::Upper,
                        _ => Case::Keep,
                    },
                });
            }
            // Anything else is an empty rule, which Kafka ignores.
        }
        Ok(Self { rules: parsed })
    }

    /// The principal name for a subject DN.
    pub fn name(&self, dn: &str) -> Result<String, MappingError> {
        for rule in &self.rules {
            if let Some(name) = rule.apply(dn) {
                return Ok(name);
            }
        }
        Err(MappingError::NoMatchingRule(dn.to_string()))
    }
}

impl std::fmt::Display for SslPrincipalMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rules: Vec<String> = self.rules.iter().map(Rule::to_string).collect();
        write!(f, "[{}]", rules.join(", "))
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Default => f.write_str("DEFAULT"),
            Rule::Replace {
                source,
                replacement,
                case,
                ..
            } => {
                write!(f, "RULE:{source}/{replacement}")?;
                match case {
                    Case::Lower => f.write_str("/L"),
                    Case::Upper => f.write_str("/U"),
                    Case::Keep => Ok(()),
                }
            }
        }
    }
}

impl Rule {
    fn apply(&self, dn: &str) -> Option<String> {
        let Rule::Replace {
            pattern,
            whole,
            replacement,
            case,
            ..
        } = self
        else {
            return Some(dn.to_string());
        };
        if !whole.is_match(dn) {
            return None;
        }
        let groups = pattern.captures_len() - 1;
        let mut out = String::with_capacity(dn.len());
        let mut last = 0;
        for caps in java_find_iter(pattern, dn) {
            let Some(m) = caps.get(0) else { continue };
            out.push_str(&dn[last..m.start()]);
            expand_java(replacement, groups, &caps, &mut out);
            last = m.end();
        }
        out.push_str(&dn[last..]);
        Some(match case {
            Case::Keep => out,
            Case::Lower => out.to_lowercase(),
            Case::Upper => out.to_uppercase(),
        })
    }
}

/// Matches as Java's `Matcher.find()` loop sees them: an empty match right after a non-empty
/// one is reported (the `regex` crate skips it), and after an empty match the search moves on
/// one character.
fn java_find_iter<'h>(re: &Regex, hay: &'h str) -> Vec<Captures<'h>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos <= hay.len() {
        let Some(caps) = re.captures_at(hay, pos) else {
            break;
        };
        let Some(m) = caps.get(0) else { break };
        pos = if m.end() == m.start() {
            // Step past one character (not one byte).
            match hay[m.end()..].chars().next() {
                Some(c) => m.end() + c.len_utf8(),
                None => hay.len() + 1,
            }
        } else {
            m.end()
        };
        out.push(caps);
    }
    out
}

/// Java's `Matcher.appendReplacement` syntax: `\x` is a literal x, `$n` a group (further digits
/// are taken while the number stays a group), and `$n` beyond the group count stays literal
/// (Kafka escapes those before calling `replaceAll`).
fn expand_java(replacement: &str, groups: usize, caps: &Captures<'_>, out: &mut String) {
    let chars: Vec<char> = replacement.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                out.push(chars[i + 1]);
                i += 2;
            }
            '$' if i + 1 < chars.len() && chars[i + 1].is_ascii_digit() && groups > 0 => {
                let first = chars[i + 1].to_digit(10).unwrap_or(0) as usize;
                if first > groups {
                    // Kafka's escapeLiteralBackReferences: a literal `$`.
                    out.push('$');
                    i += 1;
                    continue;
                }
                let mut group = first;
                let mut j = i + 2;
                while j < chars.len() {
                    let Some(d) = chars[j].to_digit(10) else {
                        break;
                    };
                    let next = group * 10 + d as usize;
                    if next > groups {
                        break;
                    }
                    group = next;
                    j += 1;
                }
                if let Some(m) = caps.get(group) {
                    out.push_str(m.as_str());
                }
                i = j;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // The cases of Kafka's SslPrincipalMapperTest.

    #[test]
    fn valid_rules_parse() {
        for rules in [
            "DEFAULT",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L",
            "RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U",
            "RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/",
            "RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/",
        ] {
            SslPrincipalMapper::parse(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
        }
    }

    #[test]
    fn invalid_rules_are_refused() {
        for rules in [
            "default",
            "DEFAUL",
            "DEFAULT/L",
            "DEFAULT/U",
            "RULE:CN=(.*?),OU=ServiceUsers.*/$1",
            "rule:^CN=(.*?),OU=ServiceUsers.*$/$1/",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/L",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/U",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/LU",
        ] {
            assert!(
                SslPrincipalMapper::parse(rules).is_err(),
                "{rules} accepted"
            );
        }
    }

    #[test]
    fn kafkas_mapping_examples() {
        let rules = [
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
            "DEFAULT",
        ]
        .join(", ");
        let m = SslPrincipalMapper::parse(&rules).unwrap();
        assert_eq!(
            m.name("CN=Duke,OU=ServiceUsers,O=Org,C=US").unwrap(),
            "duke"
        );
        assert_eq!(
            m.name("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US").unwrap(),
            "duke@sme"
        );
        assert_eq!(m.name("cn=duke,ou=sme,dc=mycp,dc=com").unwrap(), "DUKE@SME");
        assert_eq!(
            m.name("cN=duke,OU=JavaSoft,O=Sun Microsystems").unwrap(),
            "DUKE"
        );
        assert_eq!(
            m.name("OU=JavaSoft,O=Sun Microsystems,C=US").unwrap(),
            "OU=JavaSoft,O=Sun Microsystems,C=US"
        );
    }

    #[test]
    fn rules_split_as_kafka_splits_them() {
        let cases = [
            ("[]", ""),
            ("[DEFAULT]", "DEFAULT"),
            ("[RULE:/]", "RULE://"),
            ("[RULE:/.*]", "RULE:/.*/"),
            ("[RULE:/.*/L]", "RULE:/.*/L"),
            ("[RULE:/, DEFAULT]", "RULE://,DEFAULT"),
            ("[RULE:/, DEFAULT]", "  RULE:// ,  DEFAULT  "),
            (
                "[RULE:   /     , DEFAULT]",
                "  RULE:   /     / ,  DEFAULT  ",
            ),
            (
                "[RULE:  /     /U, DEFAULT]",
                "  RULE:  /     /U   ,DEFAULT  ",
            ),
            (
                "[RULE:([A-Z]*)/$1/U, RULE:([a-z]+)/$1, DEFAULT]",
                "  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ",
            ),
            ("[]", ",   , , ,      , , ,   "),
            ("[RULE:/, DEFAULT]", ",,RULE://,,,DEFAULT,,"),
            (
                "[RULE: /   , DEFAULT]",
                ",  , RULE: /   /    ,,,   DEFAULT, ,   ",
            ),
            (
                "[RULE:   /  /U, DEFAULT]",
                "     ,  , RULE:   /  /U    ,,  ,DEFAULT, ,",
            ),
            (
                r"[RULE:\**\/+/*/L, RULE:\/*\**/**]",
                r"RULE:\**\/+/*/L,RULE:\/*\**/**/",
            ),
        ];
        for (expected, rules) in cases {
            let m = SslPrincipalMapper::parse(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
            assert_eq!(m.to_string(), expected, "{rules:?}");
        }
    }

    #[test]
    fn escaped_commas_in_a_dn() {
        let m = SslPrincipalMapper::parse(r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT").unwrap();
        assert_eq!(
            m.name(r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz").unwrap(),
            r"Tkac\, Adam"
        );
    }

    #[test]
    fn no_matching_rule_fails() {
        let m = SslPrincipalMapper::parse("RULE:^CN=(.*)$/$1/").unwrap();
        assert_eq!(
            m.name("O=x"),
            Err(MappingError::NoMatchingRule("O=x".into()))
        );
    }

    #[test]
    fn back_references_follow_java() {
        // Beyond the group count: literal. Extra digits are taken while they name a group.
        let m = SslPrincipalMapper::parse("RULE:^CN=(.*)$/$1@$4/").unwrap();
        assert_eq!(m.name("CN=a").unwrap(), "a@$4");
        let m = SslPrincipalMapper::parse("RULE:^CN=(.*)$/$12/").unwrap();
        assert_eq!(m.name("CN=a").unwrap(), "a2");
        // Java's replaceAll also replaces the empty match at the end after a full match.
        let m = SslPrincipalMapper::parse("RULE:.*/x/").unwrap();
        assert_eq!(m.name("CN=a").unwrap(), "xx");
    }
}
