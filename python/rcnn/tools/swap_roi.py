"""swap_roi: switch the RoI layers of a net between ROIPooling and ROIAlign.

    swap_roi IN OUT [--to ROIAlign|ROIPooling] [--set pool=AVE --set sampling_ratio=2 ...]

IN is a prototxt or a .caffemodel (the net stored in it); OUT is written in the same form.
Every layer of type ROIPooling or ROIAlign gets the new type; --set changes fields of its
roi_pooling_param. Converting to ROIPooling clears the RoIAlign-only fields, which ROIPooling
does not use, so ROIPooling -> ROIAlign -> ROIPooling gives back the original net. Everything
else is kept; RoI layers have no weights, so a .caffemodel trained with one type loads into a
net of the other.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROI_TYPES = ("ROIPooling", "ROIAlign")
# Fields of ROIPoolingParameter that ROIPooling itself uses.
POOLING_FIELDS = ("pooled_h", "pooled_w", "spatial_scale")

class SwapError(Exception):
    """A problem with the user's input, reported as one line."""


def is_binary(path: Path) -> bool:
    return path.suffix in (".caffemodel", ".binaryproto")


def read_net(path: Path):
    from caffe.proto import caffe_pb2
    from google.protobuf import message, text_format

    net = caffe_pb2.NetParameter()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SwapError(f"{path}: cannot read: {e.strerror}") from e
    try:
        if is_binary(path):
            net.ParseFromString(data)
        else:
            text_format.Merge(data.decode("utf-8"), net)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as e:
        kind = "binary NetParameter (.caffemodel)" if is_binary(path) else "prototxt"
        raise SwapError(f"{path}: does not parse as a {kind}: {e}") from e
    return net


def write_net(net, path: Path) -> None:
    from google.protobuf import text_format

    if is_binary(path):
        path.write_bytes(net.SerializeToString())
    else:
        path.write_text(text_format.MessageToString(net))


def convert(field, raw: str) -> object:
    """raw text -> a value for this ROIPoolingParameter field; ValueError says what it must be."""
    from google.protobuf.descriptor import FieldDescriptor

    if field.type == FieldDescriptor.TYPE_ENUM:
        by_name = field.enum_type.values_by_name
        if raw in by_name:
            return by_name[raw].number
        if raw.isdigit() and int(raw) in field.enum_type.values_by_number:
            return int(raw)
        raise ValueError(f"one of {', '.join(by_name)}")
    if field.type == FieldDescriptor.TYPE_BOOL:
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise ValueError("true or false")
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        try:
            return float(raw)
        except ValueError:
            raise ValueError("a number") from None
    unsigned = field.type == FieldDescriptor.TYPE_UINT32
    try:
        value = int(raw)
    except ValueError:
        value = -1 if unsigned else None
    if value is None or (unsigned and value < 0):
        raise ValueError("a non-negative integer" if unsigned else "an integer")
    return value


def parse_set(assignments: list[str]) -> dict[str, object]:
    """['pool=AVE', 'sampling_ratio=2'] -> typed values, checked against ROIPoolingParameter."""
    from caffe.proto import caffe_pb2

    fields = caffe_pb2.ROIPoolingParameter.DESCRIPTOR.fields_by_name
    values: dict[str, object] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise SwapError(f"--set {item!r}: expected FIELD=VALUE")
        if key not in fields:
            raise SwapError(f"--set {item!r}: roi_pooling_param has no field {key!r} "
                            f"(fields: {', '.join(sorted(fields))})")
        try:
            values[key] = convert(fields[key], raw)
        except ValueError as e:
            raise SwapError(f"--set {item!r}: {key} must be {e}") from e
    return values


def shown(param, key: str, value: object) -> str:
    """An enum field's value by name (pool=AVE), anything else as it is."""
    field = param.DESCRIPTOR.fields_by_name[key]
    if field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    return str(value)


def swap(net, to: str, settings: dict[str, object]) -> list[str]:
    """Rewrites net in place; returns one line per changed layer."""
    changed = []
    for layer in net.layer:
        if layer.type not in ROI_TYPES:
            continue
        before = layer.type
        layer.type = to
        param = layer.roi_pooling_param
        for key, value in settings.items():
            setattr(param, key, value)
        cleared = []
        if to == "ROIPooling":
            for field, _ in param.ListFields():
                if field.name not in POOLING_FIELDS:
                    param.ClearField(field.name)
                    cleared.append(field.name)
        note = f" (cleared {', '.join(cleared)}: unused by ROIPooling)" if cleared else ""
        sets = "".join(f" {k}={shown(param, k, v)}" for k, v in settings.items())
        changed.append(f"layer '{layer.name}': {before} -> {to}{sets}{note}")
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="swap_roi", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path, help="prototxt or .caffemodel")
    ap.add_argument("output", type=Path, help="where to write the swapped net (same format)")
    ap.add_argument("--to", choices=ROI_TYPES, default="ROIAlign",
                    help="the new RoI layer type (default: ROIAlign)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="set a roi_pooling_param field on every RoI layer (repeatable)")
    args = ap.parse_args(argv)
    try:
        settings = parse_set(args.set)
        if args.to == "ROIPooling" and set(settings) - set(POOLING_FIELDS):
            raise SwapError(f"--set {', '.join(sorted(set(settings) - set(POOLING_FIELDS)))}: "
                            "ROIPooling uses only " + ", ".join(POOLING_FIELDS))
        net = read_net(args.input)
        changed = swap(net, args.to, settings)
        if not changed:
            raise SwapError(f"{args.input}: no ROIPooling or ROIAlign layer found")
        write_net(net, args.output)
    except SwapError as e:
        print(f"swap_roi: error: {e}", file=sys.stderr)
        return 2
    # The report is this command's output.
    for line in changed:
        print(line)
    print(f"wrote {args.output} ({len(changed)} RoI layer{'' if len(changed) == 1 else 's'} "
          "changed)")
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
