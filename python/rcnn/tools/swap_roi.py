"""swap_roi: switch the RoI layers of a net between ROIPooling and ROIAlign.

    swap_roi IN OUT [--to ROIAlign|ROIPooling] [--set pool=AVE --set sampling_ratio=2 ...]

IN is a prototxt or a .caffemodel (the net stored in it); OUT is written in the same form.
Every layer of type ROIPooling or ROIAlign gets the new type; --set changes fields of its
roi_pooling_param. Converting to ROIPooling clears the RoIAlign-only fields, which ROIPooling
does not use, so ROIPooling -> ROIAlign -> ROIPooling gives back the original net. Everything
else is kept; RoI layers have no weights, so a .caffemodel trained with one type loads into a
net of the other.

alignment (--set alignment=...): CAFFE (the default: the seed layer), DETECTRON (Detectron,
torchvision aligned=False), HALF_PIXEL (detectron2, torchvision aligned=True), BIN_CORNERS
(faster-rcnn.pytorch's RoIAlignAvg / RoIAlignMax; bilinear, sampling_ratio -1 or >= 1) and
CROP_AND_RESIZE (tf.image.crop_and_resize; bilinear). A combination the layer would refuse at
setup is refused here, naming the layer.

PyramidROIAlign layers (multi-level RoIAlign) keep their type, whatever --to says: neither
ROIPooling nor ROIAlign takes a pyramid. --set changes their roi_pooling_param too, except
spatial_scale (they take one per level, in pyramid_roi_param); converting to ROIPooling
clears nothing in them.

A prototxt's text is edited, not regenerated: only the RoI layers' type and the fields of
their roi_pooling_param that change are touched (new fields go at the end of the block, a
changed value loses the comment on its line); every other byte of the file, comments and layout
included, is kept. The edited text is parsed again and checked against the swapped net.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROI_TYPES = ("ROIPooling", "ROIAlign")
# Fields of ROIPoolingParameter that ROIPooling itself uses.
POOLING_FIELDS = ("pooled_h", "pooled_w", "spatial_scale")
# Multi-level RoIAlign: its roi_pooling_param takes --set, its type never changes.
PYRAMID_TYPE = "PyramidROIAlign"
# roi_pooling_param fields PyramidROIAlign refuses (one spatial_scale per level instead).
PYRAMID_SKIPPED = ("spatial_scale",)
# Alignments defined for bilinear sampling only, and those without an adaptive grid.
BILINEAR_ONLY = ("BIN_CORNERS", "CROP_AND_RESIZE")
NO_ADAPTIVE_GRID = ("BIN_CORNERS",)

class SwapError(Exception):
    """A problem with the user's input, reported as one line."""


def is_binary(path: Path) -> bool:
    return path.suffix in (".caffemodel", ".binaryproto")


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise SwapError(f"{path}: cannot read: {e.strerror}") from e


def read_net(path: Path):
    return parse_net(read_bytes(path), path)


def parse_net(data: bytes, path: Path, binary: bool | None = None):
    """A NetParameter from a file's bytes: binary (default: for .caffemodel), else text."""
    from caffe.proto import caffe_pb2
    from google.protobuf import message, text_format

    binary = is_binary(path) if binary is None else binary
    net = caffe_pb2.NetParameter()
    try:
        if binary:
            net.ParseFromString(data)
        else:
            text_format.Merge(data.decode("utf-8"), net)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError) as e:
        kind = "binary NetParameter (.caffemodel)" if binary else "prototxt"
        raise SwapError(f"{path}: does not parse as a {kind}: {e}") from e
    return net


def input_is_binary(path: Path) -> bool:
    """Whether IN holds a binary net (a .caffemodel), by its content: a net prototxt or a
    .caffemodel whatever their names; SwapError for another kind of Caffe file (a solver
    state, a solver prototxt, HDF5) or a folder; a file that is neither goes by its name
    (and fails to parse as that)."""
    from rcnn.weights import WeightsError, read_caffe_file

    try:
        found = read_caffe_file(path)
    except WeightsError as e:
        raise SwapError(str(e)) from e
    if found.kind == "missing":
        raise SwapError(f"{path}: cannot read: No such file or directory")
    if found.kind in ("caffemodel", "net_prototxt"):
        return found.kind == "caffemodel"
    if found.kind not in ("text", "unknown"):
        raise SwapError(f"{path}: {found.describe()}, expected a net prototxt or a "
                        ".caffemodel")
    return is_binary(path)


def check_output(path: Path) -> None:
    if path.is_dir():
        raise SwapError(f"{path}: a folder, expected the path of the file to write")
    if not path.parent.is_dir():
        raise SwapError(f"{path}: its folder {path.parent} does not exist")


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


def layer_settings(layer_type: str, settings: dict[str, object]) -> dict[str, object]:
    """The --set fields that apply to a layer of this type."""
    if layer_type == PYRAMID_TYPE:
        return {k: v for k, v in settings.items() if k not in PYRAMID_SKIPPED}
    return settings


def check_sampling(layer) -> None:
    """SwapError for a roi_pooling_param that ROIAlign / PyramidROIAlign would refuse because
    of its alignment (a fatal error at net setup otherwise)."""
    if layer.type not in ("ROIAlign", PYRAMID_TYPE):
        return
    param = layer.roi_pooling_param
    alignment = shown(param, "alignment", param.alignment)
    where = f"layer '{layer.name}' ({layer.type}): alignment {alignment}"
    if alignment in BILINEAR_ONLY and param.bi_type != 0:
        raise SwapError(f"{where} is defined for bilinear sampling only; bi_type must be 0, "
                        f"got {param.bi_type}")
    if alignment in NO_ADAPTIVE_GRID and param.sampling_ratio == 0:
        raise SwapError(f"{where} has no adaptive grid; sampling_ratio must be -1 or >= 1, "
                        "got 0")


def swap_pyramid(layer, settings: dict[str, object]) -> str | None:
    """Applies --set to a PyramidROIAlign layer (its type stays); its report line, or None if
    nothing applies to it."""
    mine = layer_settings(PYRAMID_TYPE, settings)
    if not mine:
        return None
    for key, value in mine.items():
        setattr(layer.roi_pooling_param, key, value)
    skipped = [k for k in settings if k not in mine]
    note = (f" ({', '.join(skipped)} not set: PyramidROIAlign takes one per level from "
            "pyramid_roi_param)") if skipped else ""
    sets = "".join(f" {k}={shown(layer.roi_pooling_param, k, v)}" for k, v in mine.items())
    return f"layer '{layer.name}': PyramidROIAlign (type kept){sets}{note}"


def kept_pyramids(net) -> list[str]:
    """Names of the PyramidROIAlign layers of net."""
    return [layer.name for layer in net.layer if layer.type == PYRAMID_TYPE]


def swap(net, to: str, settings: dict[str, object]) -> list[str]:
    """Rewrites net in place; returns one line per changed layer. SwapError if a changed
    layer's settings are ones the layer refuses."""
    changed = []
    for layer in net.layer:
        if layer.type == PYRAMID_TYPE:
            line = swap_pyramid(layer, settings)
            if line is not None:
                check_sampling(layer)
                changed.append(line)
            continue
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
        check_sampling(layer)
        changed.append(f"layer '{layer.name}': {before} -> {to}{sets}{note}")
    return changed


# --- Editing a prototxt in place -----------------------------------------------------------
#
# The text is split into protobuf text-format tokens (comments and quoted strings kept whole),
# the tokens into fields, and only the spans of the RoI layers that must change are replaced.

TOKEN_RE = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\r\n]*)
  | (?P<string>"(?:[^"\\\r\n]|\\.)*"|'(?:[^'\\\r\n]|\\.)*')
  | (?P<punct>[{}<>\[\]:,;])
  | (?P<word>[^\s{}<>\[\]:,;\#"']+)
""", re.VERBOSE)
CLOSERS = {"{": "}", "<": ">", "[": "]"}


@dataclass
class Token:
    kind: str  # string, punct or word (spaces and comments are dropped)
    text: str
    start: int
    end: int


@dataclass
class Field:
    """One `name: value` or `name { ... }` of the text, by offsets into it."""
    name: str
    start: int  # the name's first character
    value_start: int
    value_end: int  # past the value (the closing brace of a message)
    end: int  # past a trailing ',' or ';' if there is one, else value_end
    body: list[Field] | None = None  # the fields of a message value


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if m is None:
            raise ValueError(f"unreadable text at line {text.count(chr(10), 0, pos) + 1}")
        if m.lastgroup in ("string", "punct", "word"):
            tokens.append(Token(m.lastgroup, m.group(), m.start(), m.end()))
        pos = m.end()
    return tokens


class FieldReader:
    """Fields from tokens, following the text format's grammar as far as swap_roi needs."""

    def __init__(self, tokens: list[Token]):
        self.tokens, self.i = tokens, 0

    def peek(self, text: str | None = None) -> Token | None:
        tok = self.tokens[self.i] if self.i < len(self.tokens) else None
        if tok is not None and text is not None and (tok.kind != "punct" or tok.text != text):
            return None
        return tok

    def take(self) -> Token:
        if self.i >= len(self.tokens):
            raise ValueError("unexpected end of text")
        self.i += 1
        return self.tokens[self.i - 1]

    def fields(self, closer: str | None = None) -> list[Field]:
        out = []
        while self.peek() is not None and (closer is None or self.peek(closer) is None):
            out.append(self.field())
        if closer is not None and self.peek(closer) is None:
            raise ValueError(f"missing '{closer}'")
        return out

    def skip_group(self) -> Token:
        """Past a bracketed group ('[...]', '{...}', '<...>'); returns its closing token."""
        depth = 0
        while True:
            tok = self.take()
            if tok.kind == "punct" and tok.text in CLOSERS:
                depth += 1
            elif tok.kind == "punct" and tok.text in CLOSERS.values():
                depth -= 1
                if depth == 0:
                    return tok

    def field(self) -> Field:
        first = self.peek()
        if first.kind == "punct" and first.text != "[":
            raise ValueError(f"unexpected '{first.text}'")
        if first.text == "[":
            self.skip_group()  # an extension's [name]; swap_roi never edits one
        else:
            self.take()
        if self.peek(":"):
            self.take()
        opener = self.peek("{") or self.peek("<")
        body = None
        if opener is not None:
            self.take()
            body = self.fields(CLOSERS[opener.text])
            last = self.take()
        elif self.peek("["):
            opener, last = self.peek(), self.skip_group()
        else:
            opener = last = self.take()
            if last.kind == "string":
                while self.peek() is not None and self.peek().kind == "string":
                    last = self.take()
            elif last.text == "-":
                last = self.take()
        end = self.take().end if (self.peek(",") or self.peek(";")) else last.end
        return Field(first.text, first.start, opener.start, last.end, end, body)


def line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def line_end(text: str, pos: int) -> int:
    """Offset of the newline ending pos's line (len(text) on the last line)."""
    nl = text.find("\n", pos)
    return len(text) if nl < 0 else nl


def starts_line(text: str, pos: int) -> bool:
    return not text[line_start(text, pos):pos].strip()


def indent_of(text: str, pos: int) -> str:
    start = line_start(text, pos)
    return text[start:start + len(text[start:pos]) - len(text[start:pos].lstrip())]


def newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def removal(text: str, first: Field, last: Field) -> tuple[int, int, str]:
    """Removes the fields first ... last (neighbours in one message): their whole lines when
    they have them to themselves (comments on those lines go too), else the fields and the
    spaces on one side of them."""
    rest = text[last.end:line_end(text, last.end)].strip()
    if starts_line(text, first.start) and (not rest or rest.startswith("#")):
        return line_start(text, first.start), min(line_end(text, last.end) + 1, len(text)), ""
    after = last.end + len(text[last.end:]) - len(text[last.end:].lstrip(" \t"))
    if after == len(text) or text[after] in "\r\n#}>":
        return len(text[:first.start].rstrip(" \t")), last.end, ""
    return first.start, after, ""


def replacement(text: str, f: Field, value: str) -> tuple[int, int, str]:
    """Field f's value becomes value; a comment that ends the field's line described the old
    value, so it goes."""
    rest = text[f.end:line_end(text, f.end)]
    if rest.strip().startswith("#"):
        return f.value_start, f.end + len(rest.rstrip("\r")), value
    return f.value_start, f.value_end, value


def appended(text: str, fields: list[Field], close: int, entries: list[str],
             block: str | None = None) -> tuple[int, int, str]:
    """Adds entries (`key: value`), wrapped in `block { ... }` if block is given, before the
    closing brace at offset close of a message whose fields are `fields`: one per line,
    indented like the fields, when the brace has a line to itself; else on the brace's line."""
    if starts_line(text, close):
        own = [f for f in fields if starts_line(text, f.start)]
        indent = indent_of(text, own[0].start) if own else indent_of(text, close) + "  "
        nl = newline_of(text)
        lines = [indent + e for e in entries]
        if block is not None:
            lines = [indent + block + " {", *("  " + line for line in lines), indent + "}"]
        return line_start(text, close), line_start(text, close), "".join(x + nl for x in lines)
    pos = len(text[:close].rstrip(" \t"))
    new = " ".join(entries) if block is None else f"{block} {{ {' '.join(entries)} }}"
    return pos, pos, f" {new}" + (" " if pos == close and text[pos - 1] in "{<" else "")


def value_text(param, key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return shown(param, key, value)


def same_value(key: str, text_value: str, value: object) -> bool:
    """Whether the user's text for field key already holds value (then it is left alone)."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    written, wanted = caffe_pb2.ROIPoolingParameter(), caffe_pb2.ROIPoolingParameter()
    text_format.Merge(f"{key}: {text_value}", written)
    setattr(wanted, key, value)
    return getattr(written, key) == getattr(wanted, key)


def layer_edits(text: str, layer: Field, old_type: str, to: str,
                settings: dict[str, object]) -> list[tuple[int, int, str]]:
    """The edits that swap one RoI layer: its type, and its roi_pooling_param's fields."""
    from caffe.proto import caffe_pb2

    param = caffe_pb2.ROIPoolingParameter()
    edits = []
    if old_type != to:
        edits += [(f.value_start, f.value_end, text[f.value_start] + to + text[f.value_start])
                  for f in layer.body if f.name == "type"]
    blocks = [f for f in layer.body if f.name == "roi_pooling_param" and f.body is not None]
    for block in blocks:
        for f in block.body:
            if f.name in settings and not same_value(f.name, text[f.value_start:f.value_end],
                                                     settings[f.name]):
                edits.append(replacement(text, f, value_text(param, f.name, settings[f.name])))
        if to == "ROIPooling":
            gone = [f.name not in POOLING_FIELDS for f in block.body]
            edits += [removal(text, block.body[i], block.body[j - 1]) for i, j in runs(gone)]
    written = {f.name for block in blocks for f in block.body}
    missing = [f"{k}: {value_text(param, k, v)}" for k, v in settings.items() if k not in written]
    if missing and blocks:
        edits.append(appended(text, blocks[-1].body, blocks[-1].value_end - 1, missing))
    elif missing:
        edits.append(appended(text, layer.body, layer.value_end - 1, missing,
                              "roi_pooling_param"))
    return edits


def runs(flags: list[bool]) -> list[tuple[int, int]]:
    """[i, j) ranges of consecutive True flags."""
    out: list[tuple[int, int]] = []
    for i, flag in enumerate(flags):
        if flag and out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        elif flag:
            out.append((i, i + 1))
    return out


def swap_text(text: str, net, to: str, settings: dict[str, object]) -> str:
    """text with its RoI layers swapped as swap() swaps them, everything else byte for byte.
    net is what text parses to (before swap()); ValueError if text cannot be edited this way."""
    layers = [f for f in FieldReader(tokenize(text)).fields()
              if f.name == "layer" and f.body is not None]
    if len(layers) != len(net.layer):
        raise ValueError(f"found {len(layers)} 'layer {{...}}' blocks for {len(net.layer)} layers")
    edits = []
    for block, layer in zip(layers, net.layer, strict=True):
        if layer.type in ROI_TYPES:
            edits += layer_edits(text, block, layer.type, to, settings)
        elif layer.type == PYRAMID_TYPE:
            edits += layer_edits(text, block, layer.type, layer.type,
                                 layer_settings(layer.type, settings))
    # From the end, so offsets stay valid; a removal before an insertion at its start.
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def write_text(text: str, expected, path: Path, source: Path) -> None:
    """Writes the edited text after checking it parses to expected, the swapped net."""
    try:
        got = parse_net(text.encode("utf-8"), path)
    except SwapError as e:
        raise SwapError(f"{source}: editing the text in place broke it ({e}); "
                        "please report this") from e
    if got != expected:
        raise SwapError(f"{source}: editing the text in place gave a different net than "
                        "swapping it; please report this")
    path.write_bytes(text.encode("utf-8"))


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
        check_output(args.output)
        binary = input_is_binary(args.input)
        data = read_bytes(args.input)
        net = parse_net(data, args.input, binary)
        original = type(net)()
        original.CopyFrom(net)
        changed = swap(net, args.to, settings)
        pyramids = kept_pyramids(net)
        if not changed:
            hint = (f" (PyramidROIAlign layers keep their type: {', '.join(pyramids)}; "
                    "--set changes their roi_pooling_param)") if pyramids else ""
            raise SwapError(f"{args.input}: no ROIPooling or ROIAlign layer found{hint}")
        if binary or is_binary(args.output):
            write_net(net, args.output)
        else:
            try:
                text = swap_text(data.decode("utf-8"), original, args.to, settings)
            except ValueError as e:
                raise SwapError(f"{args.input}: cannot edit the text in place: {e}") from e
            write_text(text, net, args.output, args.input)
    except SwapError as e:
        print(f"swap_roi: error: {e}", file=sys.stderr)
        return 2
    # The report is this command's output.
    for line in changed:
        print(line)
    for name in pyramids if not layer_settings(PYRAMID_TYPE, settings) else []:
        print(f"layer '{name}': PyramidROIAlign kept as it is (multi-level: no "
              f"{args.to} equivalent)")
    print(f"wrote {args.output} ({len(changed)} RoI layer{'' if len(changed) == 1 else 's'} "
          "changed)")
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main())
