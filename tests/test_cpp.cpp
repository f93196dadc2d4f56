// The public API used from C++: every public header included (the umbrella and each module
// header, in an order other than the umbrella's), handles owned by std::unique_ptr with custom
// deleters, statuses turned into exceptions carrying the detail message, and a small training
// with NAG whose loss must fall. Output is TAP, one line per case.
#include "mominit/optim.h"
#include "mominit/sched.h"
#include "mominit/init.h"
#include "mominit/net.h"
#include "mominit/rng.h"
#include "mominit/common.h"
#include "mominit/mominit.h"
#ifdef MOM_TEST_ALL_HEADERS
#include "mominit_all_headers.h" // every header in public_header_names, generated
#endif

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// ---- RAII ---------------------------------------------------------------------------------------
struct NetDeleter { void operator()(mom_net *p) const { mom_net_destroy(p); } };
struct RngDeleter { void operator()(mom_rng *p) const { mom_rng_destroy(p); } };
struct InitDeleter { void operator()(mom_init *p) const { mom_init_destroy(p); } };
struct SchedDeleter { void operator()(mom_sched *p) const { mom_sched_destroy(p); } };
struct OptimDeleter { void operator()(mom_optim *p) const { mom_optim_destroy(p); } };

using NetPtr = std::unique_ptr<mom_net, NetDeleter>;
using RngPtr = std::unique_ptr<mom_rng, RngDeleter>;
using InitPtr = std::unique_ptr<mom_init, InitDeleter>;
using SchedPtr = std::unique_ptr<mom_sched, SchedDeleter>;
using OptimPtr = std::unique_ptr<mom_optim, OptimDeleter>;

// A failed call becomes an exception with the status text and the handle's detail message.
class Error : public std::runtime_error {
public:
    Error(int status, const std::string &what, const char *detail)
        : std::runtime_error(what + ": " + mom_strerror(status) + " [" + mom_status_name(status) +
                             "]" + (detail && *detail ? std::string(": ") + detail : "")),
          status_(status) {}
    int status() const { return status_; }

private:
    int status_;
};

void check(int status, const char *what, const char *detail = nullptr)
{
    if (status != MOM_OK)
        throw Error(status, what, detail);
}

NetPtr make_ff(std::vector<size_t> sizes, int act, int output)
{
    mom_net *raw = nullptr;
    std::vector<int> acts(sizes.size() - 2, act);
    check(mom_net_create_ff(&raw, sizes.size() - 1, sizes.data(), acts.data(), output, nullptr),
          "mom_net_create_ff");
    return NetPtr(raw);
}

SchedPtr make_const(double v)
{
    mom_sched *raw = nullptr;
    check(mom_sched_create_const(&raw, v, nullptr), "mom_sched_create_const");
    return SchedPtr(raw);
}

// ---- a tiny TAP harness ---------------------------------------------------------------------
int n_run = 0, n_failed = 0;

void run(const char *name, const std::function<void()> &fn)
{
    ++n_run;
    try {
        fn();
        std::printf("ok %d - %s\n", n_run, name);
    } catch (const std::exception &e) {
        ++n_failed;
        std::printf("not ok %d - %s\n# %s\n", n_run, name, e.what());
    }
}

void expect(bool cond, const std::string &what)
{
    if (!cond)
        throw std::runtime_error("expectation failed: " + what);
}

// A data set: 3 classes from a fixed linear rule of 4 inputs (one-hot targets).
struct Data {
    std::vector<float> x, t;
    size_t n;
};

Data make_data(mom_rng *rng, size_t n)
{
    Data d;
    d.n = n;
    d.x.resize(n * 4);
    d.t.assign(n * 3, 0.0f);
    check(mom_rng_fill_normal(rng, d.x.data(), d.x.size(), 0.0, 1.0), "mom_rng_fill_normal",
          mom_rng_errmsg(rng));
    for (size_t i = 0; i < n; i++) {
        const float *xi = &d.x[i * 4];
        float s[3] = {xi[0] - xi[1], xi[2] + 0.5f * xi[3], -xi[0] - xi[2]};
        size_t best = 0;
        for (size_t k = 1; k < 3; k++)
            if (s[k] > s[best])
                best = k;
        d.t[i * 3 + best] = 1.0f;
    }
    return d;
}

mom_batch batch_of(const Data &d)
{
    mom_batch b;
    std::memset(&b, 0, sizeof b);
    b.n = d.n;
    b.steps = 0;
    b.inputs = d.x.data();
    b.targets = d.t.data();
    return b;
}

} // namespace

int main()
{
    std::printf("1..7\n");

    run("version macros equal the run-time version", [] {
        expect(mom_version_number() == MOM_VERSION_NUMBER, "mom_version_number");
        expect(std::strcmp(mom_version_string(), MOM_VERSION_STRING) == 0, "version string");
        expect(std::string(mom_status_name(MOM_E_SHAPE)) == "MOM_E_SHAPE", "status name");
    });

    run("errors become exceptions with the detail message", [] {
        NetPtr net = make_ff({2, 3, 1}, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED);
        size_t rows = 0;
        try {
            check(mom_net_block(net.get(), 42, nullptr, nullptr, &rows, nullptr, nullptr),
                  "mom_net_block", mom_net_errmsg(net.get()));
            throw std::runtime_error("no error for an out-of-range block");
        } catch (const Error &e) {
            expect(e.status() == MOM_E_INVALID, "status");
            expect(std::string(e.what()).find("42") != std::string::npos, "detail in message");
        }
        mom_net *raw = nullptr;
        size_t bad[2] = {0, 1};
        expect(mom_net_create_ff(&raw, 1, bad, nullptr, MOM_OUT_LINEAR_SQUARED, nullptr) ==
                   MOM_E_INVALID && raw == nullptr, "constructor failure sets *out to NULL");
    });

    run("unique_ptr owns every kind of handle", [] {
        mom_rng *r = nullptr;
        check(mom_rng_create(&r, 1, 2, nullptr), "mom_rng_create");
        RngPtr rng(r);
        mom_init *i = nullptr;
        check(mom_init_create(&i, MOM_INIT_SPARSE, nullptr), "mom_init_create");
        InitPtr init(i);
        check(mom_init_set(init.get(), MOM_INIT_OPT_K, 2), "mom_init_set",
              mom_init_errmsg(init.get()));
        NetPtr net = make_ff({5, 4, 2}, MOM_ACT_LOGISTIC, MOM_OUT_SOFTMAX_XENT);
        check(mom_init_apply(init.get(), net.get(), rng.get()), "mom_init_apply",
              mom_init_errmsg(init.get()));
        size_t idx = 0, rows = 0, cols = 0, off = 0;
        check(mom_net_find_block(&idx, net.get(), MOM_BLOCK_WEIGHTS, 0), "mom_net_find_block");
        check(mom_net_block(net.get(), idx, nullptr, nullptr, &rows, &cols, &off),
              "mom_net_block");
        const float *p = mom_net_params(net.get());
        for (size_t j = 0; j < rows; j++) {
            size_t nz = 0;
            for (size_t c = 0; c < cols; c++)
                nz += p[off + j * cols + c] != 0.0f;
            expect(nz == 2, "K = 2 nonzeros per unit");
        }
        mom_optim *o = nullptr;
        check(mom_optim_create(&o, MOM_OPTIM_CM, mom_net_num_params(net.get()), nullptr),
              "mom_optim_create");
        OptimPtr opt(o);
        expect(mom_optim_kind_of(opt.get()) == MOM_OPTIM_CM, "kind");
        // the handles are released in reverse order at the end of the scope
    });

    run("schedules are reference counted across owners", [] {
        mom_optim *o = nullptr;
        check(mom_optim_create(&o, MOM_OPTIM_NAG, 3, nullptr), "mom_optim_create");
        OptimPtr opt(o);
        {
            mom_sched *raw = nullptr;
            check(mom_sched_create_paper_momentum(&raw, 0.99, 250, nullptr),
                  "mom_sched_create_paper_momentum");
            SchedPtr mu(raw);
            check(mom_optim_set_momentum(opt.get(), mu.get()), "mom_optim_set_momentum",
                  mom_optim_errmsg(opt.get()));
        } // our reference is gone; the optimizer keeps its own
        expect(mom_optim_momentum(opt.get()) == 0.5, "paper momentum at t = 0");
    });

    run("NAG through begin/end on a caller-owned vector", [] {
        mom_optim *o = nullptr;
        check(mom_optim_create(&o, MOM_OPTIM_NAG, 2, nullptr), "mom_optim_create");
        OptimPtr opt(o);
        SchedPtr lr = make_const(0.1);
        check(mom_optim_set_lr(opt.get(), lr.get()), "mom_optim_set_lr");
        // minimize (x0 - 3)^2 / 2 + 2 (x1 + 1)^2
        std::vector<float> x = {0.0f, 0.0f}, g(2);
        for (int step = 0; step < 200; step++) {
            const float *pt = nullptr;
            check(mom_optim_begin(&pt, opt.get(), x.data()), "mom_optim_begin",
                  mom_optim_errmsg(opt.get()));
            g[0] = pt[0] - 3.0f;
            g[1] = 4.0f * (pt[1] + 1.0f);
            double loss = 0.5 * g[0] * g[0] + g[1] * g[1] / 8.0;
            check(mom_optim_end(opt.get(), x.data(), loss, g.data()), "mom_optim_end",
                  mom_optim_errmsg(opt.get()));
        }
        expect(std::fabs(x[0] - 3.0f) < 1e-3f && std::fabs(x[1] + 1.0f) < 1e-3f, "converged");
        expect(mom_optim_steps(opt.get()) == 200, "step count");
    });

    run("a few NAG steps on a network lower the loss", [] {
        mom_rng *r = nullptr;
        check(mom_rng_create(&r, 5, 0, nullptr), "mom_rng_create");
        RngPtr rng(r);
        Data d = make_data(rng.get(), 64);
        mom_batch b = batch_of(d);
        NetPtr net = make_ff({4, 10, 3}, MOM_ACT_TANH, MOM_OUT_SOFTMAX_XENT);
        check(mom_init_preset_ff(net.get(), 7), "mom_init_preset_ff", mom_net_errmsg(net.get()));
        mom_optim *o = nullptr;
        check(mom_optim_create(&o, MOM_OPTIM_NAG, mom_net_num_params(net.get()), nullptr),
              "mom_optim_create");
        OptimPtr opt(o);
        SchedPtr lr = make_const(0.05);
        check(mom_optim_set_lr(opt.get(), lr.get()), "mom_optim_set_lr");
        double first = 0.0, loss = 0.0;
        check(mom_net_loss(&first, net.get(), &b, nullptr), "mom_net_loss",
              mom_net_errmsg(net.get()));
        for (int step = 0; step < 50; step++)
            check(mom_optim_step_net(&loss, opt.get(), net.get(), &b), "mom_optim_step_net",
                  mom_optim_errmsg(opt.get()));
        double last = 0.0;
        check(mom_net_loss(&last, net.get(), &b, nullptr), "mom_net_loss");
        std::printf("# loss %.5f -> %.5f\n", first, last);
        expect(std::isfinite(last) && last < 0.7 * first, "loss falls");
        double err = 1.0;
        check(mom_net_metric(&err, net.get(), &b, nullptr, MOM_METRIC_CLASS_ERROR, 0.0),
              "mom_net_metric");
        expect(err < 0.3, "class error below 30%");
    });

    run("gradient check and a recurrent net from C++", [] {
        mom_net *raw = nullptr;
        check(mom_net_create_rnn(&raw, 2, 4, 1, MOM_ACT_TANH, MOM_OUT_LINEAR_SQUARED,
                                 MOM_RNN_LEARN_H0, nullptr), "mom_net_create_rnn");
        NetPtr net(raw);
        check(mom_init_preset_rnn(net.get(), 0.5, 3, nullptr), "mom_init_preset_rnn",
              mom_net_errmsg(net.get()));
        const size_t T = 5, n = 3;
        std::vector<float> x(T * n * 2), t(T * n * 1, 0.25f);
        mom_rng *r = nullptr;
        check(mom_rng_create(&r, 9, 0, nullptr), "mom_rng_create");
        RngPtr rng(r);
        check(mom_rng_fill_uniform(rng.get(), x.data(), x.size(), -1.0, 1.0),
              "mom_rng_fill_uniform");
        mom_batch b;
        std::memset(&b, 0, sizeof b);
        b.n = n;
        b.steps = T;
        b.inputs = x.data();
        b.targets = t.data();
        double rel = 1.0;
        check(mom_net_check_grad(&rel, net.get(), &b, 0, 1e-2), "mom_net_check_grad",
              mom_net_errmsg(net.get()));
        std::printf("# max relative gradient error %.2e\n", rel);
        expect(rel < 1e-2, "gradient matches finite differences");
    });

    return n_failed == 0 ? 0 : 1;
}
