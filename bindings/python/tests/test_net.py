"""Networks: zero-copy parameter views, block layout, gradients against finite differences,
forward passes against numpy, Gauss-Newton products, metrics and options."""
import gc
import unittest
import weakref

import numpy as np

try:  # an independent implementation to cross-check against (Debian: python3-torch)
    import torch
except ImportError:
    torch = None

from helpers import (addition_batch, classification_batch, finite_difference_grad, mi,
                     relative_error)


class TestBatchShapes(unittest.TestCase):
    def test_shapes_are_fixed_when_the_batch_is_built(self):
        # the C view holds n and the addresses: reshaping the caller's arrays or what the
        # properties return changes nothing the library sees, and resizing is refused
        f32 = np.float32
        x, t = np.ones((6, 3), f32), np.ones((6, 2), f32)
        b = mi.Batch(x, t)
        with mi.Net.feedforward([3, 4, 2]) as net, mi.Net.feedforward([6, 4, 2]) as wide:
            mi.preset_ff(net, 1)
            loss = net.loss(b)
            x.shape = (3, 6)  # the caller's own array
            b.inputs.shape = (3, 6)  # a fresh view each time
            self.assertEqual(b.n_in, 3)
            self.assertEqual(b.inputs.shape, (6, 3))
            self.assertEqual(net.loss(b), loss)
            with self.assertRaises(ValueError):  # still a batch of 3 inputs
                wide.loss(b)
            with self.assertRaises(ValueError):
                x.resize((100000, 6))
            c = mi.Batch(np.ones((5, 3), f32), np.ones((5, 2), f32))  # the batch's own arrays
            with self.assertRaises(ValueError):
                c.inputs.resize((100000, 3))
            with self.assertRaises(ValueError):
                c.inputs.base.resize((100000, 3))


    def test_copy_makes_aligned_arrays(self):
        # a float32 array at an odd address: refused in place, copied to aligned memory with
        # copy=True (the library must never get a misaligned float pointer)
        raw = np.zeros(6 * 3 * 4 + 1, np.uint8)
        x = raw[1:].view(np.float32).reshape(6, 3)
        x[:] = 0.5
        self.assertNotEqual(x.ctypes.data % 4, 0)
        t = np.ones((6, 2), np.float32)
        with self.assertRaises(ValueError):
            mi.Batch(x, t)
        b = mi.Batch(x, t, copy=True)
        self.assertEqual(b.inputs.ctypes.data % 4, 0)
        np.testing.assert_array_equal(b.inputs, x)
        with mi.Net.feedforward([3, 4, 2]) as net:
            mi.preset_ff(net, 1)
            self.assertTrue(np.isfinite(net.loss(b)))


class TestParamsView(unittest.TestCase):
    def test_params_alias_library_memory(self):
        with mi.Net.feedforward([3, 4, 2]) as net:
            p = net.params
            self.assertEqual(p.dtype, np.float32)
            self.assertEqual(p.shape, (net.num_params,))
            self.assertEqual(p.ctypes.data, mi._lib.lib.mom_net_params(net._ptr))
            self.assertTrue(np.shares_memory(p, net.params))
            self.assertTrue(np.all(p == 0))  # nets start at zero
            p[5] = 3.5  # a write through one view is seen by another and by the library
            self.assertEqual(net.params[5], 3.5)
            net.params = np.arange(net.num_params, dtype=np.float32)
            self.assertEqual(p[7], 7.0)

    def test_write_changes_the_loss(self):
        gen = np.random.default_rng(0)
        with mi.Net.feedforward([3, 4, 2], "tanh", "linear_squared") as net:
            b = mi.Batch(*classification_batch(gen, 6, 3, 2))
            before = net.loss(b)
            net.params[-1] = 2.0  # last output bias
            self.assertNotEqual(net.loss(b), before)

    def test_block_layout_and_views(self):
        with mi.Net.feedforward([3, 4, 2]) as net:
            blocks = net.blocks()
            self.assertEqual([(b.kind, b.layer, b.rows, b.cols) for b in blocks],
                             [(mi.BlockKind.WEIGHTS, 0, 4, 3), (mi.BlockKind.BIASES, 0, 4, 1),
                              (mi.BlockKind.WEIGHTS, 1, 2, 4), (mi.BlockKind.BIASES, 1, 2, 1)])
            self.assertEqual(net.num_params, 3 * 4 + 4 + 4 * 2 + 2)
            self.assertEqual(net.find_block(mi.BlockKind.WEIGHTS, 1), 2)
            w = net.block_view(2)
            w[1, 3] = 9.0  # entry (j=1, i=3) at offset + j*cols + i
            self.assertEqual(net.params[blocks[2].offset + 1 * 4 + 3], 9.0)
            with self.assertRaises(mi.InvalidError) as cm:
                net.find_block(mi.BlockKind.W_HH)
            self.assertIn("no block", cm.exception.detail)

    def test_rnn_layout(self):
        with mi.Net.recurrent(2, 5, 1, learn_h0=True) as net:
            kinds = [b.kind for b in net.blocks()]
            self.assertEqual(kinds, [mi.BlockKind.W_VH, mi.BlockKind.W_HH, mi.BlockKind.B_H,
                                     mi.BlockKind.W_HO, mi.BlockKind.B_O, mi.BlockKind.H0])
            self.assertEqual(net.num_params, 5 * 2 + 25 + 5 + 5 + 1 + 5)
            self.assertEqual(net.kind, mi.NetKind.RECURRENT)
            self.assertEqual(net.num_layers, 3)
            self.assertEqual([net.layer_size(i) for i in range(3)], [2, 5, 1])
            self.assertEqual(net.layer_act(1), mi.Act.TANH)


class TestGradients(unittest.TestCase):
    def test_ff_gradient_equals_finite_differences(self):
        gen = np.random.default_rng(1)
        for output, n_out in (("linear_squared", 2), ("softmax_xent", 3), ("logistic_xent", 2)):
            with self.subTest(output=output), \
                    mi.Net.feedforward([4, 6, 5, n_out], ["tanh", "logistic"], output) as net:
                x, t = classification_batch(gen, 7, 4, n_out)
                if output == "logistic_xent":
                    t = (gen.random(t.shape) < 0.5).astype(np.float32)
                b = mi.Batch(x, t)
                net.params[:] = gen.normal(0, 0.5, net.num_params).astype(np.float32)
                loss, grad = net.loss_grad(b)
                self.assertAlmostEqual(loss, net.loss(b), places=6)
                fd = finite_difference_grad(net, b)
                self.assertLess(relative_error(grad, fd), 2e-2)
                self.assertLess(np.linalg.norm(grad - fd) / np.linalg.norm(fd), 2e-3)
                self.assertLess(net.check_grad(b, eps=1e-2), 1e-2)

    def test_rnn_gradient_equals_finite_differences(self):
        gen = np.random.default_rng(2)
        with mi.Net.recurrent(2, 4, 1, learn_h0=True) as net:
            x, t = addition_batch(gen, 5, 6)
            mask = np.zeros((6, 5), np.float32)
            mask[-1] = 1.0
            mask[2] = 0.5
            lengths = [6, 4, 6, 5, 3]
            # targets at each sequence's last step
            for s, n in enumerate(lengths):
                t[n - 1, s, 0] = 0.3 + 0.1 * s
            b = mi.Batch(x, t, mask=mask, lengths=lengths)
            self.assertEqual(b.lengths.dtype, np.uintp)
            net.params[:] = gen.normal(0, 0.4, net.num_params).astype(np.float32)
            loss, grad = net.loss_grad(b)
            fd = finite_difference_grad(net, b)
            self.assertLess(relative_error(grad, fd), 2e-2)
            self.assertLess(np.linalg.norm(grad - fd) / np.linalg.norm(fd), 2e-3)

    @unittest.skipIf(torch is None, "PyTorch is not importable (apt-get install python3-torch)")
    def test_rnn_gradient_equals_pytorch_autograd(self):
        """The paper's addition RNN at full size (2-100-1, T' in [80, 88), 100 sequences of
        different lengths, the paper's initialization) against PyTorch's autograd in double: a
        check of long BPTT with per-sequence lengths, at the input scales of the tasks (0.001,
        where the input weights' gradient is exploding, and 0.1)."""
        gen = np.random.default_rng(5)
        T, n, H = 88, 100, 100
        lengths = gen.integers(80, 88, size=n)
        x, t = addition_batch(gen, n, T)
        t[:] = 0.0
        for s, length in enumerate(lengths):  # both marks are before step 44 < length
            x[length:, s, :] = 0.0
            marks = np.flatnonzero(x[:, s, 1])
            self.assertEqual(len(marks), 2)
            t[length - 1, s, 0] = 0.5 * x[marks, s, 0].sum()
        for scale in (0.001, 0.1):
            with self.subTest(input_scale=scale), mi.Net.recurrent(2, H, 1) as net:
                b = mi.Batch(x, t, lengths=lengths)
                mi.preset_rnn(net, scale, seed=1, data=b)
                loss, grad = net.loss_grad(b)
                blocks = {blk.kind: blk for blk in net.blocks()}

                def block(vec, kind):
                    blk = blocks[kind]
                    return vec[blk.offset:blk.offset + blk.rows * blk.cols].reshape(blk.rows,
                                                                                      blk.cols)
                kinds = (mi.BlockKind.W_VH, mi.BlockKind.W_HH, mi.BlockKind.B_H,
                         mi.BlockKind.W_HO, mi.BlockKind.B_O)
                w = {k: torch.tensor(block(net.params, k), dtype=torch.float64,
                                     requires_grad=True) for k in kinds}
                xs = torch.tensor(x, dtype=torch.float64)
                h = torch.zeros(n, H, dtype=torch.float64)
                total = torch.zeros((), dtype=torch.float64)
                for step in range(T):
                    h = torch.tanh(xs[step] @ w[mi.BlockKind.W_VH].T +
                                   h @ w[mi.BlockKind.W_HH].T + w[mi.BlockKind.B_H].reshape(-1))
                    ends = lengths - 1 == step
                    if ends.any():
                        out = h[ends] @ w[mi.BlockKind.W_HO].T + w[mi.BlockKind.B_O].reshape(-1)
                        d = out - torch.tensor(t[step, ends], dtype=torch.float64)
                        total = total + 0.5 * (d ** 2).sum()
                (total / n).backward()
                self.assertAlmostEqual(loss, (total / n).item(), delta=1e-6 * abs(loss))
                for k in kinds:
                    with self.subTest(block=k.name):
                        ref = w[k].grad.numpy()
                        err = np.abs(block(grad, k) - ref).max() / np.abs(ref).max()
                        self.assertLess(err, 1e-4)

    def test_grad_buffer_in_place_and_other_params(self):
        gen = np.random.default_rng(3)
        with mi.Net.feedforward([3, 4, 2]) as net:
            b = mi.Batch(*classification_batch(gen, 5, 3, 2))
            net.params[:] = gen.normal(0, 1, net.num_params).astype(np.float32)
            g = np.full(net.num_params, np.nan, np.float32)
            loss, g2 = net.loss_grad(b, grad=g)
            self.assertIs(g2, g)
            self.assertTrue(np.all(np.isfinite(g)))
            with self.assertRaisesRegex(ValueError, "overlap"):
                net.loss_grad(b, grad=net.params)
            other = gen.normal(0, 1, net.num_params).astype(np.float32)
            l_other, g_other = net.loss_grad(b, params=other)
            saved = net.params.copy()
            net.params[:] = other
            self.assertEqual(l_other, net.loss(b))
            np.testing.assert_array_equal(g_other, net.loss_grad(b)[1])
            net.params[:] = saved
            self.assertEqual(loss, net.loss(b))


class TestForward(unittest.TestCase):
    def test_ff_forward_matches_numpy(self):
        gen = np.random.default_rng(4)
        with mi.Net.feedforward([3, 5, 4], "tanh", "softmax_xent") as net:
            net.params[:] = gen.normal(0, 1, net.num_params).astype(np.float32)
            x, _ = classification_batch(gen, 6, 3, 4)
            w0, b0, w1, b1 = (net.block_view(i).astype(np.float64) for i in range(4))
            h = np.tanh(x @ w0.T + b0[:, 0])
            z = h @ w1.T + b1[:, 0]
            y = np.exp(z - z.max(axis=1, keepdims=True))
            y /= y.sum(axis=1, keepdims=True)
            out = net.forward(mi.Batch(x))  # no targets needed
            self.assertEqual(out.shape, (6, 4))
            np.testing.assert_allclose(out, y, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(net.forward(mi.Batch(x), layer=1), h, rtol=1e-5,
                                       atol=1e-6)
            buf = np.empty((6, 4), np.float32)
            self.assertIs(net.forward(mi.Batch(x), out=buf), buf)
            with self.assertRaises(ValueError):
                net.forward(mi.Batch(x), layer=9)

    def test_rnn_forward_matches_numpy(self):
        gen = np.random.default_rng(5)
        with mi.Net.recurrent(2, 4, 1) as net:
            net.params[:] = gen.normal(0, 0.5, net.num_params).astype(np.float32)
            x, t = addition_batch(gen, 3, 7)
            wvh, whh, bh, who, bo = (net.block_view(i).astype(np.float64) for i in range(5))
            h = np.zeros((3, 4))
            ys = []
            for step in range(7):
                h = np.tanh(h @ whh.T + x[step] @ wvh.T + bh[:, 0])
                ys.append(h @ who.T + bo[:, 0])
            out = net.forward((x, t))
            self.assertEqual(out.shape, (7, 3, 1))
            np.testing.assert_allclose(out, np.array(ys), rtol=1e-4, atol=1e-5)
            # the loss is 1/2 (y - t)^2 at the last step, averaged over sequences
            self.assertAlmostEqual(net.loss((x, t)), 0.5 * np.mean((ys[-1] - t[-1]) ** 2),
                                   places=5)


class TestGaussNewton(unittest.TestCase):
    def test_gv_properties_and_check(self):
        gen = np.random.default_rng(6)
        with mi.Net.feedforward([3, 5, 3], "tanh", "softmax_xent") as net:
            net.params[:] = gen.normal(0, 1, net.num_params).astype(np.float32)
            b = mi.Batch(*classification_batch(gen, 8, 3, 3))
            with self.assertRaises(mi.StateError):
                net.gv(np.ones(net.num_params, np.float32))
            net.gv_begin(b)
            u = gen.normal(size=net.num_params).astype(np.float32)
            v = gen.normal(size=net.num_params).astype(np.float32)
            gu, gv = net.gv(u), net.gv(v)
            self.assertAlmostEqual(float(u @ gv), float(v @ gu), delta=1e-4 * abs(float(u @ gv)) + 1e-6)
            self.assertGreaterEqual(float(v @ gv), -1e-6)  # positive semi-definite
            with self.assertRaises(mi.UnsupportedError):
                net.gv(v, struct_damping=0.5)
            with self.assertRaisesRegex(ValueError, "overlap"):
                net.gv(v, out=v)
            self.assertLess(net.check_gv(b, n_vectors=2, seed=3), 1e-3)

    def test_gv_begin_keeps_batch_alive(self):
        gen = np.random.default_rng(7)
        with mi.Net.recurrent(2, 3, 1) as net:
            net.params[:] = gen.normal(0, 0.5, net.num_params).astype(np.float32)
            x, t = addition_batch(gen, 4, 5)
            v = gen.normal(size=net.num_params).astype(np.float32)
            b = mi.Batch(x.copy(), t.copy())
            net.gv_begin(b)
            ref = net.gv(v, struct_damping=0.3)
            wr = weakref.ref(b)
            del b
            gc.collect()
            self.assertIsNotNone(wr())  # the net still references the batch...
            np.testing.assert_array_equal(net.gv(v, struct_damping=0.3), ref)
            net.gv_begin(mi.Batch(x, t))
            gc.collect()
            self.assertIsNone(wr())  # ...until the next gv_begin

    def test_fisher_diag_is_mean_squared_case_gradient(self):
        gen = np.random.default_rng(8)
        with mi.Net.feedforward([3, 4, 2], "tanh", "linear_squared") as net:
            net.params[:] = gen.normal(0, 1, net.num_params).astype(np.float32)
            x, t = classification_batch(gen, 5, 3, 2)
            fisher = net.fisher_diag((x, t))
            per_case = [net.loss_grad((x[i:i + 1].copy(), t[i:i + 1].copy()))[1]
                        for i in range(5)]
            expect = np.mean(np.square(per_case), axis=0)
            np.testing.assert_allclose(fisher, expect, rtol=1e-4, atol=1e-7)


class TestMetricsAndOptions(unittest.TestCase):
    def test_metrics(self):
        gen = np.random.default_rng(9)
        with mi.Net.feedforward([3, 4, 3], "tanh", "softmax_xent") as net:
            mi.preset_ff(net, 5)
            x, t = classification_batch(gen, 20, 3, 3)
            b = mi.Batch(x, t)
            self.assertEqual(net.metric(b, mi.Metric.LOSS), net.loss(b))
            err = net.metric(b, "class_error")
            y = net.forward(b)
            self.assertAlmostEqual(err, np.mean(y.argmax(1) != t.argmax(1)))
            sq = net.metric(b, mi.Metric.SQUARED_ERROR)
            self.assertAlmostEqual(sq, np.mean(np.sum((y - t) ** 2, axis=1)), places=5)
        with mi.Net.feedforward([2, 1]) as net1:
            with self.assertRaises(mi.InvalidError):
                net1.metric((np.zeros((2, 2), np.float32), np.zeros((2, 1), np.float32)),
                            mi.Metric.CLASS_ERROR)

    def test_check_finite_option(self):
        with mi.Net.feedforward([2, 3, 1]) as net:
            self.assertFalse(net.check_finite)
            net.check_finite = True
            self.assertTrue(net.check_finite)
            x = np.zeros((3, 2), np.float32)
            x[1, 1] = np.nan
            with self.assertRaises(mi.InvalidError) as cm:
                net.loss((x, np.zeros((3, 1), np.float32)))
            self.assertIn("finite", cm.exception.detail.lower())
            with self.assertRaises(mi.InvalidError):
                net.set(99, 1.0)

    def test_threads_option_same_results(self):
        # 64 cases x 600 units: the hidden and output passes are shared with helper threads
        rng = np.random.default_rng(3)
        x = rng.random((64, 600), dtype=np.float32)
        results = []
        for k in (1, 2, 4):
            with mi.Net.feedforward([600, 600, 20, 600]) as net:
                mi.preset_ff(net, 7)
                self.assertEqual(net.threads, 0)  # the default: as many as the BLAS
                net.threads = k
                self.assertEqual(net.threads, k)
                loss, grad = net.loss_grad((x, x))
                results.append((loss, grad.copy()))
        for loss, grad in results[1:]:
            self.assertEqual(loss, results[0][0])
            self.assertTrue(np.array_equal(grad, results[0][1]))
        with mi.Net.feedforward([2, 1]) as net:
            for bad in (-1, 1.5, 1e6):
                with self.assertRaises(mi.InvalidError):
                    net.threads = bad

    def test_reserve_and_workspace(self):
        with mi.Net.recurrent(2, 8, 1) as net:
            net.reserve(16, 10)
            self.assertGreater(net.workspace_bytes, 0)
            with self.assertRaises(mi.InvalidError):
                net.reserve(0, 1)

    def test_empty_batch_detail(self):
        with mi.Net.feedforward([2, 1]) as net:
            with self.assertRaises(mi.InvalidError) as cm:
                net.loss((np.zeros((0, 2), np.float32), np.zeros((0, 1), np.float32)))
            self.assertIn("empty", cm.exception.detail)


if __name__ == "__main__":
    unittest.main()
