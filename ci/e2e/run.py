#!/usr/bin/env python3
"""rvs end-to-end test runner (stdlib only).

    python3 ci/e2e/run.py                       every test
    python3 ci/e2e/run.py wrr udp               tests whose name contains "wrr" or "udp"
    python3 ci/e2e/run.py 'wrr_distribution[w1]'  one test (exact name also works)
    python3 ci/e2e/run.py --list                show the test names

Tests live in ci/e2e/test_*.py and register with @lib.e2e. Each gets a fresh
topology (ci/netns.py) and a fresh director. The last line is always
`e2e: N passed, N failed` (plus `, N skipped`); exit 1 if any failed.

Environment: RVS_BIN=path (default target/release/rvs); RVS_E2E_FAKE=1 runs the
harness against ci/e2e/fakedirector.py instead of rvs (to check the harness);
RVS_E2E_PCAP=1 captures client.pcap and servers.pcap (headers) in each test's
temp dir (kept on failure, or always with --keep).
"""

import argparse
import fnmatch
import glob
import importlib
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import lib  # noqa: E402
import netns  # noqa: E402


class TestTimeout(Exception):
    pass


def on_alarm(*_):
    raise TestTimeout("test exceeded its time limit")


def selected(name, patterns):
    if not patterns:
        return True
    for p in patterns:
        # globs: * and ? only; brackets are literal (test names end in [w1])
        if name == p or p in name or fnmatch.fnmatchcase(name, p.replace("[", "[[]")):
            return True
    return False


def preflight():
    """Reasons the suite cannot run here at all (-> every test is skipped)."""
    if os.geteuid() != 0:
        return "not root (network namespaces need root)"
    for tool in ("ip", "ethtool"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
            return f"{tool} missing (run ci/setup.sh)"
    return None


def run_one(t, keep, tag):
    """Runs test `t` once in a fresh environment: "PASS", "FAIL" or "SKIP (...)"."""
    t0 = time.monotonic()
    env = lib.Env(t, keep=keep)
    status = "FAIL"
    signal.alarm(t.timeout)
    try:
        t.fn(env)
        status = "PASS"
    except lib.Skip as e:
        status = f"SKIP ({e})"
    except (AssertionError, TestTimeout) as e:
        print(f"    FAILED: {e}", flush=True)
    except KeyboardInterrupt:
        print("    interrupted", flush=True)
        raise
    except Exception:
        print("    ERROR:\n" + "".join("      " + l for l in traceback.format_exc().splitlines(True)),
              flush=True)
    finally:
        signal.alarm(0)
        if status == "FAIL":
            print(env.diagnostics(), flush=True)
        try:
            signal.alarm(60)
            env.teardown(failed=(status == "FAIL"))
        except Exception as e:
            print(f"    teardown failed: {e}", flush=True)
        finally:
            signal.alarm(0)
    print(f"{tag} {t.name} {status} ({time.monotonic() - t0:.1f}s)", flush=True)
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("patterns", nargs="*", help="substring or glob of test names")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep each test's temp dir")
    ap.add_argument("--exitfirst", "-x", action="store_true", help="stop after the first failure")
    ap.add_argument("--retries", type=int, default=int(os.environ.get("RVS_E2E_RETRIES", "0")),
                    help="run a failed test again up to N times; one that then passes is reported "
                         "FLAKY in the summary (default: $RVS_E2E_RETRIES or 0)")
    a = ap.parse_args()

    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        importlib.import_module(os.path.basename(path)[:-3])
    tests = [t for t in lib.TESTS if selected(t.name, a.patterns)]
    if a.list:
        for t in lib.TESTS:
            print(t.name)
        return 0
    if not tests:
        print(f"no test matches {a.patterns}")
        print("e2e: 0 passed, 0 failed")
        return 1

    signal.signal(signal.SIGALRM, on_alarm)
    # SIGTERM -> KeyboardInterrupt-like unwinding so every finally block runs
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    passed, failed, skipped = [], [], []
    why = preflight()
    if not why and not lib.fake_mode() and not os.access(lib.rvs_binary(), os.X_OK):
        print(f"director binary {lib.rvs_binary()} missing: build it with "
              "`cargo build --release -p rvs-cli` (every test will fail)", flush=True)
    if not why:
        netns.cleanup_leftovers()
    t_suite = time.monotonic()
    print(f"e2e: running {len(tests)} test(s)" + (" against the FAKE director" if lib.fake_mode() else ""),
          flush=True)
    flaky = []
    try:
        for i, t in enumerate(tests, 1):
            print(f"[{i}/{len(tests)}] {t.name} ...", flush=True)
            if why:
                skipped.append(t.name)
                print(f"[{i}/{len(tests)}] {t.name} SKIP ({why})", flush=True)
                continue
            for attempt in range(a.retries + 1):
                status = run_one(t, a.keep, f"[{i}/{len(tests)}]" + (f" retry {attempt}" if attempt else ""))
                if status != "FAIL":
                    break
                if attempt < a.retries:
                    print(f"[{i}/{len(tests)}] {t.name} failed: running it again "
                          f"(retry {attempt + 1} of {a.retries})", flush=True)
            if status == "PASS":
                passed.append(t.name)
                if attempt:
                    flaky.append(t.name)
            elif status.startswith("SKIP"):
                skipped.append(t.name)
            else:
                failed.append(t.name)
            if failed and a.exitfirst:
                break
    except KeyboardInterrupt:
        failed.append("interrupted")
    finally:
        netns.teardown_all()

    print(f"e2e: suite took {time.monotonic() - t_suite:.0f}s", flush=True)
    for n in failed:
        print(f"  failed: {n}")
    for n in flaky:
        print(f"  FLAKY (failed, then passed on retry): {n}")
    line = f"e2e: {len(passed)} passed, {len(failed)} failed"
    if skipped:
        line += f", {len(skipped)} skipped"
    if flaky:
        line += f", {len(flaky)} flaky"
    print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
