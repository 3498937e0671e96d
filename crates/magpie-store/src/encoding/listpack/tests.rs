use super::*;

fn bytes_of(entries: &[Entry<'_>]) -> Vec<u8> {
    Listpack::from_entries(entries.iter().copied()).expect("small").into_bytes()
}

#[test]
fn empty_listpack_is_header_and_terminator() {
    assert_eq!(Listpack::new().as_bytes(), &[7, 0, 0, 0, 0, 0, 0xFF]);
    assert_eq!(validate(&[7, 0, 0, 0, 0, 0, 0xFF]), Ok(0));
}

#[test]
fn every_integer_encoding_matches_listpack_c() {
    // (value, encoding + data), as lpEncodeIntegerGetType writes them.
    let cases: &[(i64, &[u8])] = &[
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0xC0, 0x80]),
        (-1, &[0xDF, 0xFF]),
        (4095, &[0xCF, 0xFF]),
        (-4096, &[0xD0, 0x00]),
        (4096, &[0xF1, 0x00, 0x10]),
        (-4097, &[0xF1, 0xFF, 0xEF]),
        (32767, &[0xF1, 0xFF, 0x7F]),
        (-32768, &[0xF1, 0x00, 0x80]),
        (32768, &[0xF2, 0x00, 0x80, 0x00]),
        (-8388608, &[0xF2, 0x00, 0x00, 0x80]),
        (8388608, &[0xF3, 0x00, 0x00, 0x80, 0x00]),
        (i64::from(i32::MIN), &[0xF3, 0x00, 0x00, 0x00, 0x80]),
        (1 << 31, &[0xF4, 0, 0, 0, 0x80, 0, 0, 0, 0]),
        (i64::MIN, &[0xF4, 0, 0, 0, 0, 0, 0, 0, 0x80]),
        (i64::MAX, &[0xF4, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
    ];
    for &(v, enc) in cases {
        let mut want = vec![0u8; 6];
        want.extend_from_slice(enc);
        want.push(enc.len() as u8); // backlen
        want.push(0xFF);
        let total = want.len() as u32;
        want[0..4].copy_from_slice(&total.to_le_bytes());
        want[4] = 1;
        assert_eq!(bytes_of(&[Entry::Int(v)]), want, "{v}");
        // The same value given as its decimal string is stored as the integer.
        assert_eq!(bytes_of(&[Entry::Str(v.to_string().as_bytes())]), want, "{v} as a string");
        let lp = Listpack::from_bytes(want).expect("valid");
        assert_eq!(lp.iter().collect::<Vec<_>>(), vec![Entry::Int(v)]);
    }
}

#[test]
fn strings_take_6_12_and_32_bit_lengths_with_multi_byte_backlens() {
    for len in [0usize, 1, 63, 64, 125, 126, 127, 4095, 4096, 16377, 16378, 16379, 70000] {
        let s = vec![b'x'; len];
        let lp = Listpack::from_entries([Entry::Str(&s)]).expect("small");
        let b = lp.as_bytes();
        let (hdr, enc) = if len < 64 {
            (vec![0x80 | len as u8], 1 + len)
        } else if len < 4096 {
            (vec![0xE0 | (len >> 8) as u8, len as u8], 2 + len)
        } else {
            let mut h = vec![0xF0];
            h.extend_from_slice(&(len as u32).to_le_bytes());
            (h, 5 + len)
        };
        assert_eq!(&b[6..6 + hdr.len()], &hdr[..], "{len}");
        let backlen = &b[6 + enc..b.len() - 1];
        let expect_backlen: Vec<u8> = match enc {
            0..=127 => vec![enc as u8],
            128..=16382 => vec![(enc >> 7) as u8, (enc & 127) as u8 | 128],
            _ => vec![(enc >> 14) as u8, ((enc >> 7) & 127) as u8 | 128, (enc & 127) as u8 | 128],
        };
        assert_eq!(backlen, &expect_backlen[..], "{len}");
        assert_eq!(validate(b), Ok(1));
        assert_eq!(lp.iter().next_back(), Some(Entry::Str(&s)));
    }
}

#[test]
fn strings_that_are_not_canonical_integers_stay_strings() {
    for s in [&b"01"[..], b"-0", b"+1", b" 1", b"1 ", b"9223372036854775808", b"-9223372036854775809", b""] {
        let lp = Listpack::from_entries([Entry::Str(s)]).expect("small");
        assert_eq!(lp.iter().next(), Some(Entry::Str(s)), "{s:?}");
    }
}

/// A model check: random entries pushed, inserted, replaced and removed, compared with a
/// vector after every step, read forwards, backwards and by offsets.
#[test]
fn random_edits_match_a_vector() {
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..200 {
        let mut lp = Listpack::new();
        let mut model: Vec<Vec<u8>> = Vec::new();
        for _ in 0..rng.usize(0..60) {
            let s: Vec<u8> = match rng.u8(0..4) {
                0 => rng.i64(..).to_string().into_bytes(),
                1 => rng.i64(-5000..5000).to_string().into_bytes(),
                2 => (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect(),
                _ => vec![b'a'; rng.usize(0..5000)],
            };
            let op = rng.u8(0..4);
            let offsets: Vec<usize> = std::iter::successors(lp.first(), |&o| lp.next(o)).collect();
            assert_eq!(offsets.len(), model.len());
            if op == 0 || model.is_empty() {
                lp.push_str(&s).expect("small");
                model.push(s);
            } else {
                let i = rng.usize(0..model.len());
                match op {
                    1 => {
                        lp.insert(offsets[i], Entry::Str(&s)).expect("small");
                        model.insert(i, s);
                    }
                    2 => {
                        lp.replace(offsets[i], Entry::Str(&s)).expect("small");
                        model[i] = s;
                    }
                    _ => {
                        lp.remove(offsets[i]);
                        model.remove(i);
                    }
                }
            }
            let forward: Vec<Vec<u8>> = lp.iter().map(Entry::to_vec).collect();
            assert_eq!(forward, model);
            let mut backward: Vec<Vec<u8>> = lp.iter().rev().map(Entry::to_vec).collect();
            backward.reverse();
            assert_eq!(backward, model);
            assert_eq!((lp.len(), validate(lp.as_bytes())), (model.len(), Ok(model.len())));
            let back: Vec<usize> = std::iter::successors(lp.last(), |&o| lp.prev(o)).collect();
            assert_eq!(back.len(), model.len());
        }
    }
}

#[test]
fn the_count_stops_at_65535_as_in_redis() {
    let mut lp = Listpack::new();
    for i in 0..65_540 {
        lp.push_int(i).expect("small");
    }
    assert_eq!(header_count(lp.as_bytes()), COUNT_UNKNOWN);
    assert_eq!((lp.len(), validate(lp.as_bytes())), (65_540, Ok(65_540)));
}

#[test]
fn corrupt_listpacks_are_refused_and_never_panic() {
    let good = bytes_of(&[Entry::Str(b"hello"), Entry::Int(300), Entry::Str(&[b'z'; 100]), Entry::Int(-7)]);
    assert_eq!(validate(&good), Ok(4));
    // Every single-byte change is either refused or still a well-formed listpack.
    for i in 0..good.len() {
        for v in [0u8, 1, 0x7F, 0x80, 0xBF, 0xC0, 0xE0, 0xF0, 0xF4, 0xF5, 0xFE, 0xFF] {
            let mut bad = good.clone();
            bad[i] = v;
            if let Ok(n) = validate(&bad) {
                let lp = Listpack::from_bytes(bad).expect("validated");
                assert_eq!(lp.iter().count(), n);
                assert_eq!(lp.iter().rev().count(), n);
            }
        }
    }
    for cut in 0..good.len() {
        assert!(validate(&good[..cut]).is_err(), "cut at {cut}");
        let _ = iter(&good[..cut]).count();
        let _ = iter(&good[..cut]).rev().count();
    }
    let mut wrong_count = good.clone();
    wrong_count[4] = 3;
    assert!(validate(&wrong_count).is_err());
}

#[test]
fn integers_replaced_in_place_are_encoded_as_appended() {
    let edges = [0i64, 1, 127, 128, -1, 4095, 4096, -4096, -4097, 32767, 32768, -32768, -32769, 8388607, 8388608];
    let more = [-8388608i64, -8388609, i32::MAX as i64, i32::MAX as i64 + 1, i32::MIN as i64, i64::MAX, i64::MIN];
    for n in edges.into_iter().chain(more) {
        let mut expected = Vec::new();
        encode_entry(&mut expected, Entry::Int(n));
        let (bytes, len) = int_entry(n);
        assert_eq!(&bytes[..len], &expected[..], "{n}");
        // Replacing an integer by one of the same size keeps the listpack byte for byte what
        // appending it would have made; other sizes move the tail.
        for m in [n, 5, 200, 70000] {
            let mut lp = Listpack::from_entries([Entry::Str(b"head"), Entry::Int(m), Entry::Str(b"tail")]).unwrap();
            let at = lp.next(lp.first().unwrap()).unwrap();
            lp.replace(at, Entry::Int(n)).unwrap();
            let want = Listpack::from_entries([Entry::Str(b"head"), Entry::Int(n), Entry::Str(b"tail")]).unwrap();
            assert_eq!(lp.as_bytes(), want.as_bytes(), "{m} -> {n}");
            assert_eq!(lp.read(at), Some((Entry::Int(n), lp.skip(at).unwrap())));
        }
    }
}
