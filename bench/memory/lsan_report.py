"""Summarise LeakSanitizer logs: every leak record, and those attributable to our code (a frame in
native/ or in dove.node). Prints a markdown report; exit status 1 when ours is not empty.

python3 bench/memory/lsan_report.py [--control ok|failed] <log files...>
"""
import re
import sys

HEAD = re.compile(r"^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\) allocated from:")
FRAME = re.compile(r"^\s+#(\d+) 0x[0-9a-f]+ (.*)$")


def records(text):
    rec = None
    for line in text.splitlines():
        m = HEAD.match(line)
        if m:
            if rec:
                yield rec
            rec = {"kind": m.group(1), "bytes": int(m.group(2)), "objects": int(m.group(3)), "frames": []}
            continue
        if rec is not None:
            f = FRAME.match(line)
            if f:
                rec["frames"].append(f.group(2))
            elif line.strip() == "":
                yield rec
                rec = None
    if rec:
        yield rec


def first_frame(rec):
    return next((f for f in rec["frames"] if "libasan" not in f and "operator new" not in f and " malloc" not in f), "?")


def node_owned(rec):
    """Node-API's own objects that only V8's garbage collector frees and env teardown never does:
    the 40-byte wrapper napi_create_external makes for every External (with or without a finalizer;
    the finalizer itself does run at teardown, so what it owns is freed), and the deferred of a
    promise that a terminated worker could not settle. No N-API call frees either, so they are
    listed apart rather than counted as ours. Anything else napi allocates (references, wraps) is
    ours to free and stays counted."""
    top = first_frame(rec)
    return rec["kind"] == "Direct" and "dove.node" not in top and (
        " napi_create_external (" in top or " napi_create_promise (" in top)


def ours(rec):
    # An indirect record allocated inside V8 (e.g. a map's slot set while napi_define_class ran in
    # our init) is V8 heap bookkeeping, reachable only from V8 heap pages that LSan lists as leaked
    # at exit: V8's, even with our init on the stack.
    if rec["kind"] == "Indirect" and "v8::internal::" in first_frame(rec):
        return False
    if node_owned(rec):
        return False
    return any("/native/" in f or "dove.node" in f for f in rec["frames"])


def main():
    args = sys.argv[1:]
    control = "unknown"
    if args[:1] == ["--control"]:
        control, args = args[1], args[2:]
    logs = args
    if not logs:
        if control == "ok":
            print("- no sanitizer output: **0 leak records and 0 memory errors** (LeakSanitizer was active: "
                  "the control leak was reported)")
            sys.exit(0)
        print("- no sanitizer output and no working control: inconclusive (LeakSanitizer may not have run)")
        sys.exit(2)
    text = ""
    for path in logs:
        with open(path, encoding="utf-8", errors="replace") as f:
            text += f.read() + "\n"
    errors = [l for l in text.splitlines() if "ERROR: AddressSanitizer" in l or "LeakSanitizer has encountered a fatal error" in l]
    recs = list(records(text))
    mine = [r for r in recs if ours(r)]
    total = sum(r["bytes"] for r in recs)
    print(f"- log files: {len(logs)}; AddressSanitizer errors (not leaks): {len(errors)}")
    for e in errors[:5]:
        print(f"  - `{e.strip()}`")
    print(f"- leak records: {len(recs)} ({total} bytes), of which attributable to native/ (dove.node): "
          f"**{len(mine)} ({sum(r['bytes'] for r in mine)} bytes)**")
    napi = [r for r in recs if node_owned(r)]
    if napi:
        ext = [r for r in napi if " napi_create_external (" in first_frame(r)]
        prom = [r for r in napi if " napi_create_promise (" in first_frame(r)]
        print(f"- Node-API objects alive at env teardown, which only the GC frees (not counted above; "
              f"docs/NATIVE.md, \"Tensor handles\"): {sum(r['objects'] for r in ext)} External wrappers "
              f"({sum(r['bytes'] for r in ext)} bytes: one per tensor handle still alive when its "
              f"process or worker ended), {sum(r['objects'] for r in prom)} promise deferreds "
              f"({sum(r['bytes'] for r in prom)} bytes: calls in flight in a terminated worker)")
    others = {}
    for r in recs:
        if ours(r) or node_owned(r):
            continue
        top = first_frame(r)
        key = re.sub(r"\+0x[0-9a-f]+", "", top.split(" in ", 1)[-1])[:100]
        others[key] = others.get(key, 0) + r["bytes"]
    if others:
        print("- other leak records by first non-allocator frame (node / V8 / libtorch globals alive at exit):")
        for key, b in sorted(others.items(), key=lambda kv: -kv[1])[:8]:
            print(f"  - {b} bytes: `{key}`")
    for r in mine[:10]:
        print(f"\n{r['kind']} leak of {r['bytes']} bytes in {r['objects']} objects:\n```")
        print("\n".join(r["frames"][:16]))
        print("```")
    sys.exit(1 if mine or errors else 0)


if __name__ == "__main__":
    main()
