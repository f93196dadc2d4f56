"""Handle lifetimes: deterministic close, garbage collection, no double free, views keeping
memory alive, borrowed objects kept alive, allocation failures, threads. A CountingAllocator
sees every allocation and free the C library makes."""
import gc
import threading
import unittest
import weakref

import numpy as np

from helpers import classification_batch, mi


def make_all(alloc):
    """One handle of every kind, all through `alloc`."""
    net = mi.Net.feedforward([3, 5, 2], "tanh", "softmax_xent", allocator=alloc)
    rnn = mi.Net.recurrent(2, 4, 1, allocator=alloc)
    rng = mi.Rng(1, allocator=alloc)
    init = mi.Initializer("sparse", k=2, allocator=alloc)
    sched = mi.Sched.paper_momentum(allocator=alloc)
    opt = mi.Optimizer("nag", net, momentum=sched, allocator=alloc)
    return [net, rnn, rng, init, sched, opt]


class TestLifetime(unittest.TestCase):
    def test_close_frees_everything_once(self):
        alloc = mi.CountingAllocator()
        handles = make_all(alloc)
        self.assertGreater(alloc.live, 0)
        for h in handles:
            h.close()
            h.close()  # idempotent: never a second destroy
        self.assertEqual(alloc.live, 0)
        self.assertEqual(alloc.frees, alloc.allocs)
        self.assertEqual(alloc.bad_frees, [])
        self.assertTrue(all(h.closed for h in handles))

    def test_batch_arrays_cannot_be_replaced(self):
        b = mi.Batch(np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32))
        for name in ("inputs", "targets", "mask", "lengths"):
            with self.assertRaises(AttributeError):
                setattr(b, name, np.ones((1, 3), np.float32))
        self.assertEqual(b.inputs.shape, (4, 3))

    def test_copies_are_refused(self):
        import copy
        import pickle
        with mi.Net.feedforward([2, 2]) as net:
            for fn in (copy.copy, copy.deepcopy, pickle.dumps):
                with self.assertRaises(TypeError):
                    fn(net)

    def test_context_managers(self):
        alloc = mi.CountingAllocator()
        with mi.Net.feedforward([2, 2], allocator=alloc) as net, \
                mi.Rng(3, allocator=alloc) as rng:
            self.assertGreater(alloc.live, 0)
            self.assertFalse(net.closed or rng.closed)
        self.assertEqual(alloc.live, 0)
        self.assertTrue(net.closed and rng.closed)

    def test_garbage_collection_frees(self):
        alloc = mi.CountingAllocator()
        before = mi.live_handles()
        handles = make_all(alloc)
        counts = mi.live_handles()
        self.assertEqual(counts.get("Net", 0), before.get("Net", 0) + 2)
        del handles
        gc.collect()
        self.assertEqual(alloc.live, 0)
        self.assertEqual(alloc.bad_frees, [])
        self.assertEqual(mi.live_handles(), before)

    def test_reference_cycle_is_collected(self):
        alloc = mi.CountingAllocator()
        net = mi.Net.feedforward([2, 2], allocator=alloc)
        net.me = net  # a cycle: only the cyclic GC can free it
        wr = weakref.ref(net)
        del net
        gc.collect()
        self.assertIsNone(wr())
        self.assertEqual(alloc.live, 0)

    def test_params_view_keeps_network_memory(self):
        alloc = mi.CountingAllocator()
        net = mi.Net.feedforward([3, 4], allocator=alloc)
        p = net.params
        p[:] = np.arange(p.size, dtype=np.float32)
        window = p[2:5]  # a derived view keeps it alive too
        net.close()
        del p
        gc.collect()
        with self.assertRaises(ValueError):
            net.params
        self.assertGreater(alloc.live, 0)  # freed only when the last view goes
        np.testing.assert_array_equal(window, [2, 3, 4])
        window[0] = -1.0  # still valid memory
        del window
        gc.collect()
        self.assertEqual(alloc.live, 0)
        self.assertEqual(alloc.bad_frees, [])

    def test_close_without_views_is_immediate(self):
        alloc = mi.CountingAllocator()
        net = mi.Net.feedforward([3, 4], allocator=alloc)
        _ = net.params.sum()  # a temporary view, already gone
        net.close()
        self.assertEqual(alloc.live, 0)

    def test_optimizer_keeps_schedules_not_sched_objects(self):
        alloc = mi.CountingAllocator()
        sched = mi.Sched.const(0.5, allocator=alloc)
        wr = weakref.ref(sched)
        opt = mi.Optimizer("cm", 3, momentum=sched)
        sched.close()
        del sched
        gc.collect()
        self.assertIsNone(wr())          # the Python Sched object is gone...
        self.assertEqual(alloc.live, 1)  # ...but the C schedule lives in the optimizer
        self.assertEqual(opt.momentum, 0.5)
        opt.set_momentum(0.25)           # releases the old schedule
        self.assertEqual(alloc.live, 0)
        self.assertEqual(alloc.bad_frees, [])
        opt.close()

    def test_batch_view_keeps_arrays_alive(self):
        gen = np.random.default_rng(0)
        x, t = classification_batch(gen, 4, 3, 2)
        b = mi.Batch(x, t)
        self.assertIs(b.inputs.base, x)  # no copy: a view of the caller's array
        self.assertEqual(b._c.inputs, x.ctypes.data)
        wr = weakref.ref(x)
        del x
        gc.collect()
        self.assertIsNotNone(wr())  # the batch references its arrays
        with mi.Net.feedforward([3, 2]) as net:
            net.loss(b)
        del b
        gc.collect()
        self.assertIsNone(wr())


class TestLocks(unittest.TestCase):
    def test_a_refusing_lock_releases_the_ones_taken_before(self):
        # locked() takes the locks in id order; when one refuses (a callback's rule), the ones
        # already taken must be released, or the handle stays locked (other threads block)
        with mi.Rng(1) as a, mi.Rng(2) as b:
            lo, hi = sorted((a, b), key=id)
            with hi._lock:
                hi._lock.barred = "refused"
                try:
                    with self.assertRaisesRegex(RuntimeError, "refused"):
                        with mi._base.locked(lo, hi):
                            pass
                finally:
                    hi._lock.barred = None
            self.assertEqual((lo._lock.depth, hi._lock.depth), (0, 0))
            t = threading.Thread(target=lo.u32, daemon=True)
            t.start()
            t.join(10)
            self.assertFalse(t.is_alive())


class TestAllocationFailures(unittest.TestCase):
    def test_every_failing_allocation_raises_nomem_without_leaks(self):
        gen = np.random.default_rng(1)
        x, t = classification_batch(gen, 6, 3, 2)
        n = 1
        while True:
            alloc = mi.CountingAllocator(fail_at=n)
            try:
                with mi.Net.feedforward([3, 4, 2], allocator=alloc) as net:
                    net.loss_grad((x, t))  # allocates the workspace
                    with mi.Optimizer("nag", net, allocator=alloc) as opt:
                        opt.step_net(net, (x, t))
            except mi.NoMemError as e:
                self.assertEqual(e.status, mi.Status.E_NOMEM)
                self.assertIsInstance(e, MemoryError)
                gc.collect()
                self.assertEqual(alloc.live, 0, f"leak after failing allocation {n}")
                self.assertEqual(alloc.failures, 1)
                n += 1
                continue
            self.assertEqual(alloc.failures, 0)  # n is past the last allocation
            break
        self.assertGreater(n, 3)

    def test_allocator_exception_becomes_failure(self):
        class Broken(mi.Allocator):
            def alloc(self, size):
                raise RuntimeError("no")

            def realloc(self, ptr, size):
                raise RuntimeError("no")

            def free(self, ptr):
                raise AssertionError("nothing to free")
        broken = Broken()
        with self.assertRaises(mi.NoMemError):
            mi.Rng(1, allocator=broken)
        self.assertIsInstance(broken.last_exception, RuntimeError)
        with self.assertRaises(TypeError):
            mi.Rng(1, allocator="malloc")

    def test_allocator_results_are_checked_before_they_reach_c(self):
        # a numpy integer is an address like any int; a float is no address: a failure with the
        # reason kept (ctypes alone would print the error and hand C an uninitialised pointer)
        class Numpy(mi.CountingAllocator):
            def alloc(self, size):
                return np.uintp(super().alloc(size))

        class Float(mi.CountingAllocator):
            def alloc(self, size):
                return float(super().alloc(size))

        numpy_alloc = Numpy()
        with mi.Rng(1, allocator=numpy_alloc) as r:
            r.uniform_array((4,))
        gc.collect()
        self.assertEqual(numpy_alloc.live, 0)
        float_alloc = Float()
        with self.assertRaises(mi.NoMemError):
            mi.Rng(1, allocator=float_alloc)
        self.assertIsInstance(float_alloc.last_exception, TypeError)


class TestThreads(unittest.TestCase):
    def test_separate_and_shared_handles(self):
        gen = np.random.default_rng(2)
        x, t = classification_batch(gen, 32, 4, 3)
        b = mi.Batch(x, t)
        shared = mi.Net.feedforward([4, 8, 3], "tanh", "softmax_xent")
        mi.preset_ff(shared, 1)
        expect = shared.loss_grad(b)
        errors = []

        def work(seed):
            try:
                with mi.Net.feedforward([4, 8, 3], "tanh", "softmax_xent") as own, \
                        mi.Optimizer("nag", own, lr=0.05) as opt:
                    mi.preset_ff(own, seed)
                    for _ in range(20):
                        opt.step_net(own, b)
                        # the same handle from every thread: calls are serialized
                        loss, grad = shared.loss_grad(b)
                        if loss != expect[0] or not np.array_equal(grad, expect[1]):
                            errors.append("shared net gave a different result")
            except Exception as e:  # pragma: no cover - reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        shared.close()
        self.assertEqual(errors, [])


if __name__ == "__main__":
    unittest.main()
