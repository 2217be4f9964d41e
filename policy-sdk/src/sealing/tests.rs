use super::*;

const ALICE: &str = r#"["https://idp.test","alice","alice"]"#;
const BOB: &str = r#"["https://idp.test","bob","bob"]"#;

fn key(byte: u8) -> SessionKey {
    SessionKey::new(&[byte; KEY_BYTES]).unwrap()
}

/// The parts of a sealed id after the prefix.
fn parts(sealed: &str) -> Vec<String> {
    sealed
        .strip_prefix(SEALED_PREFIX)
        .unwrap()
        .split('.')
        .map(str::to_owned)
        .collect()
}

fn join(parts: &[String]) -> String {
    format!("{SEALED_PREFIX}{}", parts.join("."))
}

/// `part` decoded, `change` applied, encoded again.
fn altered(sealed: &str, part: usize, change: impl Fn(&mut Vec<u8>)) -> String {
    let mut all = parts(sealed);
    let mut bytes = URL_SAFE_NO_PAD.decode(&all[part]).unwrap();
    change(&mut bytes);
    all[part] = URL_SAFE_NO_PAD.encode(bytes);
    join(&all)
}

#[test]
fn a_sealed_id_opens_for_its_principal_to_the_server_id() {
    let k = key(1);
    let sealed = seal(&k, "3f2a-session", ALICE).unwrap();
    assert!(sealed.starts_with("ws1."), "{sealed}");
    assert_eq!(open(&[k], &sealed, ALICE).unwrap(), "3f2a-session");
}

#[test]
fn a_sealed_id_is_a_valid_session_id_of_bounded_length() {
    let k = key(2);
    let longest = "~".repeat(MAX_SERVER_ID_BYTES);
    for id in ["a", "!", "s p", "\u{7f}", &longest] {
        let Ok(sealed) = seal(&k, id, ALICE) else {
            continue;
        };
        assert!(
            sealed.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "{sealed}"
        );
        assert!(sealed.len() <= MAX_SEALED_BYTES, "{}", sealed.len());
        assert_eq!(open(std::slice::from_ref(&k), &sealed, ALICE).unwrap(), id);
    }
    assert_eq!(
        seal(&k, &longest, ALICE).unwrap().len(),
        MAX_SEALED_BYTES,
        "the bound is reached by the longest id"
    );
}

#[test]
fn server_ids_warden_does_not_seal_are_refused() {
    let k = key(3);
    for bad in [
        String::new(),
        "x".repeat(257),
        "has space".into(),
        "tab\t".into(),
        "é".into(),
    ] {
        assert_eq!(
            seal(&k, &bad, ALICE),
            Err(SealError::InvalidServerId { length: bad.len() }),
            "{bad:?}"
        );
    }
}

#[test]
fn another_principal_is_told_apart_from_a_forgery() {
    let k = key(4);
    let sealed = seal(&k, "s-1", ALICE).unwrap();
    assert_eq!(
        open(std::slice::from_ref(&k), &sealed, BOB),
        Err(UnsealError::AnotherPrincipal)
    );
    // The acting party is part of the binding.
    let agent_for_alice = r#"["https://idp.test","alice","research-agent"]"#;
    assert_eq!(
        open(std::slice::from_ref(&k), &sealed, agent_for_alice),
        Err(UnsealError::AnotherPrincipal)
    );
    let other_issuer = r#"["https://other.test","alice","alice"]"#;
    assert_eq!(
        open(&[k], &sealed, other_issuer),
        Err(UnsealError::AnotherPrincipal)
    );
}

#[test]
fn tampering_with_any_part_breaks_the_seal() {
    let k = key(5);
    let sealed = seal(&k, "session-42", ALICE).unwrap();
    let keys = [k.clone()];
    // Each byte of each part, flipped.
    for part in 0..3 {
        let len = URL_SAFE_NO_PAD.decode(&parts(&sealed)[part]).unwrap().len();
        for index in 0..len {
            let forged = altered(&sealed, part, |b| b[index] ^= 0x01);
            let result = open(&keys, &forged, ALICE);
            assert!(
                matches!(
                    result,
                    Err(UnsealError::BadSeal | UnsealError::Malformed { .. })
                ),
                "part {part} byte {index}: {result:?}"
            );
        }
    }
    // Bob's tag on Alice's session: the seal covers the tag.
    let bobs = seal(&k, "session-42", BOB).unwrap();
    let mut mixed = parts(&sealed);
    mixed[1] = parts(&bobs)[1].clone();
    assert_eq!(open(&keys, &join(&mixed), BOB), Err(UnsealError::BadSeal));
    // Alice's seal on another server id.
    let mut moved = parts(&sealed);
    moved[0] = URL_SAFE_NO_PAD.encode("session-43");
    assert_eq!(open(&keys, &join(&moved), ALICE), Err(UnsealError::BadSeal));
    // A longer id sharing the prefix.
    let extended = altered(&sealed, 0, |b| b.push(b'0'));
    assert_eq!(open(&keys, &extended, ALICE), Err(UnsealError::BadSeal));
}

#[test]
fn a_seal_under_another_key_does_not_open() {
    let sealed = seal(&key(6), "s-1", ALICE).unwrap();
    assert_eq!(open(&[key(7)], &sealed, ALICE), Err(UnsealError::BadSeal));
    assert_eq!(open(&[], &sealed, ALICE), Err(UnsealError::BadSeal));
}

#[test]
fn every_listed_key_unseals_and_the_binding_is_checked_under_the_one_that_held() {
    let (old, new) = (key(8), key(9));
    let sealed_old = seal(&old, "s-old", ALICE).unwrap();
    let sealed_new = seal(&new, "s-new", ALICE).unwrap();
    let ring = [new.clone(), old.clone()];
    assert_eq!(open(&ring, &sealed_old, ALICE).unwrap(), "s-old");
    assert_eq!(open(&ring, &sealed_new, ALICE).unwrap(), "s-new");
    assert_eq!(
        open(&ring, &sealed_old, BOB),
        Err(UnsealError::AnotherPrincipal)
    );
}

#[test]
fn ids_that_are_not_sealed_or_not_well_formed_are_refused_with_the_reason() {
    let k = key(10);
    let keys = [k.clone()];
    let sealed = seal(&k, "s-1", ALICE).unwrap();
    let not_sealed = ["s-1", "3f2a9c", "ws1", "WS1.abc.def.ghi", "v1.a.b.c", ""];
    for id in not_sealed {
        assert_eq!(open(&keys, id, ALICE), Err(UnsealError::NotSealed), "{id}");
    }
    for id in ["ws2.a.b.c", "ws10.x"] {
        assert!(
            matches!(
                open(&keys, id, ALICE),
                Err(UnsealError::UnknownVersion { .. })
            ),
            "{id}"
        );
    }
    let p = parts(&sealed);
    let malformed = [
        format!("{SEALED_PREFIX}{}.{}", p[0], p[1]),
        format!("{sealed}.extra"),
        format!("{SEALED_PREFIX}{}+.{}.{}", p[0], p[1], p[2]),
        format!("{SEALED_PREFIX}{}.{}.{}", p[0], p[1], &p[2][1..]),
        format!("{SEALED_PREFIX}{}.{}A.{}", p[0], p[1], p[2]),
        format!(
            "{SEALED_PREFIX}{}.{}.{}",
            URL_SAFE_NO_PAD.encode("a b"),
            p[1],
            p[2]
        ),
        format!("{SEALED_PREFIX}.{}.{}", p[1], p[2]),
        format!("{sealed}{}", "A".repeat(MAX_SEALED_BYTES)),
        format!("{sealed}="),
        format!("{sealed} "),
    ];
    for id in &malformed {
        assert!(
            matches!(open(&keys, id, ALICE), Err(UnsealError::Malformed { .. })),
            "{id}: {:?}",
            open(&keys, id, ALICE)
        );
    }
}

#[test]
fn a_non_canonical_spelling_of_a_sealed_id_is_refused() {
    let k = key(11);
    // "s-1" is 3 bytes: 4 characters, no spare bits. Two bytes leave four
    // spare bits in the last character.
    let sealed = seal(&k, "s1", ALICE).unwrap();
    let mut p = parts(&sealed);
    let last = p[0].pop().unwrap();
    let sibling = match last {
        'A'..='Y' | 'a'..='y' | '0'..='8' => char::from(last as u8 + 1),
        _ => 'A',
    };
    p[0].push(sibling);
    assert!(matches!(
        open(&[k], &join(&p), ALICE),
        Err(UnsealError::Malformed { .. })
    ));
}

#[test]
fn keys_are_32_to_64_bytes_of_base64url() {
    use base64::engine::general_purpose::URL_SAFE;
    assert!(SessionKey::from_base64url(&URL_SAFE_NO_PAD.encode([7; 32])).is_ok());
    assert!(
        SessionKey::from_base64url(&URL_SAFE.encode([7; 32])).is_ok(),
        "padded"
    );
    assert!(SessionKey::from_base64url(&URL_SAFE_NO_PAD.encode([7; 64])).is_ok());
    assert_eq!(
        SessionKey::from_base64url(&URL_SAFE_NO_PAD.encode([7; 31])).unwrap_err(),
        KeyError::Length { found: 31 }
    );
    assert_eq!(
        SessionKey::from_base64url(&URL_SAFE_NO_PAD.encode([7; 65])).unwrap_err(),
        KeyError::Length { found: 65 }
    );
    let standard = base64::engine::general_purpose::STANDARD_NO_PAD.encode([0xfb; 32]);
    assert!(matches!(
        SessionKey::from_base64url(&standard),
        Err(KeyError::NotBase64(_))
    ));
}

#[test]
fn key_material_is_never_shown() {
    let secret = URL_SAFE_NO_PAD.encode([9; 32]);
    let shown = format!("{:?} {:?}", SessionKeySecret::new(secret.clone()), key(9));
    assert!(!shown.contains(&secret), "{shown}");
    let error = SessionKey::from_base64url(&format!("{secret}!")).unwrap_err();
    assert!(!error.to_string().contains(&secret), "{error}");
}
