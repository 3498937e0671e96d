//! Arbitrary bytes as a stream's RESTORE payload (checksum check off): a stream Redis's
//! checks accept becomes Magpie's stream (or is refused, never a panic), and then takes every
//! kind of change the commands make, driven by the rest of the input, without panicking, its
//! counters staying in step with its entries.

#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_persist::rdb::{Object, ReadOptions, restore};
use magpie_store::stream::{NewId, NodeLimits, Trim, TrimTo};
use magpie_store::{Stream, StreamId};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let at = (split as usize * rest.len() / 256).min(rest.len());
    let (payload, ops) = rest.split_at(at);
    let opts = ReadOptions { deep_sanitize: split & 1 == 1, verify_checksum: false };
    let Ok(Object::Stream(r)) = restore(payload, &opts) else { return };
    let Ok(mut s) = Stream::try_from(&*r) else { return };
    let _ = magpie_persist::rdb::Stream::from(&s);
    let limits = NodeLimits { max_bytes: 100, max_entries: 3 };
    for op in ops.chunks(3) {
        let (a, b) = (u64::from(op[0]), op.get(1).copied().unwrap_or(0));
        let id = StreamId::new(a / 4, u64::from(b % 3));
        match op.get(2).copied().unwrap_or(0) % 8 {
            0 => {
                let _ = s.add(NewId::Exact(id), [&b"f"[..], b"v"].into_iter(), 1, limits, 0);
            }
            1 => {
                let _ = s.add(NewId::Auto, [&b"f"[..], &op[..]].into_iter(), 1, limits, a);
            }
            2 => {
                s.delete_ids(&[id]);
            }
            3 => {
                let trim = Trim { to: TrimTo::MaxLen(a % 16), approx: b & 1 == 1, limit: u64::from(b >> 4) };
                s.trim_would_change(&trim);
                s.trim(&trim);
            }
            4 => {
                let trim = Trim { to: TrimTo::MinId(id), approx: b & 1 == 1, limit: 0 };
                s.trim(&trim);
            }
            5 => {
                s.create_group(b"g", id, -1);
                s.deliver_new(b"g", &op[..1], id, usize::from(b % 4), b & 1 == 1, 0, |_, _| {});
            }
            6 => {
                let groups: Vec<Vec<u8>> = s.groups().map(|(n, _)| n.to_vec()).collect();
                for g in groups {
                    s.deliver_history(&g, &op[..1], StreamId::MIN, 0, 1, |_, _, _| {});
                    if let Some(g) = s.group_mut(&g) {
                        g.ack(id);
                        g.delete_consumer(&op[1..]);
                    }
                }
            }
            _ => {
                let meta = s.meta();
                for (_, g) in s.groups() {
                    let _ = meta.lag(g);
                }
                let _ = s.rax_node_count();
                let _ = s.last_valid_id();
            }
        }
        let forward = s.range(StreamId::MIN, StreamId::MAX, false).count();
        let backward = s.range(StreamId::MIN, StreamId::MAX, true).count();
        assert_eq!(forward, backward);
    }
});
