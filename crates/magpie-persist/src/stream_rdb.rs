//! Streams between Magpie's store ([`magpie_store::Stream`]) and the plain form of Redis's
//! RDB codec ([`rdb::Stream`]): the nodes are the same listpacks, copied as they are, so
//! DUMP/RESTORE and RDB files carry a stream byte for byte as Redis would.

use std::collections::BTreeMap;

use magpie_store::encoding::Corrupt;
use magpie_store::stream::StreamMeta;
use magpie_store::{Stream, StreamId};

use crate::rdb;

fn to_rdb(id: StreamId) -> rdb::StreamId {
    rdb::StreamId { ms: id.ms, seq: id.seq }
}

fn from_rdb(id: rdb::StreamId) -> StreamId {
    StreamId::new(id.ms, id.seq)
}

impl From<&Stream> for rdb::Stream {
    fn from(s: &Stream) -> rdb::Stream {
        let m = s.meta();
        let groups = s
            .groups()
            .map(|(name, g)| rdb::ConsumerGroup {
                name: name.to_vec(),
                last_id: to_rdb(g.last_id()),
                entries_read: g.entries_read(),
                pending: g
                    .pending()
                    .iter()
                    .map(|(id, nack)| rdb::PendingEntry {
                        id: to_rdb(*id),
                        delivery_time_ms: nack.delivery_time,
                        delivery_count: nack.delivery_count,
                    })
                    .collect(),
                consumers: g
                    .consumers()
                    .map(|(name, c)| rdb::Consumer {
                        name: name.to_vec(),
                        seen_time_ms: c.seen_time,
                        pending: c.pending().iter().map(|id| to_rdb(*id)).collect(),
                    })
                    .collect(),
            })
            .collect();
        rdb::Stream {
            nodes: s.nodes().map(|(id, lp)| rdb::StreamNode { master_id: to_rdb(id), listpack: lp.clone() }).collect(),
            length: m.length,
            last_id: to_rdb(m.last_id),
            first_id: to_rdb(m.first_id),
            max_deleted_id: to_rdb(m.max_deleted_id),
            entries_added: m.entries_added,
            groups,
        }
    }
}

impl TryFrom<&rdb::Stream> for Stream {
    type Error = Corrupt;

    /// Checks each node entry by entry (whatever `sanitize-dump-payload` said when it was
    /// read: Magpie walks them). A pending entry two consumers claim goes to the last, as
    /// when Redis loads it; one no consumer owns is refused (Redis would crash on it later).
    fn try_from(r: &rdb::Stream) -> Result<Stream, Corrupt> {
        let nodes = r.nodes.iter().map(|n| (from_rdb(n.master_id), n.listpack.as_bytes().to_vec())).collect();
        let meta = StreamMeta {
            length: r.length,
            last_id: from_rdb(r.last_id),
            first_id: from_rdb(r.first_id),
            max_deleted_id: from_rdb(r.max_deleted_id),
            entries_added: r.entries_added,
        };
        let mut s = Stream::from_parts(nodes, meta)?;
        for group in &r.groups {
            let g = s.load_group(&group.name, from_rdb(group.last_id), group.entries_read)?;
            let mut pel: BTreeMap<StreamId, (i64, u64, bool)> = BTreeMap::new();
            for p in &group.pending {
                let old = pel.insert(from_rdb(p.id), (p.delivery_time_ms, p.delivery_count, false));
                if old.is_some() {
                    return Err(Corrupt("Duplicated global PEL entry loading stream consumer group"));
                }
            }
            for c in &group.consumers {
                g.load_consumer(&c.name, c.seen_time_ms)?;
                for id in &c.pending {
                    let id = from_rdb(*id);
                    let Some((time, count, owned)) = pel.get_mut(&id) else {
                        return Err(Corrupt("Consumer entry not found in group global PEL"));
                    };
                    *owned = true;
                    g.give(id, &c.name, *time, *count);
                }
            }
            if pel.values().any(|(_, _, owned)| !owned) {
                return Err(Corrupt("Stream CG PEL entry without consumer"));
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_store::stream::{NewId, NodeLimits};

    fn sample() -> Stream {
        let mut s = Stream::new();
        for i in 1..=250u64 {
            let v = i.to_string();
            let args: [&[u8]; 4] = [b"f", v.as_bytes(), b"g", b"x"];
            let pairs = if i % 7 == 0 { 1 } else { 2 };
            s.add(
                NewId::Exact(StreamId::new(i, 0)),
                args[..pairs * 2].iter().copied(),
                pairs,
                NodeLimits::default(),
                0,
            )
            .expect("adds");
        }
        s.delete_ids(&[StreamId::new(3, 0), StreamId::new(150, 0)]);
        s.create_group(b"g1", StreamId::new(10, 0), 10);
        s.create_group(b"g0", StreamId::MIN, -1);
        let g = s.group_mut(b"g1").expect("group");
        g.create_consumer(b"bob", 5);
        g.create_consumer(b"alice", 6);
        g.give(StreamId::new(4, 0), b"alice", 100, 2);
        g.give(StreamId::new(5, 0), b"bob", 101, 1);
        g.give(StreamId::new(3, 0), b"bob", 102, 7);
        s
    }

    #[test]
    fn streams_convert_both_ways_unchanged() {
        let s = sample();
        let r = rdb::Stream::from(&s);
        assert_eq!(r.nodes.len(), 3);
        assert_eq!(r.entries().expect("entries").len(), 248);
        let back = Stream::try_from(&r).expect("converts back");
        assert_eq!(back, s);
        // Through the codec too: DUMP and RESTORE.
        let payload =
            rdb::dump(&rdb::Object::Value(magpie_store::Value::Stream(Box::new(s.clone()))), &Default::default());
        let Ok(rdb::Object::Stream(read)) = rdb::restore(&payload, &Default::default()) else { panic!("a stream") };
        assert_eq!(Stream::try_from(&*read).expect("converts"), s);
    }

    #[test]
    fn inconsistent_streams_are_refused() {
        let s = sample();
        let mut r = rdb::Stream::from(&s);
        r.groups[1].consumers[0].pending.clear(); // alice's entry has no owner
        assert!(Stream::try_from(&r).is_err());
        let mut r = rdb::Stream::from(&s);
        r.groups[1].consumers[0].pending.push(rdb::StreamId { ms: 99, seq: 0 });
        assert!(Stream::try_from(&r).is_err());
        let mut r = rdb::Stream::from(&s);
        // A sound listpack, but not a sound node: the last entry's lp-count is off.
        let lp = &mut r.nodes[0].listpack;
        let last = lp.last().expect("entries");
        lp.replace(last, magpie_store::encoding::Entry::Int(99)).expect("replaced");
        assert!(Stream::try_from(&r).is_err());
    }
}
