//! Proofs made with real keys and certificates (rcgen), checked field by field.

use super::*;

/// A host's certificate (DER) and its key, as `p2phost init` makes them.
pub(crate) fn host_with(alg: &'static rcgen::SignatureAlgorithm) -> (Vec<u8>, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate_for(alg).unwrap_or_else(|e| panic!("{e}"));
    let params =
        rcgen::CertificateParams::new(vec!["p2phost".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
    let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
    (cert.der().to_vec(), key)
}

/// A P-256 host, ready to sign.
pub(crate) fn host() -> PairKey {
    let (cert, key) = host_with(&rcgen::PKCS_ECDSA_P256_SHA256);
    PairKey::new(&cert, &key.serialize_der()).unwrap_or_else(|e| panic!("{e}"))
}

fn nonce(byte: u8) -> Nonce {
    Nonce([byte; 32])
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn prove(key: &PairKey, n: &Nonce) -> HostProof {
    key.prove(n).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn both_hosts_name_the_same_reserved_room() {
    let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    assert_eq!(pair_room(&a, &b), pair_room(&b, &a));
    assert_ne!(pair_room(&a, &b), pair_room(&a, &c));
    let name = pair_room(&a, &b);
    assert!(name.is_pair_room());
    assert_eq!(name.as_str().len(), 48);
    assert!(name.nameplate_number().is_none());
    assert!(!RoomId::nameplate(7).is_pair_room());
}

#[test]
fn a_proof_proves_its_host_on_its_connection_only() {
    let (a, b) = (host(), host());
    let proof = prove(&a, &nonce(1));
    assert_eq!(proof.verify(&nonce(1)), Ok(a.id()));
    assert_eq!(prove(&b, &nonce(2)).verify(&nonce(2)), Ok(b.id()));
    // Another connection's nonce: replayed, refused.
    assert_eq!(proof.verify(&nonce(2)), Err(ProofError::Signature));
    // A's certificate is public, A's key is not.
    let forged = HostProof {
        certificate: proof.certificate.clone(),
        signature: prove(&b, &nonce(1)).signature,
    };
    assert_eq!(forged.verify(&nonce(1)), Err(ProofError::Signature));
}

#[test]
fn a_proved_host_may_join_its_own_pair_rooms_only() {
    let (a, b, m) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let room = pair_room(&a, &b);
    let peer = |h: &HostHash| Some(encode_host(h));
    assert_eq!(
        check_pair_join(&room, Some(&a), peer(&b).as_deref()),
        Ok(Some(a))
    );
    assert_eq!(
        check_pair_join(&room, Some(&b), peer(&a).as_deref()),
        Ok(Some(b))
    );
    // A third host, whichever id it claims to meet.
    for other in [a, b] {
        assert_eq!(
            check_pair_join(&room, Some(&m), peer(&other).as_deref()),
            Err(ProofError::WrongRoom(room.clone()))
        );
    }
    // Unproved, or without a peer, or meeting itself.
    assert_eq!(
        check_pair_join(&room, None, peer(&b).as_deref()),
        Err(ProofError::NotProved(room.clone()))
    );
    assert_eq!(
        check_pair_join(&room, Some(&a), None),
        Err(ProofError::NoPeer(room.clone()))
    );
    let own = pair_room(&a, &a);
    assert_eq!(
        check_pair_join(&own, Some(&a), peer(&a).as_deref()),
        Err(ProofError::SameHost)
    );
    for bad in ["short", &"!".repeat(43), &format!("{}=", encode_host(&b))] {
        assert!(matches!(
            check_pair_join(&room, Some(&a), Some(bad)),
            Err(ProofError::Field { field: "peer", .. })
        ));
    }
    // Other rooms take no peer, and need no proof.
    let plain = RoomId::nameplate(7);
    assert_eq!(check_pair_join(&plain, None, None), Ok(None));
    assert_eq!(
        check_pair_join(&plain, Some(&a), peer(&b).as_deref()),
        Err(ProofError::NotAPairRoom(plain))
    );
}

#[test]
fn keys_of_other_curves_and_unreadable_certificates_are_refused() {
    let n = nonce(4);
    for alg in [&rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
        let (cert, key) = host_with(alg);
        // The key's type is checked before the signature is: any bytes do.
        let proof = HostProof {
            certificate: b64(&cert),
            signature: b64(&[0x30u8; 70]),
        };
        assert_eq!(proof.verify(&n), Err(ProofError::KeyType), "{alg:?}");
        // Nor can such a key sign proofs.
        assert!(PairKey::new(&cert, &key.serialize_der()).is_err());
    }
    let junk = HostProof {
        certificate: b64(&[0x30u8; 300]),
        signature: b64(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]),
    };
    assert!(matches!(junk.verify(&n), Err(ProofError::Certificate(_))));
}

#[test]
fn malformed_fields_say_which_field() {
    let a = host();
    let n = nonce(5);
    let good = prove(&a, &n);
    let field = |proof: HostProof| match proof.verify(&n) {
        Err(ProofError::Field { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let with = |edit: &dyn Fn(&mut HostProof)| {
        let mut proof = good.clone();
        edit(&mut proof);
        proof
    };
    assert_eq!(
        field(with(&|p| p.certificate = String::new())),
        "certificate"
    );
    assert_eq!(
        field(with(&|p| p.certificate.push_str("=="))),
        "certificate"
    );
    assert_eq!(
        field(with(&|p| p.certificate.insert(3, '+'))),
        "certificate"
    );
    assert_eq!(
        field(with(
            &|p| p.certificate = "A".repeat(MAX_CERTIFICATE_BYTES * 2)
        )),
        "certificate"
    );
    assert_eq!(field(with(&|p| p.signature = String::new())), "signature");
    assert_eq!(field(with(&|p| p.signature = "A".repeat(200))), "signature");
    assert_eq!(field(with(&|p| p.signature.push('/'))), "signature");
    // Cut short, the signature no longer verifies.
    let cut = with(&|p| p.signature.truncate(40));
    assert!(matches!(
        cut.verify(&n),
        Err(ProofError::Signature | ProofError::Field { .. })
    ));
}

#[test]
fn nonces_travel_as_43_base64url_characters() {
    let n = Nonce::random().unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::to_string(&n).unwrap_or_default();
    assert_eq!(json.len(), 45, "{json}");
    assert_eq!(serde_json::from_str::<Nonce>(&json).ok(), Some(n));
    assert_ne!(Nonce::random().ok(), Some(n));
    let padded = format!("\"{}=\"", "A".repeat(43));
    for bad in [r#""""#, r#""AAAA""#, r#""!!!""#, "7", &padded] {
        assert!(serde_json::from_str::<Nonce>(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_key_that_is_not_the_certificates_cannot_sign() {
    let (cert, _) = host_with(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (_, other_key) = host_with(&rcgen::PKCS_ECDSA_P256_SHA256);
    for key in [b"not a key".to_vec(), other_key.serialize_der()] {
        assert!(matches!(PairKey::new(&cert, &key), Err(ProofError::Key(_))));
    }
    // Its Debug form shows the id, never the key.
    let shown = format!("{:?}", host());
    assert!(shown.starts_with("PairKey { id: "), "{shown}");
}
