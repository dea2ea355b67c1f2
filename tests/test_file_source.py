"""The file-drop reader: JSONL batches cross to the workers unparsed and read exactly as in one process."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest

from connectors.config import ConnectorConfig
from connectors.sources.base import MALFORMED_LINE, Batch, JsonLines, Row, parse_json_line
from connectors.sources.files import FileSource
from tests.support import reader_config

LINES = [
    '{"event_id": "e1", "ts": "2026-11-13T07:00:00+08:00", "dir": "out"}',
    "",
    "   ",
    '{"event_id": "e2", "n": 12, "ok": true, "none": null}',
    "{not json",
    "[1, 2, 3]",  # JSON, but not an object
    '{"event_id": "e3", "ts": "2026-11-13 08:00:00", "note": "\\u4e2d\\u6587 with a\\nnewline"}',
    '{"event_id": "e4"}',
]


def _config(inbox: Path, batch_size: int) -> ConnectorConfig:
    return reader_config(
        "t.events",
        "event_id",
        kind="file",
        directory=str(inbox),
        pattern="*.jsonl",
        format="jsonl",
        version_from="ts",
        batch_size=batch_size,
    )


def _drop(tmp_path: Path) -> Path:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "events.jsonl").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return inbox


def test_jsonl_rows_keep_their_line_numbers_versions_and_malformed_lines(tmp_path: Path) -> None:
    inbox = _drop(tmp_path)
    stat = (inbox / "events.jsonl").stat()
    drop = f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"
    source = FileSource(_config(inbox, batch_size=3))
    batches = list(source.batches({}))
    assert [len(b.rows) for b in batches] == [3, 3, 0]  # blank lines are not rows; the last batch closes the file
    assert [b.checkpoint for b in batches] == [
        {"file": "events.jsonl", "drop": drop, "line": 5},
        {"file": "events.jsonl", "drop": drop, "line": 8},
        {"file": "events.jsonl", "drop": drop, "line": 10**12},
    ]
    rows = [row for batch in batches for row in batch.rows]
    assert [r.position for r in rows] == [f"events.jsonl:{n}" for n in (1, 4, 5, 6, 7, 8)]
    assert rows[0] == Row(
        "events.jsonl:1",
        {"event_id": "e1", "ts": "2026-11-13T07:00:00+08:00", "dir": "out"},
        "2026-11-13T07:00:00+08:00",
    )
    assert rows[1].values == {"event_id": "e2", "n": 12, "ok": True, "none": None}
    assert rows[2].values == {"__malformed__": "{not json\n"} and rows[2].version_source is None
    assert rows[2].rejected == rows[3].rejected == MALFORMED_LINE and rows[0].rejected is None
    assert rows[3].values == {"__malformed__": "[1, 2, 3]\n"}
    assert rows[4].values["note"] == "中文 with a\nnewline" and rows[4].version_source == "2026-11-13 08:00:00"
    assert rows[5] == Row("events.jsonl:8", {"event_id": "e4"}, None)


@pytest.mark.parametrize(
    ("line", "values"),
    [
        ('{"id": 123456789012345678901234567890}', {"id": 123456789012345678901234567890}),  # orjson rounds it
        ('{"id": -9223372036854775809}', {"id": -9223372036854775809}),
        ('{"id": 18446744073709551615, "x": 1.5}', {"id": 18446744073709551615, "x": 1.5}),
        ('{"nested": {"id": 123456789012345678901234567890}}', {"nested": {"id": 123456789012345678901234567890}}),
        ('{"v": NaN}', None),  # read by the standard parser: NaN is not equal to itself, checked below
        ('{"s": "\\ud800"}', {"s": "\ud800"}),  # a lone surrogate, which orjson refuses
        ('{"a": "b", "n": 7, "t": true, "z": null}', {"a": "b", "n": 7, "t": True, "z": None}),
    ],
)
def test_json_lines_keep_every_integer_exact(line: str, values: dict[str, object] | None) -> None:
    parsed = parse_json_line(line)
    assert parsed is not None and parsed == json.loads(line)
    if values is not None:
        assert parsed == values and [type(v) for v in parsed.values()] == [type(v) for v in values.values()]
    else:
        assert math.isnan(parsed["v"])


def test_a_resumed_read_starts_after_the_checkpointed_line(tmp_path: Path) -> None:
    source = FileSource(_config(_drop(tmp_path), batch_size=100))
    rows = [row for batch in source.batches({"file": "events.jsonl", "line": 5}) for row in batch.rows]
    assert [r.position for r in rows] == ["events.jsonl:6", "events.jsonl:7", "events.jsonl:8"]


def test_a_jsonl_batch_crosses_a_pipe_as_text_and_reads_the_same_on_the_other_side(tmp_path: Path) -> None:
    source = FileSource(_config(_drop(tmp_path), batch_size=100))
    batch = next(source.batches({}))
    assert isinstance(batch.source, JsonLines)  # nothing parsed while reading
    sent = pickle.loads(pickle.dumps(batch.source))  # noqa: S301 - our own bytes, as the worker pipe carries
    assert sent.rows() == batch.rows
    assert isinstance(batch.source, list)  # parsed once, on first use, then kept


def test_rows_given_directly_are_the_batch(tmp_path: Path) -> None:
    rows = [Row("p:1", {"a": 1}, None)]
    batch = Batch(rows, {"line": 1})
    assert batch.rows is rows


def test_a_line_that_is_not_valid_in_the_encoding_refuses_only_itself(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "bad.jsonl").write_bytes(b'{"event_id": "e1"}\n{"event_id": "\xff\xfe"}\n{"event_id": "e3"}\n')
    (batch,) = list(FileSource(_config(inbox, batch_size=100)).batches({}))
    sent = pickle.loads(pickle.dumps(batch.source))  # noqa: S301 - our own bytes, as the worker pipe carries
    assert sent.rows() == batch.rows  # the refusal crosses to a worker with the lines
    rows = [(r.position, r.values.get("event_id"), r.rejected) for r in batch.rows]
    assert rows == [
        ("bad.jsonl:1", "e1", None),
        ("bad.jsonl:2", None, "the line is not valid utf-8"),
        ("bad.jsonl:3", "e3", None),
    ]
    assert "__malformed__" in batch.rows[1].values  # its text, bad bytes replaced, goes sealed into the letter
    for callback in batch.on_committed:
        callback()
    assert (tmp_path / "processed" / "bad.jsonl").exists()  # with its original bytes


def _csv_config(inbox: Path, **extra: str) -> ConnectorConfig:
    return reader_config("t.registry", "id", kind="file", directory=str(inbox), pattern="*.csv", format="csv", **extra)


def test_csv_in_gb18030_or_with_a_utf8_byte_order_mark_reads_as_written(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    text = 'id,address\nr1,北京市朝阳区\nr2,"海淀区\n二里庄"\nr3,丰台区\n'
    (inbox / "a.csv").write_bytes(text.encode("gb18030").replace("丰台区".encode("gb18030"), b"\x81\x20"))
    (batch,) = list(FileSource(_csv_config(inbox, encoding="gb18030")).batches({}))
    assert [(r.values.get("address"), r.rejected) for r in batch.rows] == [
        ("北京市朝阳区", None),
        ("海淀区\n二里庄", None),  # a quoted field over two lines
        (batch.rows[2].values["address"], "the row is not valid gb18030"),
    ]
    (inbox / "a.csv").unlink()
    (inbox / "b.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())  # as Excel writes UTF-8
    (batch,) = list(FileSource(_csv_config(inbox)).batches({}))
    assert [r.values["id"] for r in batch.rows] == ["r1", "r2", "r3"] and not any(r.rejected for r in batch.rows)


def test_a_csv_file_the_parser_cannot_go_on_with_moves_to_rejected_after_a_dead_letter(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "big.csv").write_bytes(b"id,address\nr1,a\nr2," + b"x" * 140_000 + b"\nr3,d\n")  # past csv's field limit
    (batch,) = list(FileSource(_csv_config(inbox)).batches({}))
    assert [(r.position, r.rejected) for r in batch.rows] == [
        ("big.csv:2", None),
        (
            "big.csv:3",
            "the file is not CSV the parser can go on with after row 2 (field larger than field limit (131072));"
            " moved to rejected/",
        ),
    ]
    for callback in batch.on_committed:
        callback()
    assert (tmp_path / "rejected" / "big.csv").exists() and not (tmp_path / "processed").exists()


@pytest.mark.parametrize(("encoding", "error"), [("utf-16", "not ASCII-compatible"), ("klingon", "unknown encoding")])
def test_a_file_drop_encoding_must_be_known_and_ascii_compatible(tmp_path: Path, encoding: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        _csv_config(tmp_path, encoding=encoding)


def test_csv_rows_whose_field_count_is_not_the_headers_are_rejected_with_their_values_kept(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rows_text = ["id,address,phone,updated", "r1,北京市朝阳区,138,2026-11-13", "r2,北京市,朝阳区,139,2026-11-14"]
    rows_text += ["r3,北京市海淀区", 'r4,"北京市,海淀区",,2026-11-15']  # r4: a quoted comma and an empty field are fine
    (inbox / "registry.csv").write_text("\n".join(rows_text) + "\n", encoding="utf-8")
    config = reader_config(
        "t.registry", "id", kind="file", directory=str(inbox), pattern="*.csv", format="csv", version_from="updated"
    )
    (batch,) = list(FileSource(config).batches({}))
    r1, r2, r3, r4 = batch.rows
    assert r1 == Row(
        "registry.csv:2", {"id": "r1", "address": "北京市朝阳区", "phone": "138", "updated": "2026-11-13"}, "2026-11-13"
    )
    assert r2.rejected == "the row has 5 fields, the header 4" and r2.version_source is None
    assert r2.values == {
        "id": "r2",
        "address": "北京市",
        "phone": "朝阳区",
        "updated": "139",
        "__extra_fields__": ["2026-11-14"],
    }
    assert r3.rejected == "the row has 2 fields, the header 4" and r3.values == {"id": "r3", "address": "北京市海淀区"}
    assert r4.rejected is None and r4.values["address"] == "北京市,海淀区" and r4.values["phone"] == ""
    assert all("北京" not in (r.rejected or "") for r in batch.rows)  # reasons name no value


def test_a_new_file_under_the_name_of_the_last_one_read_is_read_and_both_are_kept(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "events.jsonl").write_text('{"event_id": "a1"}\n{"event_id": "a2"}\n', encoding="utf-8")
    source = FileSource(_config(inbox, batch_size=100))
    (first,) = list(source.batches({}))
    # Read to its end but not yet moved (a crash in between): the same drop, so its rows are skipped.
    assert [b.rows for b in source.batches(first.checkpoint)] == [[]]
    for callback in first.on_committed:
        callback()
    part = inbox / "events.jsonl.part"  # a corrected re-export, dropped by rename-on-complete
    part.write_text('{"event_id": "b1"}\n{"event_id": "b2"}\n{"event_id": "b3"}\n', encoding="utf-8")
    part.rename(inbox / "events.jsonl")
    (again,) = list(source.batches(first.checkpoint))
    assert [r.values["event_id"] for r in again.rows] == ["b1", "b2", "b3"]
    # Named by the file it will be kept as, so its positions (and dead letters) are not the first drop's.
    assert [r.position for r in again.rows] == ["events~2.jsonl:1", "events~2.jsonl:2", "events~2.jsonl:3"]
    for callback in again.on_committed:
        callback()
    processed = tmp_path / "processed"
    assert sorted(p.name for p in processed.iterdir()) == ["events.jsonl", "events~2.jsonl"]
    assert "a1" in (processed / "events.jsonl").read_text() and "b1" in (processed / "events~2.jsonl").read_text()


def test_a_csv_header_that_repeats_a_name_is_no_fault_and_blank_rows_are_not_counted(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text("id,note,note\nr1,a,b\n\nr2,c,d\n", encoding="utf-8")
    (batch,) = list(FileSource(_csv_config(inbox)).batches({}))
    assert [(r.position, r.values, r.rejected) for r in batch.rows] == [
        ("a.csv:2", {"id": "r1", "note": "b"}, None),  # the later column wins, as csv.DictReader had it
        ("a.csv:3", {"id": "r2", "note": "d"}, None),
    ]
