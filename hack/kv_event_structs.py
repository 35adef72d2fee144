"""msgspec structs with the field names and orders of the KV events vLLM publishes, for kvroute's test
peers and fixture generators: `Map*` is vLLM 0.33's form (events are maps tagged by "type", defaults
omitted), `Array*` the older positional form (tagged arrays, fields in declaration order).
`Array010BlockStored` is BlockStored as releases up to 0.10 had it, before lora_name and extra_keys;
their BlockRemoved and AllBlocksCleared were ArrayBlockRemoved and ArrayAllBlocksCleared.
The golden generators under hack/golden/ encode with these too."""

from typing import Any, Optional, Union

import msgspec

Hash = Union[bytes, int]


class Batch(msgspec.Struct, array_like=True, omit_defaults=True):
    ts: float
    events: list[Any]
    data_parallel_rank: Optional[int] = None


class MapEvent(msgspec.Struct, omit_defaults=True, tag=True):
    pass


class MapBlockStored(MapEvent, tag="BlockStored"):
    block_hashes: list[Hash]
    parent_block_hash: Optional[Hash]
    token_ids: list[int]
    block_size: int
    lora_id: Optional[int]
    medium: Optional[str]
    lora_name: Optional[str]
    extra_keys: Optional[list[Optional[tuple]]] = None
    group_idx: Optional[int] = None
    kv_cache_spec_kind: Optional[str] = None
    kv_cache_spec_sliding_window: Optional[int] = None
    locality: Optional[str] = None
    ownership: Optional[str] = None
    session_id: Optional[str] = None
    lookahead_token_ids: Optional[list[list[int]]] = None


class MapBlockRemoved(MapEvent, tag="BlockRemoved"):
    block_hashes: list[Hash]
    medium: Optional[str]
    group_idx: Optional[int] = None
    locality: Optional[str] = None
    ownership: Optional[str] = None


class MapAllBlocksCleared(MapEvent, tag="AllBlocksCleared"):
    pass


class ArrayEvent(msgspec.Struct, array_like=True, omit_defaults=True, tag=True):
    pass


class Array010BlockStored(ArrayEvent, tag="BlockStored"):
    block_hashes: list[Hash]
    parent_block_hash: Optional[Hash]
    token_ids: list[int]
    block_size: int
    lora_id: Optional[int]
    medium: Optional[str]


class ArrayBlockStored(Array010BlockStored, tag="BlockStored"):
    """The later positional BlockStored: 0.10's fields, then lora_name, extra_keys and group_idx."""
    lora_name: Optional[str] = None
    extra_keys: Optional[list[Optional[tuple]]] = None
    group_idx: Optional[int] = None


class ArrayBlockRemoved(ArrayEvent, tag="BlockRemoved"):
    block_hashes: list[Hash]
    medium: Optional[str]


class ArrayAllBlocksCleared(ArrayEvent, tag="AllBlocksCleared"):
    pass


FORMS = {
    "map": {"BlockStored": MapBlockStored, "BlockRemoved": MapBlockRemoved, "AllBlocksCleared": MapAllBlocksCleared},
    "array": {"BlockStored": ArrayBlockStored, "BlockRemoved": ArrayBlockRemoved, "AllBlocksCleared": ArrayAllBlocksCleared},
}
