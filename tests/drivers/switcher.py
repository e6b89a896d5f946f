"""The driver tests' side of the switch protocol: a line on stdout asks the Rust test to
switch the sidecar, and the answer comes back on stdin."""

import sys


def _ask(line):
    print(line, flush=True)
    answer = sys.stdin.readline().strip()
    if not answer:
        raise SystemExit("the test did not answer " + line)
    return answer


def switch():
    """Switches the sidecar to the other side; returns where it went."""
    return _ask("SWITCH").split()[-1]


def begin_switch():
    """Starts a switch that waits for this session's open transaction."""
    _ask("SWITCH_BEGIN")


def wait_switch():
    """Waits for the switch begun with begin_switch; returns where it went."""
    return _ask("SWITCH_WAIT").split()[-1]


def done(summary):
    print("DONE " + summary, flush=True)


def check(condition, what):
    if not condition:
        raise AssertionError(what)
