use super::*;

fn settings() -> Settings {
    Settings::new(Config::load(Options::default()).unwrap())
}

#[test]
fn set_is_all_or_nothing() {
    let s = settings();
    let err = s.set(&[(b"timeout", b"5"), (b"maxclients", b"zero")]).unwrap_err();
    assert!(err.contains("'maxclients'"), "{err}");
    assert_eq!(s.timeout(), 0);
    s.set(&[(b"TIMEOUT", b"5"), (b"proto-max-bulk-len", b"2mb")]).unwrap();
    assert_eq!((s.timeout(), s.proto_max_bulk_len()), (5, 2 << 20));
    assert!(s.set(&[(b"port", b"1")]).unwrap_err().contains("immutable"));
    assert!(s.set(&[(b"nope", b"1")]).unwrap_err().starts_with("Unknown option"));
}

#[test]
fn output_buffer_limits_as_redis() {
    let s = settings();
    let get = |s: &Settings| s.get([&b"client-output-buffer-limit"[..]].into_iter())[0].1.clone();
    assert_eq!(get(&s), "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60");
    s.set(&[(b"client-output-buffer-limit", b"pubsub 1mb 512kb 10")]).unwrap();
    assert_eq!(s.output_buffer_limit(ClientClass::Pubsub), (1 << 20, 512 << 10, 10));
    s.set(&[(b"client-output-buffer-limit", b"replica 1 2 3 NORMAL 4k 5 6")]).unwrap();
    assert_eq!(get(&s), "normal 4000 5 6 slave 1 2 3 pubsub 1048576 524288 10");
    s.set(&[(b"client-output-buffer-limit", b"")]).unwrap();
    for (bad, why) in [
        ("pubsub 1 2", "Wrong number"),
        (" pubsub 1 2 3", "Wrong number"),
        ("master 1 2 3", "Invalid client class"),
        ("pubsub -1 2 3", "Error in hard"),
        ("pubsub 1 2 3x", "Error in hard"),
    ] {
        let err = s.set(&[(b"client-output-buffer-limit", bad.as_bytes())]).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
    }
    assert_eq!(get(&s), "normal 4000 5 6 slave 1 2 3 pubsub 1048576 524288 10");
    let err = s.set(&[(b"notify-keyspace-events", b"KEq")]).unwrap_err();
    assert!(err.ends_with("Invalid event class character. Use 'Ag$lshzxeKEtmdn'."), "{err}");
    s.set(&[(b"notify-keyspace-events", b"Ex$")]).unwrap();
    assert_eq!(s.get([&b"notify-keyspace-events"[..]].into_iter())[0].1, "$xE");
}

#[test]
fn get_matches_globs_once() {
    let s = settings();
    let got = s.get([&b"max*"[..], b"maxclients"].into_iter());
    assert_eq!(got.iter().filter(|(name, _)| *name == "maxclients").count(), 1);
    assert!(got.contains(&("maxclients", "10000".to_owned())));
    assert!(got.iter().all(|(name, _)| name.starts_with("max")));
}

#[test]
fn file_and_flags_merge() {
    let dir = std::env::temp_dir().join(format!("magpie-config-{}", std::process::id()));
    std::fs::write(&dir, "port = 7000\ntimeout = 3\n").unwrap();
    let cli = Options { config: Some(dir.clone()), timeout: Some(9), ..Options::default() };
    let c = Config::load(cli).unwrap();
    assert_eq!((c.port, c.timeout), (7000, 9));
    std::fs::write(&dir, "prot = 7000\n").unwrap();
    let cli = Options { config: Some(dir.clone()), ..Options::default() };
    assert!(Config::load(cli).unwrap_err().contains("unknown field"));
    std::fs::remove_file(dir).ok();
}
