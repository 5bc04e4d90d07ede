//! A certificate's subject as Kafka prints it: Java's `X500Principal.getName()` (RFC 2253).
//!
//! The DN is the input of `ssl.principal.mapping.rules`, so it must be the same string Kafka
//! builds, or rules written for Kafka would not match: RDNs in reverse DER order joined by `,`
//! (no spaces), the AVAs of a multi-valued RDN joined by `+` in DER order, the keywords CN C L ST
//! O OU STREET DC UID, any other attribute as `OID=#<hex of its DER>`; in values `,=+<>#;"\` are
//! escaped with `\`, NUL as `\00`, and leading or trailing spaces with `\`.
//!
//! Only the few DER shapes on the way to the subject are read here (no ASN.1 crate needed).

/// The subject DN of a DER certificate; `None` if the certificate is not well formed.
pub fn subject_dn(cert_der: &[u8]) -> Option<String> {
    let (tag, cert, _) = tlv(cert_der)?;
    expect(tag, SEQUENCE)?;
    let (tag, tbs, _) = tlv(cert)?;
    expect(tag, SEQUENCE)?;
    let mut rest = tbs;
    // version [0] EXPLICIT, optional.
    let (tag, _, after) = tlv(rest)?;
    if tag == 0xA0 {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (tag, subject, _) = tlv(rest)?;
    expect(tag, SEQUENCE)?;
    rfc2253(subject)
}

/// Formats the contents of an X.501 `Name` (a SEQUENCE OF RelativeDistinguishedName).
pub fn rfc2253(name: &[u8]) -> Option<String> {
    let mut rdns = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let (tag, set, after) = tlv(rest)?;
        expect(tag, SET)?;
        let mut avas = Vec::new();
        let mut inner = set;
        while !inner.is_empty() {
            let (tag, ava, after) = tlv(inner)?;
            expect(tag, SEQUENCE)?;
            avas.push(format_ava(ava)?);
            inner = after;
        }
        rdns.push(avas.join("+"));
        rest = after;
    }
    rdns.reverse();
    Some(rdns.join(","))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

fn expect(tag: u8, want: u8) -> Option<()> {
    (tag == want).then_some(())
}

/// One DER element: (tag, contents, the bytes after it). Single-byte tags only, which is
/// all a certificate's outer structure and names use.
fn tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// `AttributeTypeAndValue ::= SEQUENCE { type OID, value ANY }` as `KEYWORD=value`.
fn format_ava(ava: &[u8]) -> Option<String> {
    let (tag, oid, rest) = tlv(ava)?;
    expect(tag, OID)?;
    let oid = dotted(oid)?;
    let (value_tag, value, after) = tlv(rest)?;
    let value_der = &rest[..rest.len() - after.len()];
    match (keyword(&oid), string_value(value_tag, value)) {
        (Some(k), Some(s)) => Some(format!("{k}={}", escape(&s))),
        (k, _) => {
            let hex: String = value_der.iter().map(|b| format!("{b:02x}")).collect();
            Some(format!("{}=#{hex}", k.unwrap_or(&oid)))
        }
    }
}

/// The keywords Java prints in RFC 2253 form; everything else is its OID.
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// The string types Java prints as text (UTF8, Printable, T61, IA5, General, BMP).
fn string_value(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        12 | 19 | 20 | 22 | 27 => Some(String::from_utf8_lossy(value).into_owned()),
        30 => {
            let units: Vec<u16> = value
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ',' | '=' | '+' | '<' | '>' | '#' | ';' | '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    // Leading and trailing spaces (and CRs) are escaped too.
    let chars: Vec<char> = out.chars().collect();
    let lead = chars.iter().take_while(|c| matches!(c, ' ' | '\r')).count();
    let trail = chars.len()
        - chars
            .iter()
            .rev()
            .take_while(|c| matches!(c, ' ' | '\r'))
            .count();
    let mut escaped = String::with_capacity(out.len() + 2);
    for (i, c) in chars.into_iter().enumerate() {
        if i < lead || i >= trail.max(lead) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn dotted(oid: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for (i, b) in oid.iter().enumerate() {
        acc = acc.checked_mul(128)? | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        } else if i == oid.len() - 1 {
            return None;
        }
    }
    if arcs.is_empty() {
        return None;
    }
    Some(
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(content.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(content);
        out
    }

    fn oid(arcs: &[u64]) -> Vec<u8> {
        let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
        for &a in &arcs[2..] {
            let mut bytes = vec![(a & 0x7f) as u8];
            let mut v = a >> 7;
            while v > 0 {
                bytes.push((v & 0x7f) as u8 | 0x80);
                v >>= 7;
            }
            bytes.reverse();
            body.extend(bytes);
        }
        der(OID, &body)
    }

    fn ava(arcs: &[u64], tag: u8, value: &str) -> Vec<u8> {
        let mut body = oid(arcs);
        body.extend(der(tag, value.as_bytes()));
        der(SEQUENCE, &body)
    }

    /// A Name from RDNs in DER (issuing) order, each a list of AVAs.
    fn name(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
        rdns.iter()
            .flat_map(|avas| der(SET, &avas.concat()))
            .collect()
    }

    const CN: &[u64] = &[2, 5, 4, 3];
    const OU: &[u64] = &[2, 5, 4, 11];
    const O: &[u64] = &[2, 5, 4, 10];
    const C: &[u64] = &[2, 5, 4, 6];
    const DC: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 25];
    const EMAIL: &[u64] = &[1, 2, 840, 113549, 1, 9, 1];

    #[test]
    fn rdns_are_printed_in_reverse_order_without_spaces() {
        // openssl -subj /C=US/O=Org/OU=ServiceUsers/CN=Duke; Java: CN=Duke,OU=ServiceUsers,O=Org,C=US
        let n = name(&[
            vec![ava(C, 19, "US")],
            vec![ava(O, 12, "Org")],
            vec![ava(OU, 12, "ServiceUsers")],
            vec![ava(CN, 12, "Duke")],
        ]);
        assert_eq!(rfc2253(&n).unwrap(), "CN=Duke,OU=ServiceUsers,O=Org,C=US");
    }

    #[test]
    fn special_characters_are_escaped_as_java_does() {
        let n = name(&[vec![ava(DC, 22, "cz")], vec![ava(CN, 12, "Tkac, Adam")]]);
        assert_eq!(rfc2253(&n).unwrap(), "CN=Tkac\\, Adam,DC=cz");
        let n = name(&[vec![ava(CN, 12, "a+b=c<d>e#f;g\"h\\i")]]);
        assert_eq!(
            rfc2253(&n).unwrap(),
            "CN=a\\+b\\=c\\<d\\>e\\#f\\;g\\\"h\\\\i"
        );
        let n = name(&[vec![ava(CN, 12, " padded  ")]]);
        assert_eq!(rfc2253(&n).unwrap(), "CN=\\ padded\\ \\ ");
        let n = name(&[vec![ava(CN, 12, "#lead")]]);
        assert_eq!(rfc2253(&n).unwrap(), "CN=\\#lead");
        let n = name(&[vec![ava(CN, 12, "ünïcode")]]);
        assert_eq!(rfc2253(&n).unwrap(), "CN=ünïcode");
    }

    #[test]
    fn multi_valued_rdns_join_with_plus() {
        let n = name(&[
            vec![ava(O, 12, "Org")],
            vec![ava(CN, 12, "alice"), ava(OU, 12, "t")],
        ]);
        assert_eq!(rfc2253(&n).unwrap(), "CN=alice+OU=t,O=Org");
    }

    #[test]
    fn attributes_without_a_keyword_are_printed_as_oid_and_hex() {
        // Java: 1.2.840.113549.1.9.1=#16116475... for emailAddress (an IA5String).
        let n = name(&[
            vec![ava(CN, 12, "duke")],
            vec![ava(EMAIL, 22, "duke@example.com")],
        ]);
        assert_eq!(
            rfc2253(&n).unwrap(),
            "1.2.840.113549.1.9.1=#1610\
             64756b65406578616d706c652e636f6d,CN=duke"
        );
        // A keyword attribute whose value is no string type is hex too.
        let mut body = oid(CN);
        body.extend(der(0x04, b"\x01\x02"));
        let n = name(&[vec![der(SEQUENCE, &body)]]);
        assert_eq!(rfc2253(&n).unwrap(), "CN=#04020102");
    }

    #[test]
    fn malformed_names_are_refused() {
        assert_eq!(rfc2253(&[0x31, 0x05, 0x30]), None);
        assert_eq!(subject_dn(b"not a certificate"), None);
        assert_eq!(subject_dn(&[]), None);
    }

    #[test]
    fn the_subject_of_a_real_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Spate, Inc.");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_dn(cert.der()).unwrap(), "CN=alice,O=Spate\\, Inc.");
    }
}
