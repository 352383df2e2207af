"""ORT-format models (``model.ort``) written the same way every time.

ONNX Runtime's converter writes the model's kernel type string resolver (which type constraint of each operator
is bound by which input or output: ``KernelTypeStrResolver`` in onnxruntime/core/flatbuffers/schema/ort.fbs) by
walking a hash map whose order changes from process to process (abseil seeds its hash with addresses). The
content is the same and the vector is sorted by key, but the tables behind it are laid out in that walk's order,
so two conversions of one ``.onnx`` give files that differ in their first few kilobytes and load the same.

:func:`canonicalize` rewrites that part: everything the converter wrote before it (the model, its graph and
weights, the format version string) is kept byte for byte, and the resolver and the root table are built again
in sorted order. A FlatBuffers builder works from the end of the buffer backwards, so the resolver and the root
are the first bytes of the file; objects refer only to objects built before them, so the kept bytes refer to
nothing that is rebuilt. The result is checked: it must hold the same resolver and the same model bytes.
"""

from __future__ import annotations

from pathlib import Path

from compress.errors import CompressError

IDENTIFIER = b"ORTM"
# field slots of the tables touched here, in the order ort.fbs declares their fields
SESSION_VERSION, SESSION_MODEL, SESSION_STATE, SESSION_RESOLVER = 0, 1, 2, 3
ALIGNMENT = 8  # the widest scalar in the format (int64): what the kept bytes were aligned to

Resolver = list[tuple[bytes, list[tuple[bytes, list[tuple[int, int]]]]]]  # op id -> type string -> (arg type, index)


def canonicalize(path: Path) -> bool:
    """Rewrite ``path`` (an ORT-format model) with its kernel type string resolver in sorted order; returns
    whether a byte changed. Raises CompressError if the file is not laid out as ONNX Runtime writes it."""
    old = path.read_bytes()
    new = canonical_bytes(old, str(path))
    if new == old:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(new)
    tmp.replace(path)
    return True


def canonical_bytes(buf: bytes, name: str = "model.ort") -> bytes:
    """The bytes of an ORT-format model with its kernel type string resolver written in sorted order."""
    resolver = resolver_of(buf, name)
    out = rebuild(buf, resolver, name)
    if resolver_of(out, name) != resolver:
        raise CompressError(f"{name}: rewriting the kernel type string resolver in sorted order changed it")
    return out


def rebuild(buf: bytes, resolver: Resolver, name: str = "model.ort") -> bytes:
    """``buf`` with its resolver and root table written again, the resolver's entries in the order given; every
    byte written before them (the model, the version string) kept as it is, at the same distance from the end."""
    import flatbuffers

    session, _, kept_from = _parts(buf, name)
    tail, size = buf[kept_from:], len(buf)
    builder = flatbuffers.Builder(size)
    builder.Prep(ALIGNMENT, 0)  # the kept bytes stay at the same distance from the end, so aligned as before
    builder.Prep(1, len(tail))
    builder.head -= len(tail)
    builder.Bytes[builder.head:builder.head + len(tail)] = tail
    resolver_offset = _write_resolver(builder, resolver)
    builder.StartObject(4)
    for slot in (SESSION_VERSION, SESSION_MODEL, SESSION_STATE):
        at = _ref(session, slot)
        if at is not None:
            builder.PrependUOffsetTRelativeSlot(slot, size - at, 0)  # a builder offset counts from the end
    builder.PrependUOffsetTRelativeSlot(SESSION_RESOLVER, resolver_offset, 0)
    builder.Finish(builder.EndObject(), file_identifier=IDENTIFIER)
    out = bytes(builder.Output())
    if not out.endswith(tail):
        raise CompressError(f"{name}: rewriting the kernel type string resolver moved the model's bytes")
    return out


def _parts(buf: bytes, name: str):
    """(the root table, where the resolver is, where the bytes written before it begin)."""
    session = _root(buf, name)
    resolver_at, model_at = _ref(session, SESSION_RESOLVER), _ref(session, SESSION_MODEL)
    if resolver_at is None or model_at is None:
        raise CompressError(f"{name}: no model or no kernel type string resolver in this ORT-format file")
    kept_from = _first_kept(buf, session, model_at)
    if resolver_at >= kept_from:  # the resolver was not built after the model: a layout this does not know
        raise CompressError(f"{name}: unexpected ORT-format layout (the resolver lies among the model's bytes)")
    return session, resolver_at, kept_from


def resolver_of(buf: bytes, name: str = "model.ort") -> Resolver:
    """The kernel type string resolver of an ORT-format model, sorted."""
    return read_resolver(buf, _parts(buf, name)[1])


def read_resolver(buf: bytes, at: int) -> Resolver:
    """The resolver's content, sorted: [(op id, [(kernel type string, [(arg type, index), ...]), ...]), ...]."""
    from flatbuffers.table import Table

    resolver = Table(buf, at)
    entries = []
    for entry_at in _tables(resolver, 0):
        entry = Table(buf, entry_at)
        args = []
        for arg_at in _tables(entry, 1):
            arg = Table(buf, arg_at)
            pairs = [(_int8(Table(buf, p), 0), _uint32(Table(buf, p), 1)) for p in _tables(arg, 1)]
            args.append((_string(arg, 0), pairs))
        entries.append((_string(entry, 0), sorted(args, key=lambda a: a[0])))
    return sorted(entries, key=lambda e: e[0])


def _write_resolver(builder, resolver: Resolver) -> int:
    entries = []
    for op_id, args in resolver:
        arg_tables = []
        for type_str, pairs in args:
            pair_tables = []
            for arg_type, index in pairs:
                builder.StartObject(2)
                builder.PrependUint32Slot(1, index, 0)
                builder.PrependInt8Slot(0, arg_type, 0)
                pair_tables.append(builder.EndObject())
            pairs_vector = _vector(builder, pair_tables)
            name = builder.CreateString(type_str)
            builder.StartObject(2)
            builder.PrependUOffsetTRelativeSlot(1, pairs_vector, 0)
            builder.PrependUOffsetTRelativeSlot(0, name, 0)
            arg_tables.append(builder.EndObject())
        args_vector = _vector(builder, arg_tables)
        name = builder.CreateString(op_id)
        builder.StartObject(2)
        builder.PrependUOffsetTRelativeSlot(1, args_vector, 0)
        builder.PrependUOffsetTRelativeSlot(0, name, 0)
        entries.append(builder.EndObject())
    entries_vector = _vector(builder, entries)
    builder.StartObject(1)
    builder.PrependUOffsetTRelativeSlot(0, entries_vector, 0)
    return builder.EndObject()


def _vector(builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _root(buf: bytes, name: str):
    from flatbuffers import encode, number_types
    from flatbuffers.table import Table

    if len(buf) < 8 or buf[4:8] != IDENTIFIER:
        raise CompressError(f"{name}: not an ORT-format model (no {IDENTIFIER.decode()} identifier)")
    return Table(buf, encode.Get(number_types.UOffsetTFlags.packer_type, buf, 0))


def _first_kept(buf: bytes, session, model_at: int) -> int:
    """Where the bytes written before the resolver begin: the model table, or its vtable when that was written
    just before it (a vtable written earlier, shared with another table, lies further on)."""
    from flatbuffers import encode, number_types

    vtable_at = model_at - encode.Get(number_types.SOffsetTFlags.packer_type, buf, model_at)
    starts = [model_at, vtable_at] + [at for at in (_ref(session, SESSION_VERSION), _ref(session, SESSION_STATE)) if at]
    return min(starts)


def _ref(table, slot: int) -> int | None:
    """Absolute position of what a table's offset field points at; None when the field is absent."""
    o = table.Offset(4 + 2 * slot)
    return table.Indirect(table.Pos + o) if o else None


def _tables(table, slot: int) -> list[int]:
    o = table.Offset(4 + 2 * slot)
    if not o:
        return []
    start = table.Vector(o)
    return [table.Indirect(start + 4 * i) for i in range(table.VectorLen(o))]


def _string(table, slot: int) -> bytes:
    o = table.Offset(4 + 2 * slot)
    return table.String(table.Pos + o) if o else b""


def _int8(table, slot: int) -> int:
    from flatbuffers import number_types

    o = table.Offset(4 + 2 * slot)
    return table.Get(number_types.Int8Flags, table.Pos + o) if o else 0


def _uint32(table, slot: int) -> int:
    from flatbuffers import number_types

    o = table.Offset(4 + 2 * slot)
    return table.Get(number_types.Uint32Flags, table.Pos + o) if o else 0
