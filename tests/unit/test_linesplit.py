"""The one line splitter of every target (backends/linesplit.py), fed the way reads arrive:
in chunks of every size, down to one byte."""

from __future__ import annotations

from backends.linesplit import PROGRESS, LineSplitter, cut_point


def split(data: bytes, size: int, cap: int = 1 << 20, every: float = 0.2,
          step: float = 0.0) -> list[str]:
    """Everything the splitter gives for ``data`` read ``size`` bytes at a time, the clock
    advancing ``step`` per read."""
    splitter = LineSplitter(cap=cap, progress_every=every)
    out: list[str] = []
    for i, start in enumerate(range(0, len(data), size)):
        out += splitter.feed(data[start:start + size], i * step)
    return out + splitter.flush()


def lines(items: list[str]) -> list[str]:
    return [item for item in items if not item.startswith(PROGRESS)]


TEXT = "plain line\nünïcödé ✓ 𝄞 emoji 🎉\n\nlast without newline".encode()


def test_every_chunk_size_gives_the_same_lines_and_keeps_split_characters() -> None:
    expected = ["plain line", "ünïcödé ✓ 𝄞 emoji 🎉", "", "last without newline"]
    for size in range(1, len(TEXT) + 1):
        assert split(TEXT, size) == expected, size


def test_crlf_is_a_newline_whatever_the_chunking() -> None:
    data = b"one\r\ntwo\r\n\r\nthree\r\n"
    for size in range(1, len(data) + 1):
        assert split(data, size) == ["one", "two", "", "three"], size


def test_carriage_return_updates_keep_the_last_state_not_a_glued_line() -> None:
    bar = b"".join(b"\r%3d%%|%s|" % (i, b"#" * (i // 10)) for i in range(101)) + b"\n"
    data = b"before\n" + bar + b"after\n"
    for size in (1, 7, 64, len(data)):
        got = lines(split(data, size, step=0.0))
        assert got == ["before", "100%|##########|", "after"], size


def test_progress_is_throttled_and_always_superseded_by_the_line_end() -> None:
    # 1,000 updates over one second of the clock, one write (one read) each, as tqdm writes
    # them: a few progress items, not 1,000, each a whole state
    splitter = LineSplitter(progress_every=0.2)
    out: list[str] = []
    for i in range(1000):
        out += splitter.feed(b"\rstep %d" % i, i / 1000)
    out += splitter.feed(b"\n", 1.0) + splitter.flush()
    progress = [item for item in out if item.startswith(PROGRESS)]
    assert 4 <= len(progress) <= 6, progress
    assert progress[0] == PROGRESS + "step 0"
    assert all(p[1:].startswith("step ") for p in progress)
    assert out[-1] == "step 999" and len(out) == len(progress) + 1


def test_a_held_state_is_given_out_when_due_without_new_bytes() -> None:
    splitter = LineSplitter(progress_every=0.2)
    assert splitter.feed(b"\r 10%", 0.0) == [PROGRESS + " 10%"]
    assert splitter.feed(b"\r 20%", 0.05) == []  # too soon
    assert splitter.due() == 0.2
    assert splitter.tick(0.1) == []
    assert splitter.tick(0.2) == [PROGRESS + " 20%"]
    assert splitter.due() is None  # nothing newer waits


def test_a_bar_cleared_at_its_end_keeps_its_last_state() -> None:
    # tqdm(leave=False) blanks the line: the log keeps the last real state
    assert lines(split(b"\r 50%\r100%\r      \r", 3)) == ["100%"]
    assert lines(split(b"\r 50%\r100%\r      \rnext\n", 3)) == ["next"]


def test_a_trailing_cr_waits_for_the_next_byte_before_showing_progress() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"abc\r", 0.0) == []  # may be \r\n
    assert splitter.feed(b"\n", 1.0) == ["abc"]


def test_long_lines_are_cut_at_the_cap_and_join_back_byte_exact() -> None:
    cap = 64
    payload = ("é" * 100 + "x" + "🎉" * 50).encode()  # multibyte sequences straddle the cap
    for size in (1, 3, 63, 64, 65, 1000):
        pieces = split(payload + b"\nnext\n", size, cap=cap)
        assert pieces[-1] == "next", size
        body = pieces[:-1]
        assert "".join(body).encode() == payload, size
        assert all(len(p.encode()) <= cap for p in body), size
        assert all(len(p.encode()) > cap - 4 for p in body[:-1]), size
        assert "\ufffd" not in "".join(body)


def test_a_line_of_exactly_the_cap_is_one_line() -> None:
    for size in (1, 10, 16, 17):
        assert split(b"x" * 16 + b"\ny\n", size, cap=16) == ["x" * 16, "y"], size


def test_megabytes_without_newline_come_out_in_cap_sized_pieces() -> None:
    data = bytes(range(32, 127)) * (8 * 1024 * 1024 // 95 + 1)
    data = data[:8 * 1024 * 1024]
    pieces = split(data, 1 << 16)
    assert [len(p) for p in pieces] == [1 << 20] * 8
    assert "".join(pieces).encode() == data


def test_cut_point_never_splits_a_sequence() -> None:
    data = "aé€🎉".encode()  # 1 + 2 + 3 + 4 bytes
    for cap in range(1, len(data)):
        cut = cut_point(data, cap) if cap < len(data) else cap
        data[:cut].decode()  # a whole number of characters
        assert cap - 3 <= cut <= cap
    assert cut_point(b"\x80\x80\x80\x80\x80", 2) == 2  # not UTF-8: cut at the cap


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert split(b"ok \xff\xfe bad\n", 2) == ["ok \ufffd\ufffd bad"]
