"""rlkit.interrupts: the first Ctrl-C or SIGTERM asks for a stop, the second forces it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from rlkit import interrupts


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_requests_a_stop_the_second_forces_it(sig):
    before = signal.getsignal(sig)
    with interrupts.graceful():
        interrupts.check()  # nothing requested yet
        os.kill(os.getpid(), sig)  # handled: only a request
        assert interrupts.requested_signal() == sig
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        assert interrupts.stopped_at_boundary()  # a final checkpoint may be written
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)  # the second one interrupts at once
            time.sleep(1)
        assert not interrupts.stopped_at_boundary()  # forced: no checkpoint
    interrupts.check()  # outside the block, nothing is raised
    assert signal.getsignal(sig) is before


def test_outside_graceful_check_does_nothing():
    interrupts.check()
    assert not interrupts.stopped_at_boundary()
