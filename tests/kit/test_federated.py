"""lepton_kit.federated: partitions, strategies, privacy, secure sum and the vectorised simulator."""
import numpy as np
import pytest
import torch

from lepton_kit.federated import (DPFedAvg, FedAvg, FedMedian, FedProx, FedSGD, FedTrimmedAvg, ClientResult, SecAggFedAvg,
                                  client_update, label_histogram, partition_dirichlet, partition_iid,
                                  partition_shards, rounds_to_target, secure_sum, simulate, weighted_average)
from lepton_kit.federated.privacy import clip_update, rdp_epsilon, update_norm
from lepton_kit.federated.secagg import masked

Y = np.repeat(np.arange(10), 60)   # 600 labels, 60 per class


def small_task(n=300, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = (x[:, :3].sum(1) > 0).astype(int) + 2 * (x[:, 3] > 0.5)
    return x, y


def mlp(d=6, classes=4, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, 16), torch.nn.Tanh(), torch.nn.Linear(16, classes)).to(dtype)


def max_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.mark.parametrize("split", [lambda y, s: partition_iid(y, 7, seed=s),
                                   lambda y, s: partition_shards(y, 10, seed=s),
                                   lambda y, s: partition_dirichlet(y, 8, alpha=0.3, seed=s)])
def test_partitions_are_disjoint_complete_and_seeded(split):
    parts = split(Y, 3)
    rows = np.concatenate(parts)
    assert len(rows) == len(Y) and len(np.unique(rows)) == len(Y)
    assert all(len(p) > 0 for p in parts)
    assert all(np.array_equal(a, b) for a, b in zip(parts, split(Y, 3)))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, split(Y, 4)))


def test_shards_give_two_classes_and_dirichlet_skew_shrinks_with_alpha():
    assert max(len(np.unique(Y[p])) for p in partition_shards(Y, 30, seed=0)) <= 2
    def classes_per_client(alpha):
        counts = label_histogram(Y, partition_dirichlet(Y, 10, alpha=alpha, seed=0))
        return (counts > 0).sum(1).mean()
    assert classes_per_client(0.05) < classes_per_client(1.0) < classes_per_client(100.0) + 1e-9
    assert classes_per_client(100.0) == 10


def test_partition_errors_name_the_problem():
    with pytest.raises(ValueError, match="one-dimensional"):
        partition_iid(np.zeros((3, 2)), 2)
    with pytest.raises(ValueError, match="every client needs at least one"):
        partition_iid(np.zeros(3), 5)
    with pytest.raises(ValueError, match="alpha must be positive"):
        partition_dirichlet(Y, 3, alpha=0)
    with pytest.raises(ValueError, match="shards"):
        partition_shards(np.arange(5), 3)


def test_client_update_never_changes_the_global_state_and_is_seeded():
    x, y = small_task(40)
    model = mlp()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    frozen = {k: v.clone() for k, v in start.items()}
    a, n, loss = client_update(model, start, x, y, epochs=2, batch_size=8, lr=0.3, seed=(0, 1, 2))
    b, _, _ = client_update(model, start, x, y, epochs=2, batch_size=8, lr=0.3, seed=(0, 1, 2))
    c, _, _ = client_update(model, start, x, y, epochs=2, batch_size=8, lr=0.3, seed=(0, 1, 3))
    assert n == 40 and np.isfinite(loss)
    assert max_diff(start, frozen) == 0 and max_diff(a, b) == 0 and max_diff(a, c) > 0


def test_fedsgd_weighted_by_examples_is_one_step_of_full_batch_gradient_descent():
    """With unequal clients, only the example-weighted average equals centralised gradient descent."""
    x, y = small_task(300)
    parts = [np.arange(0, 20), np.arange(20, 300)]             # 20 and 280 examples
    model = mlp()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    simulate(model, (x, y), parts, FedSGD(lr=0.5), rounds=1, fraction=1.0, progress=False)
    federated = model.state_dict()
    central, _, _ = client_update(mlp(), start, x, y, epochs=1, batch_size=None, lr=0.5)
    assert max_diff(federated, central) < 1e-12
    results = [ClientResult(i, client_update(mlp(), start, x[p], y[p], batch_size=None, lr=0.5)[0], len(p))
               for i, p in enumerate(parts)]
    unweighted = weighted_average([r.state for r in results], [1, 1])
    assert max_diff(unweighted, central) > 1e-3


def test_vectorised_clients_equal_clients_one_by_one():
    """Stragglers, dropped clients and FedProx's proximal term included; float64 so only rounding differs."""
    x, y = small_task(400)
    parts = partition_dirichlet(y, 12, alpha=0.5, seed=1)
    for strategy in (FedAvg(lr=0.2, epochs=2, batch_size=10), FedProx(lr=0.2, epochs=3, batch_size=7, mu=0.5)):
        runs = []
        for vectorize in (True, False):
            model = mlp()
            history = simulate(model, (x, y), parts, strategy, rounds=3, fraction=0.5, seed=4, stragglers=0.4,
                               dropout=0.2, test=(x, y), progress=False, vectorize=vectorize)
            runs.append((model.state_dict(), history))
        (a, ha), (b, hb) = runs
        assert max_diff(a, b) < 1e-10
        assert ha.clients == hb.clients and [len(f) for f in ha.failures] == [len(f) for f in hb.failures]
    assert any(f.reason.startswith("straggler") for r in ha.failures for f in r) is False   # FedProx keeps them


def test_fedavg_drops_stragglers_fedprox_keeps_their_partial_work():
    x, y = small_task(200)
    parts = partition_iid(y, 10)
    kwargs = dict(rounds=2, fraction=1.0, stragglers=0.5, seed=0, progress=False)
    avg = simulate(mlp(), (x, y), parts, FedAvg(epochs=2, batch_size=5), **kwargs)
    prox = simulate(mlp(), (x, y), parts, FedProx(epochs=2, batch_size=5), **kwargs)
    reasons = [f.reason for r in avg.failures for f in r]
    assert reasons and all(r.startswith("straggler") for r in reasons)
    assert not any(prox.failures) and all(len(c) == 10 for c in prox.clients)


def test_fedprox_with_mu_zero_is_fedavg_and_its_term_pulls_towards_the_global_model():
    x, y = small_task(100)
    start = {k: v.clone() for k, v in mlp().state_dict().items()}
    plain, _, _ = client_update(mlp(), start, x, y, epochs=3, batch_size=10, lr=0.3, seed=1)
    zero, _, _ = client_update(mlp(), start, x, y, epochs=3, batch_size=10, lr=0.3, seed=1, mu=0.0)
    pulled, _, _ = client_update(mlp(), start, x, y, epochs=3, batch_size=10, lr=0.3, seed=1, mu=1.0)
    def distance(s):
        return float(update_norm({k: s[k] - start[k] for k in s}))
    assert max_diff(plain, zero) == 0
    assert distance(pulled) < 0.8 * distance(plain)


def test_simulation_is_deterministic_learns_and_stops_at_its_target():
    x, y = small_task(600)
    parts = partition_iid(y, 30)
    run = lambda **kw: simulate(mlp(dtype=torch.float32), (x, y), parts, FedAvg(lr=0.3, epochs=2, batch_size=10),
                                rounds=15, fraction=0.2, test=(x, y), progress=False, **kw)
    first, second = run(), run()
    assert first.accuracy == second.accuracy and first.clients == second.clients
    assert first.accuracy[-1] > first.accuracy[0] and first.accuracy[-1] > 0.7
    target = first.accuracy[4]
    stopped = run(target=target)
    assert stopped.rounds[-1] == rounds_to_target(first, target) <= 5


def test_buffers_fall_back_to_clients_one_by_one_and_integer_buffers_stay_integers():
    x, y = small_task(120)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 4))
    with pytest.raises(ValueError, match="buffers"):
        simulate(model, (x, y), partition_iid(y, 4), FedAvg(), rounds=1, vectorize=True, progress=False)
    simulate(model, (x, y), partition_iid(y, 4), FedAvg(batch_size=10), rounds=2, fraction=1.0, progress=False)
    tracked = model.state_dict()["1.num_batches_tracked"]
    assert tracked.dtype == torch.int64 and int(tracked) == 6   # 2 rounds x 3 batches of 10 per client


def test_robust_aggregation_resists_one_malicious_client():
    honest = [{"w": torch.tensor([1.0, 2.0]) + 0.01 * i} for i in range(9)]
    evil = {"w": torch.tensor([1e6, -1e6])}
    results = [ClientResult(i, s, 10) for i, s in enumerate(honest + [evil])]
    start = {"w": torch.zeros(2)}
    assert FedAvg().aggregate(1, start, results, [])["w"].abs().max() > 1e4
    for strategy in (FedMedian(), FedTrimmedAvg(beta=0.1)):
        assert (strategy.aggregate(1, start, results, [])["w"] - torch.tensor([1.04, 2.04])).abs().max() < 0.02
    with pytest.raises(ValueError, match="trims every"):
        FedTrimmedAvg(beta=0.5).aggregate(1, start, results, [])


def test_dp_fedavg_clips_each_update_adds_the_stated_noise_and_counts_epsilon():
    assert float(update_norm(clip_update({"w": torch.full((100,), 1.0)}, 2.0))) == pytest.approx(2.0)
    start = {"w": torch.zeros(20000, dtype=torch.float64)}
    results = [ClientResult(i, {"w": torch.zeros(20000, dtype=torch.float64)}, 5) for i in range(4)]
    strategy = DPFedAvg(clip=0.5, noise_multiplier=1.2)
    noisy = strategy.aggregate(1, start, results, [])["w"]
    assert float(noisy.std()) == pytest.approx(1.2 * 0.5 / 4, rel=0.03)       # z * C / m
    big = [ClientResult(i, {"w": torch.full((20000,), 100.0, dtype=torch.float64)}, 5) for i in range(4)]
    quiet = DPFedAvg(clip=0.5, noise_multiplier=0.0).aggregate(1, start, big, [])["w"]
    assert float(update_norm({"w": quiet})) == pytest.approx(0.5)             # each update clipped to C
    assert rdp_epsilon(1.0, [0.1] * 10) < rdp_epsilon(1.0, [0.1] * 100) < rdp_epsilon(0.7, [0.1] * 100)
    x, y = small_task(200)
    dp = DPFedAvg(lr=0.3, clip=1.0, noise_multiplier=1.0)
    simulate(mlp(), (x, y), partition_iid(y, 20), dp, rounds=3, fraction=0.25, progress=False)
    assert dp.sample_rates == [0.25] * 3 and 0 < dp.epsilon(1e-5) == rdp_epsilon(1.0, [0.25] * 3)


def test_secure_sum_is_exact_and_a_masked_update_reveals_nothing_by_correlation():
    rng = np.random.default_rng(0)
    updates = [rng.normal(size=5000) for _ in range(6)]
    fixed_point = [np.round(u * 2 ** 24) / 2 ** 24 for u in updates]
    assert np.array_equal(secure_sum(updates, seed=3), np.sum(fixed_point, axis=0))
    seen = masked(updates[2], 2, range(6), seed=3).view(np.int64).astype(np.float64)
    assert abs(np.corrcoef(seen, updates[2])[0, 1]) < 0.05


def test_simulate_rejects_bad_input_clearly():
    x, y = small_task(50)
    with pytest.raises(ValueError, match="at least one example"):
        simulate(mlp(), (x, y), [np.arange(50), np.array([], dtype=int)], FedAvg(), rounds=1, progress=False)
    with pytest.raises(ValueError, match="fraction"):
        simulate(mlp(), (x, y), partition_iid(y, 5), FedAvg(), rounds=1, fraction=0, progress=False)


def test_secure_aggregation_strategy_equals_fedavg_up_to_fixed_point():
    x, y = small_task(200)
    parts = partition_dirichlet(y, 6, alpha=1.0, seed=0)        # unequal client sizes
    states = []
    for strategy in (FedAvg(lr=0.2, batch_size=10), SecAggFedAvg(lr=0.2, batch_size=10, seed=5)):
        model = mlp()
        simulate(model, (x, y), parts, strategy, rounds=2, fraction=1.0, progress=False)
        states.append(model.state_dict())
    assert 0 < max_diff(*states) < 1e-6
