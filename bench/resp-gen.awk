# resp-gen.awk: write a deterministic stream of RESP commands to stdout, for
# `redis-cli --pipe`. Used by bench/run.sh to fill the keyspace before the
# throughput runs and to load data in --memory mode.
#
# Variables (awk -v):
#   type    string | list | hash | set | zset | hll | geo | stream | xgroup  (default string)
#   items   number of items to write            (default 1000000)
#   size    value size in bytes                 (default 64)
#   fields  items per key for list/hash/set/zset (default 100; ignored for string)
#
# Item i (0 <= i < items) is written with exactly one command:
#   string  SET   key:%012d <value i>               (the key names redis-benchmark
#                                                    uses with -r: key:000000000042)
#   list    RPUSH list:%012d <value i>              key = int(i / fields)
#   hash    HSET  hash:%012d field:%012d <value i>  field = i % fields, so every
#                                                    hash has field:000000000000..
#   set     SADD  set:%012d <value i>
#   zset    ZADD  zset:%012d <i> <value i>
#   hll     PFADD hll:%012d <value i>               (a HyperLogLog of `fields` elements)
#   geo     GEOADD geo:%012d <lon> <lat> <value i>  points spread evenly (by two
#                                                    coprime strides) over the degree
#                                                    square 13..14 E, 38..39 N
#   stream  XADD  stream:%012d <i+1>-0 f <value i>  (explicit IDs: the same entries,
#                                                    hence the same nodes, in both servers)
#   xgroup  XGROUP CREATE stream:%012d g 0          (item i is key i: a group on each
#                                                    stream a stream fill wrote)
# <value i> is exactly `size` bytes: the 12-digit index i followed by 'x'
# padding (truncated if size < 12), so every value is distinct (sets and
# sorted sets really grow) and the stream is the same on every run.

function bulk(s) { return "$" length(s) "\r\n" s "\r\n" }

BEGIN {
    if (type == "") type = "string"
    if (items == "") items = 1000000
    if (size == "") size = 64
    if (fields == "" || fields < 1) fields = 100
    items += 0; size += 0; fields += 0

    pad = ""
    for (j = 0; j < size; j++) pad = pad "x"

    if (type == "string")    { head = "*3\r\n" bulk("SET") }
    else if (type == "list") { head = "*3\r\n" bulk("RPUSH") }
    else if (type == "hash") { head = "*4\r\n" bulk("HSET") }
    else if (type == "set")  { head = "*3\r\n" bulk("SADD") }
    else if (type == "zset") { head = "*4\r\n" bulk("ZADD") }
    else if (type == "hll")  { head = "*3\r\n" bulk("PFADD") }
    else if (type == "geo")  { head = "*5\r\n" bulk("GEOADD") }
    else if (type == "stream") { head = "*5\r\n" bulk("XADD") }
    else if (type == "xgroup") { head = "*5\r\n" bulk("XGROUP") bulk("CREATE") }
    else { print "resp-gen.awk: unknown type " type > "/dev/stderr"; exit 2 }

    for (i = 0; i < items; i++) {
        idx = sprintf("%012d", i)
        v = substr(idx pad, 1, size)
        if (type == "string") {
            printf "%s%s%s", head, bulk("key:" idx), bulk(v)
        } else if (type == "xgroup") {
            printf "%s%s%s%s", head, bulk("stream:" idx), bulk("g"), bulk("0")
        } else if (type == "stream") {
            printf "%s%s%s%s%s", head, bulk(sprintf("stream:%012d", int(i / fields))), bulk((i + 1) "-0"), bulk("f"), bulk(v)
        } else {
            k = sprintf("%s:%012d", type, int(i / fields))
            if (type == "hash")
                printf "%s%s%s%s", head, bulk(k), bulk(sprintf("field:%012d", i % fields)), bulk(v)
            else if (type == "zset")
                printf "%s%s%s%s", head, bulk(k), bulk(i ""), bulk(v)
            else if (type == "geo")
                printf "%s%s%s%s%s", head, bulk(k), bulk(sprintf("%.6f", 13 + ((i * 7919) % 1000003) / 1000003)), bulk(sprintf("%.6f", 38 + ((i * 104729) % 999983) / 999983)), bulk(v)
            else
                printf "%s%s%s", head, bulk(k), bulk(v)
        }
    }
}
