"""base.waiting: Ctrl-C reaches a main thread that waits on other threads' work."""

import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, FIRST_EXCEPTION, ThreadPoolExecutor, wait

import pytest

from harness.base.waiting import wait_futures


def interrupt_from_a_worker():
    """SIGINT handled by this worker thread, not the main one (the kernel may pick any)."""
    time.sleep(0.2)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)


@pytest.mark.parametrize("waiter", [wait, wait_futures])
def test_ctrl_c_taken_by_another_thread_interrupts_the_wait(waiter):
    release = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        work = pool.submit(release.wait, 1.5 if waiter is wait else 60)
        with pytest.raises(KeyboardInterrupt):
            waiter([work, pool.submit(interrupt_from_a_worker)])
        interrupted_during_the_work = not work.done()
        release.set()
    # the control: an untimed wait raises only once the work is over
    assert interrupted_during_the_work == (waiter is wait_futures)


def test_it_returns_what_wait_returns():
    release = threading.Event()
    with ThreadPoolExecutor(3) as pool:
        slow, fast = pool.submit(release.wait, 30), pool.submit(lambda: 1)
        done, not_done = wait_futures([slow, fast], return_when=FIRST_COMPLETED)
        assert fast in done
        failing = pool.submit(lambda: 1 / 0)
        done, _ = wait_futures([slow, failing], return_when=FIRST_EXCEPTION)
        assert done == {failing}
        done, not_done = wait_futures([slow], timeout=0.25)
        assert not done and not_done == {slow}
        release.set()
        assert wait_futures([slow, fast]) == ({slow, fast}, set())
