use super::*;

/// Stores what `open` asked to write, as the store would.
fn stored_after(mut stored: StoredKeys, writes: &KeyWrites) -> StoredKeys {
    stored.keks.extend(writes.keks.iter().cloned());
    for (id, kek, wrapped) in &writes.rewrapped {
        if let Some(key) = stored.keys.iter_mut().find(|k| k.id == *id) {
            key.kek_id = Some(*kek);
            key.wrapped = wrapped.clone();
        }
    }
    stored.keys.extend(writes.new_keys.iter().cloned());
    stored.accounts_without_key.clear();
    stored
}

fn fresh(master: &MasterKey, accounts: &[&str]) -> (Keyring, StoredKeys) {
    let stored = StoredKeys {
        accounts_without_key: accounts.iter().map(|a| a.to_string()).collect(),
        ..StoredKeys::default()
    };
    let (ring, writes) = Keyring::open(master, &stored, 1).unwrap();
    (ring, stored_after(stored, &writes))
}

#[test]
fn a_fresh_directory_gets_a_kek_an_instance_key_and_one_key_per_account() {
    let master = MasterKey::from_bytes([7; 32]);
    let (ring, stored) = fresh(&master, &["acc_a", "acc_b"]);
    assert_eq!(stored.keks.len(), 1);
    let data: Vec<_> = stored
        .keys
        .iter()
        .filter(|k| k.purpose == KeyPurpose::Data)
        .map(|k| k.account_id.clone())
        .collect();
    assert_eq!(data, [None, Some("acc_a".into()), Some("acc_b".into())]);
    let a = ring.active_key_of("acc_a").unwrap();
    let b = ring.active_key_of("acc_b").unwrap();
    assert_ne!(a, b);
    assert_eq!(ring.active_key_of("acc_unknown"), ring.active_key_of(""));
    // Reopening writes nothing.
    let (_, writes) = Keyring::open(&master, &stored, 2).unwrap();
    assert!(writes.is_empty());
}

#[test]
fn ciphertexts_round_trip_are_bound_to_their_context_and_name_the_accounts_key() {
    let (ring, _) = fresh(&MasterKey::from_bytes([7; 32]), &["acc_a"]);
    let sealed = ring
        .encrypt("acc_a", b"+447700900123", b"to:msg_1")
        .unwrap();
    assert_eq!(Keyring::key_id_of(&sealed), ring.active_key_of("acc_a"));
    assert_eq!(
        ring.decrypt(&sealed, b"to:msg_1").unwrap(),
        b"+447700900123"
    );
    assert!(ring.decrypt(&sealed, b"to:msg_2").is_err());
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        ring.decrypt(&tampered, b"to:msg_1"),
        Err(KeyringError::Decrypt)
    ));
    assert!(ring.decrypt(&[1, 0], b"c").is_err());
}

#[test]
fn a_rotated_key_takes_over_writes_while_old_ciphertexts_still_open_until_retired() {
    let master = MasterKey::from_bytes([9; 32]);
    let (ring, mut stored) = fresh(&master, &["acc_a"]);
    let old = ring.encrypt("acc_a", b"old", b"c").unwrap();
    let next = stored.keys.iter().map(|k| k.id).max().unwrap() + 1;
    stored
        .keys
        .push(ring.new_data_key(next, Some("acc_a"), 5).unwrap());
    ring.reload(&stored.keys).unwrap();
    let new = ring.encrypt("acc_a", b"new", b"c").unwrap();
    assert_eq!(Keyring::key_id_of(&new), Some(next));
    let (reopened, _) = Keyring::open(&master, &stored, 6).unwrap();
    assert_eq!(reopened.decrypt(&old, b"c").unwrap(), b"old");
    assert_eq!(reopened.decrypt(&new, b"c").unwrap(), b"new");
    let first = Keyring::key_id_of(&old).unwrap();
    let retired = stored.keys.iter_mut().find(|k| k.id == first).unwrap();
    retired.wrapped.clear();
    retired.retired_at = Some(7);
    reopened.reload(&stored.keys).unwrap();
    assert!(!reopened.holds(first));
    assert!(reopened.decrypt(&old, b"c").is_err());
    assert_eq!(reopened.decrypt(&new, b"c").unwrap(), b"new");
}

#[test]
fn another_master_key_cannot_open_the_directory_until_its_wraps_are_stored() {
    let master = MasterKey::from_bytes([1; 32]);
    let (ring, mut stored) = fresh(&master, &["acc_a"]);
    let sealed = ring.encrypt("acc_a", b"kept", b"c").unwrap();
    let api_hash = ring.hash_api_key("rk_token");
    let other = MasterKey::from_bytes([2; 32]);
    assert!(matches!(
        Keyring::open(&other, &stored, 2),
        Err(KeyringError::MasterKeyMismatch)
    ));
    stored.keks.extend(ring.wrap_keks_for(&other, 3).unwrap());
    stored.keks.retain(|k| k.master_fp == other.fingerprint());
    let (rotated, writes) = Keyring::open(&other, &stored, 4).unwrap();
    assert!(writes.is_empty());
    assert_eq!(rotated.decrypt(&sealed, b"c").unwrap(), b"kept");
    assert_eq!(rotated.hash_api_key("rk_token"), api_hash);
    assert!(matches!(
        Keyring::open(&master, &stored, 5),
        Err(KeyringError::MasterKeyMismatch)
    ));
}

#[test]
fn blind_indexes_differ_between_accounts_and_between_domains() {
    let (ring, _) = fresh(&MasterKey::from_bytes([7; 32]), &["acc_a", "acc_b"]);
    let a = ring.blind_index("acc_a", b"phone", b"+1");
    assert_eq!(a, ring.blind_index("acc_a", b"phone", b"+1"));
    assert_ne!(a, ring.blind_index("acc_b", b"phone", b"+1"));
    assert_ne!(a, ring.blind_index("acc_a", b"email", b"+1"));
    // An account made after the keyring loaded gets the same tags before and after reload.
    let before = ring.blind_index("acc_new", b"phone", b"+1");
    assert_ne!(before, a);
    assert_eq!(before, ring.blind_index("acc_new", b"phone", b"+1"));
}

#[test]
fn a_directory_of_an_earlier_release_keeps_its_keys_hashes_and_tags() {
    let master = MasterKey::from_bytes([3; 32]);
    // Data key 1 as earlier releases wrapped it, and a ciphertext under it.
    let key = random_key();
    let legacy_kek = aes_from(&master.derive("key-encryption"));
    let wrapped = seal_with(&legacy_kek, &key[..], &legacy_key_aad(1)).unwrap();
    let cipher = aes_from(&key);
    let nonce = [4u8; NONCE_LEN];
    let mut old = vec![CIPHERTEXT_VERSION, 0, 0, 0, 1];
    old.extend_from_slice(&nonce);
    old.extend(
        cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: b"from 0.1",
                    aad: b"c",
                },
            )
            .unwrap(),
    );
    let stored = StoredKeys {
        keys: vec![DataKeyRecord {
            id: 1,
            account_id: None,
            purpose: KeyPurpose::Data,
            kek_id: None,
            wrapped,
            uses: 10,
            created_at: 0,
            retired_at: None,
        }],
        accounts_without_key: vec!["acc_old".into()],
        legacy_index_accounts: vec!["acc_old".into()],
        keks: Vec::new(),
    };
    let (ring, writes) = Keyring::open(&master, &stored, 1).unwrap();
    assert_eq!(writes.keks.len(), 1);
    assert_eq!(writes.rewrapped.len(), 1);
    assert_eq!(ring.decrypt(&old, b"c").unwrap(), b"from 0.1");
    let mut legacy_hash = hmac_from(&master.derive("api-key-hash")[..]);
    legacy_hash.update(b"rk_old");
    let legacy_hash: [u8; 32] = legacy_hash.finalize().into_bytes().into();
    assert_eq!(ring.hash_api_key("rk_old"), legacy_hash);
    let mut legacy_tag = hmac_from(&master.derive("blind-index")[..]);
    legacy_tag.update(b"phone\0+1");
    let legacy_tag = legacy_tag.finalize().into_bytes();
    assert_eq!(
        ring.blind_index("acc_old", b"phone", b"+1"),
        legacy_tag[..16]
    );
    assert_ne!(
        ring.blind_index("acc_new", b"phone", b"+1"),
        legacy_tag[..16]
    );
    // Once stored, the next start needs nothing more, and still reads the old row.
    let stored = stored_after(stored, &writes);
    let (again, writes) = Keyring::open(&master, &stored, 2).unwrap();
    assert!(writes.is_empty());
    assert_eq!(again.decrypt(&old, b"c").unwrap(), b"from 0.1");
    assert_eq!(again.hash_api_key("rk_old"), legacy_hash);
}

#[test]
fn encryptions_are_counted_per_key_and_survive_a_reload() {
    let (ring, stored) = fresh(&MasterKey::from_bytes([7; 32]), &["acc_a"]);
    for _ in 0..3 {
        ring.encrypt("acc_a", b"x", b"c").unwrap();
    }
    ring.encrypt("", b"x", b"c").unwrap();
    ring.reload(&stored.keys).unwrap();
    let a = ring.active_key_of("acc_a").unwrap();
    let instance = ring.active_key_of("").unwrap();
    let mut expected = vec![(a, 3), (instance, 1)];
    expected.sort_unstable();
    assert_eq!(ring.take_uses(), expected);
    assert!(ring.take_uses().is_empty());
}

#[test]
fn a_tampered_wrap_or_a_key_moved_to_another_account_does_not_unwrap() {
    let master = MasterKey::from_bytes([7; 32]);
    let (_, stored) = fresh(&master, &["acc_a", "acc_b"]);
    let mut moved = stored.clone();
    let key = moved
        .keys
        .iter_mut()
        .find(|k| k.account_id.as_deref() == Some("acc_a"))
        .unwrap();
    key.account_id = Some("acc_b".into());
    assert!(matches!(
        Keyring::open(&master, &moved, 2),
        Err(KeyringError::DataKeyUnwrap(_))
    ));
}
