"""Initializers: sparse structure, determinism, echo-state radius, output biases, options."""
import unittest

import numpy as np

from helpers import addition_batch, mi


class TestSparse(unittest.TestCase):
    def test_preset_ff_is_sparse_and_deterministic(self):
        with mi.Net.feedforward([40, 30, 10], "tanh", "softmax_xent") as a, \
                mi.Net.feedforward([40, 30, 10], "tanh", "softmax_xent") as b:
            mi.preset_ff(a, 17)
            mi.preset_ff(b, 17)
            np.testing.assert_array_equal(a.params, b.params)  # bit-identical
            for blk in a.blocks():
                v = a.block_view(blk.index)
                if blk.kind == mi.BlockKind.WEIGHTS:
                    nz = np.count_nonzero(v, axis=1)
                    # K = 15 nonzeros per unit, or every source when the fan-in is smaller
                    self.assertTrue(np.all(nz == min(15, blk.cols)), (blk, nz))
                else:
                    # zero biases, except 0.5 for tanh units: the preset turns the tanh rule
                    # on when a hidden layer is tanh (init.h, MOM_INIT_SPARSE)
                    tanh = a.layer_act(blk.layer + 1) == mi.Act.TANH
                    self.assertTrue(np.all(v == (0.5 if tanh else 0.0)), (blk, v))
            mi.preset_ff(b, 18)
            self.assertFalse(np.array_equal(a.params, b.params))

    def test_initializer_options_and_apply(self):
        with mi.Net.feedforward([20, 8, 3], "logistic") as net, mi.Rng(4) as rng, \
                mi.Initializer("sparse", k=5, scale=0.5, bias=0.25) as init:
            self.assertEqual(init.kind, mi.InitKind.SPARSE)
            self.assertEqual(init.k, 5)
            self.assertEqual(init.scale, 0.5)
            self.assertFalse(init.tanh_rule)
            init.apply(net, rng)
            w0 = net.block_view(0)
            self.assertTrue(np.all(np.count_nonzero(w0, axis=1) == 5))
            self.assertTrue(np.all(net.block_view(1) == 0.25))
            init.scale = 0.0
            init.apply_block(net, 2, rng)
            self.assertTrue(np.all(net.block_view(2) == 0))
            self.assertTrue(np.any(w0 != 0))  # other blocks untouched

    def test_zero_needs_no_stream(self):
        # "zero" draws nothing: its rng may be None (init.h); the others need one
        with mi.Net.feedforward([5, 4, 2], "logistic") as net, \
                mi.Initializer("zero", bias=0.5) as zero, mi.Initializer("sparse") as sparse:
            net.params[:] = 3.0
            zero.apply(net, None)
            self.assertTrue(np.all(net.block_view(0) == 0))
            self.assertTrue(np.all(net.block_view(1) == 0.5))
            zero.apply_block(net, 2, None)
            with self.assertRaises(mi.InvalidError):
                sparse.apply(net, None)
            with self.assertRaises(TypeError):
                zero.apply(net, 7)

    def test_bad_option_keeps_value_and_names_it(self):
        with mi.Initializer(mi.InitKind.SPARSE) as init:
            with self.assertRaises(mi.InvalidError) as cm:
                init.scale = -1.0
            self.assertTrue(cm.exception.detail)
            self.assertEqual(init.scale, 1.0)
            with self.assertRaises(mi.InvalidError):
                init.set(mi.InitOption.REACHED_RADIUS, 1.0)
            with self.assertRaises(TypeError):
                mi.Initializer("sparse", colour=3)
            with self.assertRaises(TypeError):
                init.apply("not a net", None)


class TestRecurrent(unittest.TestCase):
    def test_echo_state_radius(self):
        with mi.Net.recurrent(2, 30, 1) as net, mi.Rng(5) as rng, \
                mi.Initializer("echo_state", radius=1.1) as init:
            init.apply(net, rng)
            whh = net.block_view(net.find_block(mi.BlockKind.W_HH))
            r = mi.spectral_radius(np.ascontiguousarray(whh))
            self.assertAlmostEqual(r, 1.1, places=4)
            self.assertAlmostEqual(init.reached_radius, r, places=4)
            self.assertTrue(np.all(net.block_view(0) == 0))  # only W_hh
            # a block view is C-contiguous: the radius can be taken without a copy
            self.assertAlmostEqual(mi.spectral_radius(whh), r, places=6)

    def test_preset_rnn_output_bias_from_data(self):
        gen = np.random.default_rng(0)
        with mi.Net.recurrent(2, 20, 1) as net:
            x, t = addition_batch(gen, 50, 10)
            mi.preset_rnn(net, 0.001, 3, data=(x, t))
            bo = net.block_view(net.find_block(mi.BlockKind.B_O))
            self.assertAlmostEqual(float(bo[0, 0]), float(t[-1].mean()), places=5)
            wvh = net.block_view(0)
            self.assertLess(np.abs(wvh).max(), 0.01)  # N(0,1) * 0.001
            bo[...] = 0
            mi.output_bias(net, mi.Batch(x, t))
            self.assertAlmostEqual(float(bo[0, 0]), float(t[-1].mean()), places=5)
            with self.assertRaises(mi.InvalidError) as cm:
                mi.preset_rnn(net, -1.0, 3)
            self.assertIn("input_scale", cm.exception.detail)

    def test_preset_rnn_on_ff_fails_with_detail(self):
        with mi.Net.feedforward([2, 2]) as net:
            with self.assertRaises(mi.InvalidError) as cm:
                mi.preset_rnn(net, 0.1, 1)
            self.assertIn("recurrent", cm.exception.detail)


class TestSpectralRadius(unittest.TestCase):
    def test_values_and_validation(self):
        a = np.diag(np.array([0.5, -2.0, 1.5], np.float32))
        self.assertAlmostEqual(mi.spectral_radius(a), 2.0, places=6)
        rot = np.array([[0, -3], [3, 0]], np.float32)  # eigenvalues +-3i
        self.assertAlmostEqual(mi.spectral_radius(rot), 3.0, places=5)
        with self.assertRaises(TypeError):
            mi.spectral_radius(a.astype(np.float64))
        with self.assertRaises(ValueError):
            mi.spectral_radius(np.zeros((2, 3), np.float32))


if __name__ == "__main__":
    unittest.main()
