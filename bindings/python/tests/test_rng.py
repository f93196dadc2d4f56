"""Rng: determinism, the documented derivations, in-place fills and state round trips."""
import unittest

import numpy as np

from helpers import mi


class TestRng(unittest.TestCase):
    def test_same_seed_same_stream(self):
        with mi.Rng(7, 3) as a, mi.Rng(7, 3) as b, mi.Rng(7, 4) as c:
            xa = [a.u32() for _ in range(10)]
            self.assertEqual(xa, [b.u32() for _ in range(10)])
            self.assertNotEqual(xa, [c.u32() for _ in range(10)])
            self.assertTrue(all(0 <= v < 2 ** 32 for v in xa))

    def test_documented_derivations(self):
        with mi.Rng(11) as a, mi.Rng(11) as b:
            for _ in range(50):
                u = a.u32()
                self.assertEqual(b.uniformf(), np.float32((u >> 8) * 2.0 ** -24))
            for _ in range(50):
                hi, lo = a.u32(), a.u32()
                self.assertEqual(b.u64(), (hi << 32) | lo)
            for _ in range(50):
                w = a.u64()
                self.assertEqual(b.uniform(), (w >> 11) * 2.0 ** -53)
        with mi.Rng(1) as r:
            self.assertEqual(r.below(0), 0)
            self.assertTrue(all(0 <= r.below(7) < 7 for _ in range(100)))

    def test_reseed(self):
        with mi.Rng(5, 1) as r:
            first = [r.u64() for _ in range(3)]
            r.reseed(5, 1)
            self.assertEqual(first, [r.u64() for _ in range(3)])

    def test_fill_in_place_without_copy(self):
        with mi.Rng(3) as r:
            buf = np.zeros(10, np.float32)
            view = buf[2:8]  # a contiguous window into a bigger array
            out = r.fill_normal(view, mean=1.0, stddev=2.0)
            self.assertIs(out, view)
            self.assertTrue(np.all(buf[:2] == 0) and np.all(buf[8:] == 0))
            self.assertTrue(np.all(buf[2:8] != 0))
            r.reseed(3, 0)
            expect = np.array([1.0 + 2.0 * r.normal() for _ in range(6)], dtype=np.float32)
            np.testing.assert_array_equal(buf[2:8], expect)
            u = r.uniform_array((4, 5), lo=-1.0, hi=1.0)
            self.assertEqual(u.shape, (4, 5))
            self.assertTrue(np.all((u >= -1) & (u < 1)))

    def test_fill_validation(self):
        with mi.Rng(3) as r:
            with self.assertRaises(TypeError):
                r.fill_normal(np.zeros(4))
            with self.assertRaises(ValueError):
                r.fill_uniform(np.zeros(8, np.float32)[::2])
            with self.assertRaises(mi.InvalidError) as cm:
                r.fill_uniform(np.zeros(4, np.float32), lo=1.0, hi=0.0)
            self.assertIn(mi.strerror(-1), str(cm.exception))

    def test_sample(self):
        with mi.Rng(9) as r:
            s = r.sample(5, 20)
            self.assertEqual(s.dtype, np.uintp)
            self.assertEqual(len(set(s.tolist())), 5)
            self.assertTrue(np.all(np.diff(s.astype(np.int64)) > 0))
            self.assertTrue(np.all(s < 20))
            with self.assertRaises(mi.InvalidError):
                r.sample(21, 20)

    def test_state_round_trip(self):
        with mi.Rng(21, 2) as r, mi.Rng(0) as other:
            r.normal()  # leaves a cached normal in the state
            st = r.get_state()
            self.assertEqual(st.shape, (mi.RNG_STATE_WORDS,))
            ahead = [r.normal() for _ in range(5)] + [r.u32()]
            other.set_state(st)
            self.assertEqual(ahead, [other.normal() for _ in range(5)] + [other.u32()])
            with self.assertRaises(ValueError):
                other.set_state([1, 2, 3])
            bad = st.copy()
            bad[5] = 1  # a word that must be 0
            before = other.get_state()
            with self.assertRaises(mi.FormatError) as cm:
                other.set_state(bad)
            self.assertIn("inconsistent", cm.exception.detail)
            np.testing.assert_array_equal(other.get_state(), before)  # unchanged
            # words are integers in 0..2^64-1: no float is truncated, no negative wrapped
            for bad in (list(st[:5]) + [0.5], list(st[:5]) + [-1], list(st[:5]) + [2**64]):
                with self.assertRaises(ValueError):
                    other.set_state(bad)
            np.testing.assert_array_equal(other.get_state(), before)
            other.set_state([int(w) for w in st])  # a list of Python ints is fine
            np.testing.assert_array_equal(other.get_state(), st)


if __name__ == "__main__":
    unittest.main()
