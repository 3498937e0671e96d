"""Schemathesis hooks for .ci/openapi-check.sh: MessagePack bodies and answers.

The HTTP API takes and gives MessagePack (application/msgpack) as well as JSON, and
openapi.json documents both. Schemathesis knows neither by itself: without these hooks it
would send no MessagePack request and check no MessagePack answer against its schema.
"""

import msgpack
import schemathesis


def _packable(v):
    """`v` with the integers MessagePack cannot hold (beyond 64 bits, which JSON can carry
    and Hypothesis draws) written as their decimal text: the argument the server would make
    of such a number anyway."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and not -(2**63) <= v < 2**64:
        return str(v)
    if isinstance(v, list):
        return [_packable(x) for x in v]
    if isinstance(v, dict):
        return {_packable(k): _packable(x) for k, x in v.items()}
    return v


@schemathesis.serializer("application/msgpack")
def to_msgpack(ctx, value):
    # Text as str, bytes as bin: both are strings to the server ("strings are bytes").
    return msgpack.packb(_packable(value), use_bin_type=True)


def _as_json_value(v):
    """A decoded MessagePack value as the JSON Schema validator sees values: bin (bytes the
    server sends for a string that is not UTF-8) is a string, map keys are strings."""
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, list):
        return [_as_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(_as_json_value(k)): _as_json_value(x) for k, x in v.items()}
    return v


@schemathesis.deserializer("application/msgpack")
def from_msgpack(ctx, response):
    # A body that is not exactly one MessagePack value raises, and Schemathesis reports it.
    return _as_json_value(msgpack.unpackb(response.content, raw=False, strict_map_key=False))
